"""UPS and its SwinIR-light baseline: sizes, sharing, attention properties, masking, tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightsr.evaluation.bench import count_complexity
from lightsr.inference.upscaler import Upscaler
from lightsr.models.archs.swinir import SwinLayer, shifted_window_mask
from lightsr.models.archs.ups import SIMILARITIES, UPS, UPSAttention
from lightsr.models.checkpoint import detect_arch, load_checkpoint, save_safetensors
from lightsr.models.registry import build_arch, build_model, get_spec

NAMES = [f"{b}-x{s}" for b in ("swinir-light", "ups", "ups-s") for s in (2, 3, 4)]


def n_params(m: torch.nn.Module, *, tables: bool = True) -> int:
    return sum(
        p.numel()
        for k, p in m.named_parameters()
        if tables or "relative_position_bias_table" not in k
    )


@pytest.mark.parametrize(
    ("name", "with_tables", "without_tables"),
    [
        # SwinIR paper: 878K / 886K / 897K without the position-bias tables
        ("swinir-light-x2", 910_152, 877_752),
        ("swinir-light-x3", 918_267, 885_867),
        ("swinir-light-x4", 929_628, 897_228),
        # lightsr's UPS (C 60, d 128, 4 heads) and UPS-S (C 48, depths 4x4, d 64)
        ("ups-x2", 643_512, 621_912),
        ("ups-x3", 651_627, 630_027),
        ("ups-x4", 662_988, 641_388),
        ("ups-s-x4", 334_176, 319_776),
    ],
)
def test_parameter_counts(name: str, with_tables: int, without_tables: int) -> None:
    m = build_model(name)
    assert n_params(m) == with_tables
    assert n_params(m, tables=False) == without_tables


@pytest.mark.parametrize("name", ["swinir-light-x4", "ups-x4", "ups-s-x4"])
def test_flops_count_every_attention_product(name: str) -> None:
    """lightsr bench's FLOPs at a 1280x720 output against the layer arithmetic by hand.

    Counted with 2 torch threads (the attention then runs on worker threads, see
    swinir.run_chunks). The 320x180 input is padded to 320x184 (window 8): 58,880 tokens
    through every layer.
    Per token and layer: SwinIR-light qkv + proj + MLP = 3C^2 + C^2 + 4C^2 (mlp ratio 2) MACs
    (addmm) and QK^T + AV = 2 * 64 * C (bmm, 64 keys per window); UPS one shared C x d
    projection (mm), QK^T in d and AV in C = 64 * (d + C) (bmm), proj + MLP = 5C^2 (addmm).
    """
    spec = get_spec(name)
    c, d = spec.config["embed_dim"], spec.config.get("proj_dim")
    layers, tokens = sum(spec.config["depths"]), 320 * 184
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # window chunks go to worker threads, which must still be counted
    try:
        got = count_complexity(build_model(name), (320, 180)).breakdown
    finally:
        torch.set_num_threads(threads)
    if d is None:
        want = {"addmm": 8 * c * c, "bmm": 2 * 64 * c}
    else:
        want = {"mm": c * d, "bmm": 64 * (d + c), "addmm": 5 * c * c}
    for op, per_token in want.items():
        assert got[op] == per_token * layers * tokens, op


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_odd_size(name: str) -> None:
    torch.manual_seed(0)
    m = build_model(name)
    s = m.scale
    x = torch.rand(1, 3, 11, 13, requires_grad=True)
    y = m(x)
    assert y.shape == (1, 3, 11 * s, 13 * s) and torch.isfinite(y).all()
    y.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_official_swinir_names() -> None:
    keys = set(build_model("swinir-light-x2").state_dict())
    for k in (
        "conv_first.weight",
        "patch_embed.norm.weight",
        "layers.3.residual_group.blocks.5.attn.relative_position_bias_table",
        "layers.0.residual_group.blocks.0.attn.relative_position_index",
        "layers.0.residual_group.blocks.1.attn_mask",
        "layers.0.residual_group.blocks.0.attn.qkv.weight",
        "layers.0.residual_group.blocks.0.mlp.fc2.bias",
        "layers.2.conv.weight",
        "norm.weight",
        "conv_after_body.weight",
        "upsample.0.weight",
    ):
        assert k in keys, k
    assert "layers.0.residual_group.blocks.0.attn_mask" not in keys  # unshifted: None


def test_one_shared_projection_used_by_every_layer() -> None:
    torch.manual_seed(0)
    m = build_model("ups-s-x2")
    shared = [k for k, _ in m.named_parameters() if "proj" in k and "attn.proj" not in k]
    assert shared == ["shared_proj"]
    assert m.shared_proj.shape == (48, 64)
    attns = [mod for mod in m.modules() if isinstance(mod, UPSAttention)]
    assert len(attns) == 16 and all(a.qk is None for a in attns)
    # each layer receives shared + t_l * E (t_l = 0, E a fixed random direction; a pure scale
    # would be invisible to cosine similarity): every layer's d loss / d t_l is non-zero
    direction = torch.randn(48, 64)
    probes = []
    for a in attns:
        probe = torch.zeros((), requires_grad=True)
        probes.append(probe)
        orig = a.forward
        a.forward = lambda x, mask, shared, orig=orig, probe=probe: orig(
            x, mask, shared + probe * direction
        )
    m(torch.rand(1, 3, 16, 16)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs() > 0 for p in probes)
    assert m.shared_proj.grad is not None and m.shared_proj.grad.abs().sum() > 0


def test_per_layer_projection_ablation() -> None:
    cfg = {"embed_dim": 48, "depths": [4, 4, 4, 4], "proj_dim": 64, "shared_projection": False}
    m = build_arch("ups", scale=2, **cfg)
    assert m.shared_proj is None
    assert sum(1 for k, _ in m.named_parameters() if k.endswith("attn.qk")) == 16


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_attention_map_non_negative_and_row_normalised(similarity: str) -> None:
    torch.manual_seed(0)
    attn = UPSAttention(60, window_size=8, num_heads=4, proj_dim=128, similarity=similarity)
    shared = torch.randn(60, 128)
    x = torch.randn(2 * 4, 64, 60)  # batch 2, 4 windows
    mask = shifted_window_mask(16, 16, 8, 4)  # (4, 64, 64)
    a = attn.attention_map(x, mask, shared)
    assert a.shape == (8, 4, 64, 64)
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum(-1), torch.ones(8, 4, 64), atol=1e-4, rtol=0)
    # masked pairs get exactly zero weight
    blocked = (mask != 0)[None, :, None].expand(2, 4, 4, 64, 64).reshape(8, 4, 64, 64)
    assert a[blocked].abs().max() == 0


@pytest.mark.parametrize("arch", ["ups", "swinir"])
def test_shifted_window_mask_blocks_wrapped_borders(arch: str) -> None:
    """Perturb the top-left pixel: after the cyclic shift it shares a window with the
    bottom-right one, but lies in another region, so that output must not change."""
    torch.manual_seed(0)
    if arch == "ups":
        attn = UPSAttention(12, window_size=8, num_heads=4, proj_dim=16)
        shared = torch.randn(12, 16)
    else:
        from lightsr.models.archs.swinir import WindowAttention

        attn = WindowAttention(12, window_size=8, num_heads=4)
        shared = None
    layer = SwinLayer(12, attn=attn, window_size=8, shift_size=4, mlp_ratio=2.0, img_size=16)
    layer.eval()
    x = torch.randn(1, 256, 12)
    y0 = layer(x, (16, 16), shared).view(16, 16, 12)
    x2 = x.clone().view(16, 16, 12)
    x2[0, 0] += 5.0 * torch.randn(12)  # not a constant: LayerNorm would erase that
    y1 = layer(x2.reshape(1, 256, 12), (16, 16), shared).view(16, 16, 12)
    changed = (y1 - y0).abs().amax(-1) > 1e-6
    # its own region (original rows/cols 0-3) mixes with it
    assert changed[0, 0] and changed[:4, :4].sum() > 8
    assert not changed[15, 15] and not changed[15, 0] and not changed[0, 15]  # wrapped
    assert not changed[8, 8]  # another window


def test_detection_and_safetensors_keep_every_option(tmp_path) -> None:
    m = UPS(embed_dim=24, depths=[2], num_heads=4, proj_dim=16, similarity="dot-relu",
            upscaling_factor=3)  # fmt: skip
    found = detect_arch(m.state_dict())
    assert found is not None and found.arch == "ups" and found.scale == 3
    path = save_safetensors(m, tmp_path / "u.safetensors", config={
        **found.config, "similarity": "dot-relu"})  # fmt: skip
    loaded, info = load_checkpoint(path)
    assert info.config["similarity"] == "dot-relu"
    x = torch.rand(1, 3, 8, 8)
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), m(x))


@pytest.mark.parametrize("arch", ["ups", "swinir"])
def test_safetensors_leave_out_derived_buffers(arch: str, tmp_path) -> None:
    """Masks and position indices are rebuilt from the config: not stored, yet loaded strictly."""
    torch.manual_seed(0)
    m = build_arch(arch, scale=2, embed_dim=24, depths=[2, 2], num_heads=4, img_size=16)
    path = save_safetensors(m, tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
    full = set(m.state_dict())
    derived = (".attn_mask", ".relative_position_index")
    assert {k for k in full if k.endswith(derived)}
    assert keys == {k for k in full if not k.endswith(derived)}
    loaded, _ = load_checkpoint(path)
    x = torch.rand(1, 3, 16, 24)  # shifted-window masks for a size other than img_size too
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), m(x))
    # a file that carries them (official SwinIR style) still loads strictly
    torch.save(m.state_dict(), tmp_path / "full.pth")
    again, _ = load_checkpoint(tmp_path / "full.pth")
    with torch.no_grad():
        torch.testing.assert_close(again(x), m(x))


def test_tiled_equals_untiled() -> None:
    torch.manual_seed(0)
    m = build_model("ups-s-x2")
    up = Upscaler(m, scale=2, name="ups-s", arch="ups", config={}, device="cpu")
    img = np.random.default_rng(0).random((37, 53, 3)).astype(np.float32)
    full = up.upscale(img)
    tiled = up.upscale(img, tile=16)
    assert np.abs(full - tiled).max() <= 1 / 255


def test_shifted_window_mask_has_the_official_regions() -> None:
    """The tensor-op mask equals the official slice-assignment construction."""
    from lightsr.models.archs.swinir import window_partition

    def official(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
        img = torch.zeros(1, h, w, 1)
        region = 0
        for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
                img[:, hs, wsl, :] = region
                region += 1
        ids = window_partition(img, ws).squeeze(-1)
        diff = ids[:, None, :] - ids[:, :, None]
        return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)

    for h, w in [(64, 64), (8, 8), (16, 40), (48, 24)]:
        assert torch.equal(shifted_window_mask(h, w, 8, 4), official(h, w, 8, 4)), (h, w)


@pytest.mark.parametrize("name", ["ups-s-x3", "swinir-light-x2"])
def test_onnx_export_matches_at_odd_sizes(name: str, tmp_path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from lightsr.inference.onnx import export_onnx, load_onnx

    torch.manual_seed(0)
    m = build_model(name).eval()
    up = Upscaler(m, scale=m.scale, name=name, arch="ups", config={}, device="cpu", fast=False)
    result = export_onnx(up, tmp_path / "m.onnx")
    assert result.dynamic and result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    ort = load_onnx(tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    for h, w in [(37, 53), (16, 24)]:  # one graph, two sizes (shifted-window masks in-graph)
        img = rng.random((h, w, 3), dtype=np.float32)
        got, want = ort.upscale(img), up.upscale(img)
        assert got.shape == want.shape == (h * m.scale, w * m.scale, 3)
        assert np.abs(got - want).max() <= 1e-4
