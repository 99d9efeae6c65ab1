"""The NTIRE efficient-SR entries: SPAN, DSCF, SPAN-F, ESPAN, SAFMNv3, EFDN.

Reference values are those of ``shared/weights/ntire/README.md`` (Set5 x4 PSNR-Y measured with
each team's official code: MATLAB-bicubic LR, border 4, rounded 8-bit output).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.evaluation.bench import NTIRE_MODELS, count_complexity, ntire_sources
from lightsr.evaluation.evaluate import evaluate
from lightsr.inference.tiling import pad_to_multiple
from lightsr.inference.upscaler import load_model
from lightsr.models.archs.span import SPAN, reparameterise
from lightsr.models.checkpoint import detect_arch, load_checkpoint
from lightsr.models.registry import MODELS, build_arch, build_model, get_arch

from conftest import fp16_works, need_shared

# file under shared/weights/ntire -> (catalog name, arch, config, params, Set5 x4 PSNR-Y)
CHECKPOINTS: dict[str, tuple[str, str, dict[str, object], int, float]] = {
    "NTIRE2024_team38_span_ch28_slim.pth": (
        "span-ch28-x4", "span", {"feature_channels": 28}, 150_688, 31.7459),
    "NTIRE2025_team23_DSCF.pth": ("dscf-x4", "span", {"feature_channels": 26}, 130_828, 31.7467),
    "NTIRE2025_team24_spanf.pth": (
        "span-f-x4", "spanf", {"feature_channels": 32, "n_blocks": 5}, 148_288, 31.7736),
    "NTIRE2025_team36_espan.pth": (
        "espan-x4", "espan", {"feature_channels": 32, "first_kernel": 9, "n_blocks": 5},
        192_272, 31.9422),
    "NTIRE2025_team19_safmnv3.pth": (
        "safmnv3-x4", "safmnv3", {"dim": 40, "n_blocks": 6, "ffn_scale": 1.5, "split_dim": 12},
        144_672, 32.0347),
    "NTIRE2025_team00_EFDN.pth": ("efdn-x4", "efdn", {"n_feats": 48}, 276_192, 32.0797),
}  # fmt: skip

#: FLOPs (1 multiply-add = 1 FLOP) at the challenges' 256x256 input, as counted by lightsr;
#: the challenge reports print 9.83G (SPAN), 8.54G (DSCF) and 16.70G (EFDN).
FLOPS_256_G = {
    "span-ch28-x4": 9.83,
    "dscf-x4": 8.54,
    "span-f-x4": 9.68,
    "espan-x4": 12.56,
    "safmnv3-x4": 9.42,
    "efdn-x4": 16.70,
}


#: Small random configurations (ONNX export, small inputs): quick on 2 cores.
ONNX_SMALL = {
    "span": {"feature_channels": 8},
    "spanf": {"feature_channels": 8, "n_blocks": 2},
    "espan": {"feature_channels": 8, "n_blocks": 1},
    "efdn": {"n_feats": 8},
    "safmnv3": {"dim": 16, "n_blocks": 1, "split_dim": 4},
}


def ntire(file: str) -> Path:
    return need_shared("weights", "ntire", file)


@pytest.mark.parametrize("file", sorted(CHECKPOINTS))
def test_checkpoint_loads_strictly_and_is_detected(file: str) -> None:
    name, arch, config, params, _ = CHECKPOINTS[file]
    model, found = load_checkpoint(ntire(file))  # strict=True inside
    assert (found.arch, found.scale, found.config) == (arch, 4, config)
    assert sum(p.numel() for p in model.parameters()) == params == MODELS[name].params
    assert (MODELS[name].arch, MODELS[name].config) == (arch, config)


@pytest.mark.parametrize("file", sorted(CHECKPOINTS))
def test_set5_psnr_matches_the_official_code(file: str) -> None:
    name, _, _, _, expected = CHECKPOINTS[file]
    up = load_model(ntire(file), scale=4, device="cpu")
    (r,) = evaluate(up.upscale, name, ["Set5"], 4, data_root=need_shared("datasets"))
    assert abs(r.psnr - expected) <= 0.02, (name, r.psnr, expected)


@pytest.mark.parametrize("name", sorted(FLOPS_256_G))
def test_flops_at_the_challenge_input(name: str) -> None:
    c = count_complexity(build_model(name), (256, 256))
    assert abs(c.flops / 1e9 - FLOPS_256_G[name]) < 0.005, c.flops


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Random, non-zero weights and biases everywhere (default init leaves some at zero)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model.eval()


def test_span_training_form_reparameterises_exactly() -> None:
    train = _perturbed(SPAN(feature_channels=8, upscaling_factor=3, training_form=True))
    train = train.double()  # float64: the check is on the algebra, not float32 rounding
    found = detect_arch(train.state_dict())
    assert found is not None and (found.arch, found.scale) == ("span", 3)
    assert found.config == {"feature_channels": 8, "training_form": True}
    fused = reparameterise(train)
    assert not fused.training_form and not any(".sk." in k for k in fused.state_dict())
    assert detect_arch(fused.state_dict()).config == {"feature_channels": 8}  # type: ignore[union-attr]
    x = torch.rand(1, 3, 13, 11, dtype=torch.float64)
    with torch.no_grad():
        want, got = train(x), fused(x)
    assert torch.allclose(got, want, atol=1e-10, rtol=0), float((got - want).abs().max())
    with torch.no_grad():  # float32, as the official code fuses: ~1e-6 on outputs of ~1
        err = (reparameterise(train.float())(x.float()) - want.float()).abs().max()
    assert float(err) < 1e-4, float(err)


def test_span_without_mean_shift_keeps_its_marker() -> None:
    model = SPAN(feature_channels=8, norm=False)
    assert "no_norm" in model.state_dict() and "mean" not in model.state_dict()
    found = detect_arch(model.state_dict())
    assert found is not None and found.config == {"feature_channels": 8, "norm": False}


def test_spanf_near_upsampler_starts_as_nearest_neighbour() -> None:
    model = build_arch("spanf", scale=4, feature_channels=8, n_blocks=2)
    x = torch.rand(1, 3, 5, 7)
    near = F.pixel_shuffle(model.conv_near(x), 4)
    assert torch.equal(near, F.interpolate(x, scale_factor=4, mode="nearest"))


@pytest.mark.parametrize("arch", ["efdn", "safmnv3"])
def test_small_inputs_are_padded_inside(arch: str) -> None:
    model = build_arch(arch, scale=4, **ONNX_SMALL[arch]).eval()
    with torch.no_grad():
        for h, w in ((5, 7), (37, 29)):
            y = model(torch.rand(1, 3, h, w))
            assert y.shape == (1, 3, 4 * h, 4 * w) and torch.isfinite(y).all()


@pytest.mark.parametrize("arch", sorted(ONNX_SMALL))
def test_onnx_dynamic_shapes_match_pytorch_at_odd_sizes(arch: str, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from lightsr.inference.onnx import OnnxRuntimeModel, export_onnx

    model = _perturbed(build_arch(arch, scale=4, **ONNX_SMALL[arch]))
    res = export_onnx(model, tmp_path / f"{arch}.onnx")  # verified against PyTorch inside
    assert res.dynamic and res.max_abs_diff is not None and res.max_abs_diff <= 1e-4
    ort = OnnxRuntimeModel(res.path)
    h, w = 29, 37
    low = torch.rand(1, 3, h // 4, w // 4, generator=torch.Generator().manual_seed(0))
    x = F.interpolate(low, size=(h, w), mode="bilinear")
    # SAFMNv3's graph takes multiples of 8 (the caller pads, as Upscaler does); the rest any size
    x = pad_to_multiple(x, model.onnx_size_multiple)
    with torch.no_grad():
        want, got = model(x), ort(x)
    assert got.shape == want.shape == (1, 3, 4 * x.shape[-2], 4 * x.shape[-1])
    assert float((got - want).abs().max()) <= 1e-5 * max(1.0, float(want.abs().max())), arch


@pytest.mark.parametrize("file", sorted(CHECKPOINTS))
def test_fp16_flag_matches_the_weights(file: str) -> None:
    """``supports_fp16`` by the criterion :func:`conftest.fp16_works` holds for the zoo too:
    no float32 activation beyond float16's range, CPU float16 autocast within 0.05 of float32."""
    model, found = load_checkpoint(ntire(file))
    works, peak, err = fp16_works(model)
    assert works == get_arch(found.arch).supports_fp16, (file, peak, err)


def test_ntire_sources_list_what_is_there(tmp_path: Path) -> None:
    root = need_shared("weights")
    found = dict(ntire_sources(root))
    assert set(found) == {name for name, _ in NTIRE_MODELS}
    assert found["safmn-x4"] == "safmn-x4"  # bundled
    assert found["span-ch28-x4"] == str(root / "ntire" / "NTIRE2024_team38_span_ch28_slim.pth")
    with pytest.raises(LightSRError, match="no NTIRE checkpoint"):
        ntire_sources(tmp_path)


def test_cli_bench_ntire_prints_the_challenge_columns(capsys: pytest.CaptureFixture[str]) -> None:
    need_shared("weights", "ntire")
    assert main(["bench", "--ntire", "--no-latency", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {name for name, _ in NTIRE_MODELS}
    for name, flops in FLOPS_256_G.items():
        r = rows[name]
        assert r["input_size"] == [256, 256] and r["output_size"] == [1024, 1024]
        assert abs(r["flops_g"] - flops) < 0.005 and r["params"] == MODELS[name].params
        assert r["acts_m"] > 0 and r["convs"] > 0 and r["paper"] == {}
    assert main(["bench", "--ntire", "safmn-x4"]) == 2  # models or --ntire, not both
    assert main(["bench", "--ntire", "--scale", "2"]) == 2


def test_cli_bench_ntire_times_and_measures_memory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One checkpoint only (the others' files hidden), two timed runs at a small input."""
    weights = tmp_path / "weights" / "ntire"
    weights.mkdir(parents=True)
    (weights / "NTIRE2025_team23_DSCF.pth").symlink_to(ntire("NTIRE2025_team23_DSCF.pth"))
    monkeypatch.setenv("LIGHTSR_SHARED", str(tmp_path))
    argv = ["bench", "--ntire", "--runs", "2", "--warmup", "0", "--input-size", "64x48"]
    assert main([*argv, "--device", "cpu", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) <= {"dscf-x4", "safmn-x4"} and "dscf-x4" in rows
    r = rows["dscf-x4"]
    assert r["input_size"] == [64, 48] and r["runs"] == 2 and r["latency_ms"] > 0
    assert r["path"] == "plain" and (r["peak_mem_mb"] is None or r["peak_mem_mb"] > 0)


def test_catalog_names_build_what_the_checkpoints_hold() -> None:
    for file, (name, arch, config, params, _) in CHECKPOINTS.items():
        model = build_model(name)
        assert sum(p.numel() for p in model.parameters()) == params, file
        assert np.isclose(MODELS[name].params or 0, params)
        assert detect_arch(model.state_dict()).arch == arch  # type: ignore[union-attr]
        assert MODELS[name].config == config
