"""lightsr.analysis: LAM and DI, linear CKA, feature and attention maps, `lightsr analyze`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lightsr.analysis._common import (
    Network,
    Probe,
    capture,
    load_network,
    parse_probes,
    reference_path,
    to_spatial,
)
from lightsr.analysis.cka import cka_matrix, linear_cka
from lightsr.analysis.features import capture_features, query_attention
from lightsr.analysis.lam import blur_path, diffusion_index, gini, lam
from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.models.archs.swinir import SwinIR, window_partition
from lightsr.models.catalog import bundled_models
from lightsr.models.resolve import ResolvedModel


@pytest.fixture(autouse=True)
def one_thread():
    """Small ops are slower with more threads on a busy machine (as tests/test_gan.py)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth-ish test image with edges (random blocks, upsampled)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 4 + 1, w // 4 + 1, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")


# --- LAM -----------------------------------------------------------------------------------


def test_blur_path_runs_from_the_blurred_baseline_to_the_input() -> None:
    x = _image(16, 16)
    path = blur_path(x, sigma=1.2, steps=5, kernel_size=9)
    assert path.shape == (6, 3, 16, 16)
    torch.testing.assert_close(path[-1:], x)  # sigma 0: the identity
    assert (path[0] - x).abs().max() > 0.01  # the baseline is blurred
    torch.testing.assert_close(path[0].mean(), x.mean(), atol=2e-3, rtol=0)  # blur keeps mass


@pytest.mark.parametrize("objective", ["sum", "gradient"])
def test_lam_completeness_improves_with_more_steps(objective: str) -> None:
    net = load_network("safmn-x2")
    x = _image(16, 16)
    gaps = []
    for steps in (2, 32):
        r = lam(net, x, (8, 8, 8), steps=steps, objective=objective, batch=8)
        gaps.append(abs(r.total - (r.objective_input - r.objective_baseline)))
        change = abs(r.objective_input - r.objective_baseline)
    assert change > 0.01
    assert gaps[1] < gaps[0]
    assert gaps[1] < 0.03 * change


def test_lam_attribution_is_local_for_a_convolutional_model() -> None:
    """SAFMN's receptive field is bounded but for its pooled SAFM levels; attribution peaks
    at the window (input pixels 4..7 of a x2 window at 8..15)."""
    net = load_network("safmn-x2")
    r = lam(net, _image(32, 32), (8, 8, 8), steps=8)
    peak = np.unravel_index(np.argmax(r.saliency), r.saliency.shape)
    assert 2 <= peak[0] <= 9 and 2 <= peak[1] <= 9
    assert r.saliency.max() == pytest.approx(1.0)
    assert 0 < r.di < 100


def test_diffusion_index_of_one_pixel_is_about_zero_and_of_a_uniform_map_maximal() -> None:
    one = np.zeros((64, 64))
    one[10, 20] = 3.0
    assert diffusion_index(one) < 0.1  # 100 / n plus LAM's 1e-7 offset per value
    assert diffusion_index(np.full((64, 64), 0.2)) == pytest.approx(100.0, abs=1e-6)
    half = np.zeros((64, 64))
    half[:32] = 1.0
    assert diffusion_index(half) == pytest.approx(50.0, abs=0.01)
    # (C, H, W): LAM sums the channels, then takes the absolute value
    three = np.zeros((3, 8, 8))
    three[0, 0, 0], three[1, 0, 0] = 1.0, -1.0  # cancel out at (0, 0)
    three[2, 5, 5] = 1.0
    assert diffusion_index(three) == pytest.approx(diffusion_index(three[2]))


def test_gini_matches_the_textbook_formula() -> None:
    a = np.array([1.0, 2.0, 3.0, 10.0])
    mean_abs_diff = np.abs(a[:, None] - a[None, :]).mean()
    assert gini(a) == pytest.approx(mean_abs_diff / (2 * a.mean()), abs=1e-6)


# --- CKA -----------------------------------------------------------------------------------


def test_linear_cka_identity_and_invariances() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(800, 24, generator=g, dtype=torch.float64) @ torch.randn(
        24, 24, generator=g, dtype=torch.float64
    )
    q, _ = torch.linalg.qr(torch.randn(24, 24, generator=g, dtype=torch.float64))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-10)  # orthogonal transform
    assert linear_cka(x, 7.5 * x + 3.0) == pytest.approx(1.0, abs=1e-10)  # scale (and shift)
    a = torch.diag(torch.linspace(0.1, 10, 24, dtype=torch.float64))
    assert linear_cka(x, x @ a) < 0.99  # not invariant to any invertible map
    y = torch.randn(800, 16, generator=g, dtype=torch.float64)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)


def test_linear_cka_of_independent_features_is_near_zero() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20000, 8, generator=g)
    y = torch.randn(20000, 8, generator=g)
    assert linear_cka(x, y) < 0.01
    z = torch.cat([x[:, :4], y[:, :4]], 1)  # half shared
    assert 0.3 < linear_cka(x, z) < 0.7


def test_cka_matrix_agrees_with_pairwise_cka() -> None:
    g = torch.Generator().manual_seed(2)
    feats = [torch.randn(300, c, generator=g) for c in (4, 9, 6)]
    feats.append(feats[0] @ torch.randn(4, 5, generator=g))
    m = cka_matrix(feats)
    for i in range(4):
        for j in range(4):
            assert m[i, j] == pytest.approx(linear_cka(feats[i], feats[j]), abs=1e-9)


# --- features, hooks and the attention fast path -----------------------------------------


def test_features_equal_a_plain_forward_hook_safmn() -> None:
    net = load_network("safmn-x2")
    x = _image(16, 24)
    ours = capture_features(net, x, parse_probes(net.model, ["feats.3", "feats.5.safm.act"]))
    plain: dict[str, torch.Tensor] = {}
    hooks = [
        net.model.feats[3].register_forward_hook(lambda m, a, o: plain.update(b=o)),
        net.model.feats[5].safm.act.register_forward_hook(lambda m, a, o: plain.update(a=o)),
    ]
    with torch.no_grad():
        net.model(x)
    for h in hooks:
        h.remove()
    torch.testing.assert_close(ours["feats.3"], plain["b"][0])
    torch.testing.assert_close(ours["feats.5.safm.act"], plain["a"][0])


def test_features_of_window_attention_layers_equal_plain_hooks_on_the_fast_path() -> None:
    """UPS-S in inference with one thread runs the chunked path (no hooks on ``attn``); the
    layer outputs recorded on the reference path equal plain hooks on the fast path, and the
    attention's windowed input, put back in place, equals the layer's norm1 output."""
    net = load_network("ups-s-x4")
    x = _image(16, 24)
    layer = "layers.0.residual_group.blocks.1"  # a shifted-window layer
    names = [layer, f"{layer}.attn@in", f"{layer}.norm1"]
    ours = capture_features(net, x, parse_probes(net.model, names))
    plain: dict[str, torch.Tensor] = {}
    block = net.model.layers[0].residual_group.blocks[1]
    calls = []
    hooks = [
        block.register_forward_hook(lambda m, a, o: plain.update(out=o)),
        block.attn.register_forward_hook(lambda m, a, o: calls.append(1)),
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            net.model(x)
    finally:
        torch.set_num_threads(threads)
        for h in hooks:
            h.remove()
    assert not calls  # the fast path indeed bypasses attn's forward hooks
    expected = plain["out"][0].T.reshape(-1, 16, 24)
    torch.testing.assert_close(ours[layer], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours[f"{layer}.attn@in"], ours[f"{layer}.norm1"])


def _tiny_swinir() -> Network:
    torch.manual_seed(0)
    model = SwinIR(embed_dim=12, depths=(2,), num_heads=2, window_size=4, upscaling_factor=2)
    resolved = ResolvedModel(model.eval(), "tiny", "swinir", {}, 2, "random")
    return Network(resolved, torch.device("cpu"), 4, 0.0, 1.0)


def test_swinir_attention_maps_match_a_direct_computation() -> None:
    net = _tiny_swinir()
    x = _image(8, 12)
    attn = net.model.layers[0].residual_group.blocks[0].attn  # unshifted
    probes = parse_probes(
        net.model, ["**.blocks.0.attn@attn", "**.blocks.0.norm1", "layers.0.*.blocks.0.attn@q"]
    )
    got = capture_features(net, x, probes)
    weights = got["layers.0.residual_group.blocks.0.attn@attn"]
    tokens = got["layers.0.residual_group.blocks.0.norm1"]  # (C, H, W)
    win = window_partition(tokens.permute(1, 2, 0)[None], 4)  # (nW, N, C)
    qkv = attn.qkv(win).view(win.shape[0], 16, 3, 2, 6).permute(2, 0, 3, 1, 4)
    s = (qkv[0] * attn.scale) @ qkv[1].transpose(-2, -1) + attn.position_bias()
    torch.testing.assert_close(weights, s.softmax(-1), atol=1e-5, rtol=1e-5)
    q = got["layers.0.residual_group.blocks.0.attn@q"]  # row-major (C, H, W)
    torch.testing.assert_close(q, attn.qkv(tokens.permute(1, 2, 0))[..., :12].permute(2, 0, 1))
    # one query's map: its window only, summing to 1
    probe = Probe("layers.0.residual_group.blocks.0.attn", "attn")
    m = query_attention(net.model, probe, weights, (8, 12), (5, 2))
    assert m.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.count_nonzero(m) == 16 and m[:4, 4:8].sum() == pytest.approx(1.0, abs=1e-6)


def test_layer_globs_stay_within_a_dotted_name_unless_doubled() -> None:
    safmn = load_network("safmn-x2").model
    assert [p.label for p in parse_probes(safmn, ["feats.*"])] == [f"feats.{i}" for i in range(8)]
    assert len(parse_probes(safmn, ["feats.**"])) > 8
    assert [p.label for p in parse_probes(safmn, ["feats.?.safm.act@in"])][:2] == [
        "feats.0.safm.act@in",
        "feats.1.safm.act@in",
    ]
    ups = load_network("ups-s-x4").model
    assert len(parse_probes(ups, ["**.attn@q"])) == 16
    with pytest.raises(LightSRError, match="matches no module"):
        parse_probes(ups, ["*.attn@q"])  # * does not cross the dots


def test_reference_path_changes_only_the_swin_layers_flag_and_capture_removes_hooks() -> None:
    net = load_network("ups-s-x4")
    layer = net.model.layers[0].residual_group.blocks[0]
    probes = [Probe("layers.0.residual_group.blocks.0.attn", "in")]
    with reference_path(net.model), capture(net.model, probes) as store, torch.no_grad():
        flags = {n: m.training for n, m in net.model.named_modules() if m.training}
        net(_image(8, 8))
    assert set(flags) == {
        f"layers.{i}.residual_group.blocks.{j}" for i in range(4) for j in range(4)
    }
    assert len(store[probes[0].label]) == 1
    assert not any(m.training for m in net.model.modules())
    assert not layer.attn._forward_pre_hooks
    assert to_spatial(net.model, probes[0], store[probes[0].label][0], (8, 8)).shape == (
        1,
        48,
        8,
        8,
    )


# --- the command line, on every bundled model ---------------------------------------------


@pytest.fixture
def small_png(tmp_path: Path) -> Path:
    from PIL import Image

    arr = (_image(16, 20)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = tmp_path / "small.png"
    Image.fromarray(arr).save(path)
    return path


@pytest.mark.parametrize("model", bundled_models())
def test_every_analysis_runs_on_every_bundled_model(
    model: str, small_png: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    base = ["--model", model, str(small_png), "-o", str(out)]
    assert main(["analyze", "lam", *base, "--window", "4", "4", "8", "--steps", "2"]) == 0
    assert main(["analyze", "cka", *base]) == 0
    assert main(["analyze", "features", *base]) == 0
    lam_json = json.loads((out / "lam.json").read_text())
    assert len(lam_json["di"]) == 1 and 0 < lam_json["di"][0] <= 100
    cka_json = json.loads((out / "cka.json").read_text())
    k = len(cka_json["layers"])
    assert k >= 2 and np.allclose(np.diag(cka_json["cka"]), 1.0)
    assert np.array(cka_json["cka"]).shape == (k, k)
    assert json.loads((out / "features.json").read_text())["layers"]
    pngs = {p.name for p in out.glob("*.png")}
    assert pngs == {"lam_small_4_4_8.png", "cka.png", "features_small.png"}
    assert np.load(out / "lam_small_4_4_8.npy").shape == (3, 16, 20)


def test_analyze_errors_are_one_line_and_exit_2(
    small_png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--model", "safmn-x2", str(small_png), "-o", str(tmp_path)]
    assert main(["analyze", "lam", *base, "--window", "30", "0", "16"]) == 2
    assert "inside the 40x32 output" in capsys.readouterr().err
    window = ["--window", "0", "0", "8"]
    assert main(["analyze", "lam", *base, *window, "--kernel-size", "4"]) == 2
    assert "use an odd size" in capsys.readouterr().err
    assert main(["analyze", "cka", *base, "--layers", "nope.*"]) == 2
    assert "matches no module" in capsys.readouterr().err
    assert main(["analyze", "features", *base, "--layers", "feats.0@attn"]) == 2
    assert "not a window-attention module" in capsys.readouterr().err
    assert main(["analyze", "features", *base, "--block", "8"]) == 2
    assert "blocks 0 to 7" in capsys.readouterr().err
    assert (
        main(
            [
                "analyze",
                "lam",
                "--weights",
                "a.pth",
                "--model",
                "x",
                str(small_png),
                "-o",
                str(tmp_path),
                "--window",
                "0",
                "0",
                "4",
            ]
        )
        == 2
    )
    assert not list(tmp_path.glob("*.json"))


def test_from_hr_makes_the_benchmark_lr_input(tmp_path: Path) -> None:
    from PIL import Image

    from lightsr.analysis._common import load_images
    from lightsr.evaluation.resize import imresize

    hr = (_image(34, 41, seed=3)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(hr).save(tmp_path / "hr.png")
    (lr,) = load_images([tmp_path / "hr.png"], downscale=4)
    expected = imresize(hr[:32, :40], 1 / 4).astype(np.float32) / 255
    assert lr.shape == (1, 3, 8, 10)
    np.testing.assert_array_equal(lr[0].permute(1, 2, 0).numpy(), expected)
