"""The model zoo: public checkpoints load strictly, are recognised, and reproduce their Set5 PSNR.

Reference values are those of ``shared/weights/README.md`` (PSNR-Y, MATLAB-bicubic LR, border
cropped by the scale). Each architecture is checked at its cheapest scale (x4 where it has one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightsr.evaluation.bench import count_complexity, input_size_for_output
from lightsr.evaluation.evaluate import evaluate
from lightsr.evaluation.metrics import rgb_to_y
from lightsr.evaluation.resize import imresize, modcrop
from lightsr.inference.io import read_image
from lightsr.inference.upscaler import load_model
from lightsr.models.archs._ycbcr import run_on_y
from lightsr.models.archs.carn import CARNM
from lightsr.models.checkpoint import detect_arch, load_checkpoint, save_safetensors
from lightsr.models.registry import MODELS, build_arch, build_model, get_arch

from conftest import fp16_works, need_shared

# file (under shared/weights) -> (arch, detected scale, exact parameter count)
CHECKPOINTS: dict[str, tuple[str, int, int]] = {
    "baselines/IMDN_x2.pth": ("imdn", 2, 694_404),
    "baselines/IMDN_x3.pth": ("imdn", 3, 703_059),
    "baselines/IMDN_x4.pth": ("imdn", 4, 715_176),
    "baselines/PANx2_DF2K.pth": ("pan", 2, 261_403),
    "baselines/PANx3_DF2K.pth": ("pan", 3, 261_403),  # x3 from the file name (same tensors)
    "baselines/PANx4_DF2K.pth": ("pan", 4, 272_419),
    "baselines/rlfn_x2.pth": ("rlfn", 2, 526_856),
    "baselines/rlfn_x4.pth": ("rlfn", 4, 543_740),
    "baselines/rlfn_s_x2.pth": ("rlfn", 2, 454_620),
    "baselines/rlfn_s_x4.pth": ("rlfn", 4, 470_208),
    "baselines/RFDN_AIM_x4.pth": ("rfdn", 4, 433_448),
    "baselines/CARN_M.pth": ("carn_m", 4, 414_811),  # all three upsamplers and the mean shifts
    "baselines/FSRCNN_T91_x2.pth": ("fsrcnn", 2, 12_809),
    "baselines/FSRCNN_T91_x3.pth": ("fsrcnn", 3, 12_809),
    "baselines/FSRCNN_T91_x4.pth": ("fsrcnn", 4, 12_809),
    "safmn/SAFMN_NTIRE2023_x4.pth": ("safmn_ntire2023", 4, 237_000),
    "safmn/SAFMNPP_NTIRE2024_x4.pth": ("safmnpp", 4, 211_572),
    "safmn/light_SAFMNPP_AIS2024_x4.pth": ("light_safmnpp", 4, 66_176),
}

# One scale per architecture: (file, scale, Set5 PSNR-Y of the README).
SET5: dict[str, tuple[str, int, float]] = {
    "imdn": ("baselines/IMDN_x4.pth", 4, 32.21),
    "pan": ("baselines/PANx4_DF2K.pth", 4, 32.13),
    "rlfn": ("baselines/rlfn_x4.pth", 4, 32.24),
    "rlfn-s": ("baselines/rlfn_s_x4.pth", 4, 32.24),
    "rfdn": ("baselines/RFDN_AIM_x4.pth", 4, 32.16),
    "carn-m": ("baselines/CARN_M.pth", 4, 31.88),
    # Through the RGB pipeline (SR rounded to 8-bit RGB, then Y); see test_fsrcnn_y_plane.
    "fsrcnn": ("baselines/FSRCNN_T91_x4.pth", 4, 30.51),
    "safmn-ntire2023": ("safmn/SAFMN_NTIRE2023_x4.pth", 4, 32.17),
    "safmnpp": ("safmn/SAFMNPP_NTIRE2024_x4.pth", 4, 32.02),
    # The README gives no Set5 value (a model for AVIF-compressed inputs): lightsr's own
    # measurement, pinned against regressions.
    "light-safmnpp": ("safmn/light_SAFMNPP_AIS2024_x4.pth", 4, 30.43),
}


def weights(rel: str) -> Path:
    return need_shared("weights", *rel.split("/"))


@pytest.mark.parametrize("rel", sorted(CHECKPOINTS))
def test_checkpoint_loads_strictly_and_is_detected(rel: str) -> None:
    arch, scale, params = CHECKPOINTS[rel]
    model, found = load_checkpoint(weights(rel))  # strict=True inside
    assert (found.arch, found.scale) == (arch, scale)
    assert sum(p.numel() for p in model.parameters()) == params
    assert not model.training


@pytest.mark.parametrize("name", sorted(SET5))
def test_set5_psnr_matches_reference(name: str) -> None:
    rel, scale, expected = SET5[name]
    up = load_model(weights(rel), scale=scale, device="cpu")
    (r,) = evaluate(up.upscale, name, ["Set5"], scale, data_root=need_shared("datasets"))
    assert abs(r.psnr - expected) <= 0.02, (name, r.psnr, expected)


@pytest.mark.parametrize(("scale", "expected"), [(2, 37.10), (3, 32.59), (4, 30.51)])
def test_fsrcnn_y_plane(scale: int, expected: float) -> None:
    """FSRCNN's reference values round the *Y plane* to 8 bits (the Y-only protocol): the
    network reproduces them exactly. Through RGB (rounded per channel, a finer quantisation of
    Y) the same outputs read 0.013-0.033 dB higher."""
    model, _ = load_checkpoint(weights(f"baselines/FSRCNN_T91_x{scale}.pth"))
    scores = []
    for path in sorted(need_shared("datasets", "Set5", "HR").glob("*.png")):
        hr = modcrop(read_image(path)[:, :, :3], scale)
        lr_y = rgb_to_y(imresize(hr, 1 / scale)) / 255.0
        with torch.no_grad():
            sr = model.forward_y(torch.from_numpy(lr_y).float()[None, None])[0, 0].numpy()
        sr8 = np.clip(np.floor(sr.astype(np.float64) * 255.0 + 0.5), 0, 255)
        diff = (sr8 - rgb_to_y(hr))[scale:-scale, scale:-scale]
        scores.append(10 * np.log10(255.0**2 / np.mean(diff**2)))
    assert abs(float(np.mean(scores)) - expected) <= 0.005, scores


def test_carn_m_one_checkpoint_three_scales(tmp_path: Path) -> None:
    path = weights("baselines/CARN_M.pth")
    for scale in (2, 3, 4):
        up = load_model(path, scale=scale, device="cpu")
        assert up.scale == scale and up.model.scale == scale
        assert up.upscale(np.zeros((9, 7, 3), np.uint8)).shape == (9 * scale, 7 * scale, 3)
    model, found = load_checkpoint(path)  # no scale asked: x4, the other branches listed
    assert (found.scale, found.scales) == (4, (2, 3, 4))
    x = torch.rand(1, 3, 8, 6)
    with torch.no_grad():
        assert model(x, scale=3).shape == (1, 3, 24, 18)
    # lightsr's own copy keeps the choice of branch
    out = save_safetensors(model, tmp_path / "carn_m.safetensors")
    _, again = load_checkpoint(out, scale=2)
    assert (again.arch, again.scale) == ("carn_m", 2)
    single = CARNM(upscaling_factor=3, multi_scale=False)
    with pytest.raises(ValueError, match="x3"):
        single(x, scale=2)


def test_scale_free_checkpoints_take_the_asked_scale() -> None:
    for scale in (2, 3):
        assert load_model(weights("baselines/PANx2_DF2K.pth"), scale=scale).scale == scale
    assert load_checkpoint(weights("baselines/FSRCNN_T91_x2.pth"), scale=4)[1].scale == 4
    with pytest.raises(Exception, match="x4, but scale 3"):
        load_model(weights("baselines/PANx4_DF2K.pth"), scale=3)


ZOO = sorted(n for n, s in MODELS.items() if s.arch not in ("safmn", "swinir", "ups"))


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_detected_from_its_own_state_dict(name: str) -> None:
    spec = MODELS[name]
    found = detect_arch(build_model(name).state_dict())
    assert found is not None and found.arch == spec.arch
    assert spec.scale in (found.scales or (found.scale,))
    assert {k: found.config[k] for k in spec.config} == spec.config


# Exact parameter counts of the models without public weights (x2, x3, x4).
NO_WEIGHTS_PARAMS = {
    "espcn": (21_284, 22_729, 24_752),
    "edsr-baseline": (1_369_883, 1_554_523, 1_517_595),  # with the two fixed mean shifts (24)
}


@pytest.mark.parametrize("base", sorted(NO_WEIGHTS_PARAMS))
def test_models_without_weights_build_count_and_train(base: str) -> None:
    for scale, params in zip((2, 3, 4), NO_WEIGHTS_PARAMS[base], strict=True):
        torch.manual_seed(0)
        model = build_model(f"{base}-x{scale}")
        assert sum(p.numel() for p in model.parameters()) == params
        x = torch.rand(2, 3, 12, 10)
        y = model(x)
        assert y.shape == (2, 3, 12 * scale, 10 * scale)
        y.mean().backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(
    ("name", "flops_g"),
    [  # multiply-adds printed by the IMDN, PAN and CARN papers (1280x720 output)
        ("imdn-x4", 40.9),
        ("pan-x2", 70.5),
        ("carn-m-x2", 91.2),
        ("edsr-baseline-x2", 316.3),
    ],
)
def test_cost_matches_the_papers(name: str, flops_g: float) -> None:
    spec = MODELS[name]
    c = count_complexity(build_model(name), input_size_for_output((1280, 720), spec.scale))
    assert abs(c.flops / 1e9 - flops_g) < 0.1, c.flops


@pytest.mark.parametrize("arch", ["safmn_ntire2023", "safmnpp", "light_safmnpp"])
def test_challenge_variants_run_on_any_size(arch: str) -> None:
    model = build_arch(arch, scale=4).eval()
    with torch.no_grad():
        for h, w in ((5, 7), (37, 53)):  # smaller than the pooling; not a multiple of it
            y = model(torch.rand(1, 3, h, w))
            assert y.shape == (1, 3, 4 * h, 4 * w) and torch.isfinite(y).all()


def test_y_channel_wrapper_keeps_colour() -> None:
    """FSRCNN/ESPCN take and return RGB: with a luma "network" that only upsamples, a flat
    colour comes back unchanged (YCbCr round trip, CbCr bicubic)."""
    x = torch.tensor([0.8, 0.3, 0.1]).view(1, 3, 1, 1).expand(1, 3, 6, 6)
    y = run_on_y(lambda t: F.interpolate(t, scale_factor=2), x, 2)
    assert torch.allclose(y, x[:, :, :1, :1].expand(1, 3, 12, 12), atol=1e-6)


#: One model per architecture for the float16 check: a reference checkpoint (under
#: shared/weights) where there is one, else "bundled:<name>" or "random:<name>".
FP16_MODELS: dict[str, str] = {
    "safmn": "safmn/SAFMN_DF2K_x2.pth",
    "swinir": "random:swinir-light-x2",
    "ups": "bundled:ups-s-x4",
    "imdn": "baselines/IMDN_x4.pth",
    "pan": "baselines/PANx4_DF2K.pth",
    "rlfn": "baselines/rlfn_x4.pth",
    "rfdn": "baselines/RFDN_AIM_x4.pth",
    "carn_m": "baselines/CARN_M.pth",
    "fsrcnn": "baselines/FSRCNN_T91_x4.pth",
    "espcn": "random:espcn-x4",
    "edsr": "random:edsr-baseline-x4",
    "safmn_ntire2023": "safmn/SAFMN_NTIRE2023_x4.pth",
    "safmnpp": "safmn/SAFMNPP_NTIRE2024_x4.pth",
    "light_safmnpp": "safmn/light_SAFMNPP_AIS2024_x4.pth",
}


def _fp16_model(ref: str) -> torch.nn.Module:
    kind, _, name = ref.partition(":")
    if kind == "random":
        torch.manual_seed(0)
        return build_model(name).eval()
    if kind == "bundled":
        return load_model(name, device="cpu", fast=False).model
    return load_checkpoint(weights(ref))[0]


@pytest.mark.parametrize("arch", sorted(FP16_MODELS))
def test_fp16_flag_matches_the_weights(arch: str) -> None:
    """``supports_fp16`` is False exactly where float16 fails: a float32 activation beyond
    float16's range, or CPU float16 autocast more than 0.05 off float32."""
    works, peak, err = fp16_works(_fp16_model(FP16_MODELS[arch]))
    assert works == get_arch(arch).supports_fp16, (arch, peak, err)
