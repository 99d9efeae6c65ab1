"""The bundled models (SAFMN x2/x3/x4, UPS-S x4): present, loaded offline, detected, the
defaults, and pinned on Set5.

The Set5 values are what ``python benchmarks/model_card.py`` measured for the committed weights
(docs/models.md). A change to the model code, the bicubic resize, the metrics or the weights
moves them by more than 0.01 dB and fails here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lightsr
from lightsr.cli import main
from lightsr.evaluation.evaluate import evaluate
from lightsr.inference.io import read_image
from lightsr.models.checkpoint import load_checkpoint
from lightsr.models.registry import MODELS
from lightsr.restoration.api import TASK_MODELS

from conftest import REPO, need_shared

WEIGHTS = Path(lightsr.__file__).resolve().parent / "models" / "weights"

#: Set5 PSNR-Y (dB), measured by benchmarks/model_card.py for the committed weights.
SET5_PSNR = {2: 37.069, 3: 33.306, 4: 31.004}
UPS_S_X4_SET5_PSNR = 30.244


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bundled_weights_load_offline_and_are_detected(scale: int) -> None:
    path = WEIGHTS / f"safmn_x{scale}.safetensors"
    assert path.is_file(), f"{path} is missing: the package must ship its default models"
    assert path.stat().st_size < 2_000_000
    net, found = load_checkpoint(path)
    assert (found.arch, found.scale) == ("safmn", scale)
    assert found.config["dim"] == 36 and found.config["n_blocks"] == 8
    assert sum(p.numel() for p in net.parameters()) == {2: 227_820, 3: 232_695, 4: 239_520}[scale]
    model = lightsr.load_model(f"safmn-x{scale}", device="cpu")
    out = model.upscale(np.random.default_rng(scale).random((19, 26, 3), dtype=np.float32))
    assert out.shape == (19 * scale, 26 * scale, 3) and np.isfinite(out).all()


def test_default_model_is_bundled_safmn_x4() -> None:
    model = lightsr.load_model(device="cpu")
    assert (model.name, model.scale) == ("safmn-x4", 4)
    assert lightsr.load_model(scale=2, device="cpu").name == "safmn-x2"
    assert lightsr.load_model("safmn", scale=3, device="cpu").scale == 3


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_psnr_is_pinned(scale: int) -> None:
    need_shared("datasets", "Set5")
    model = lightsr.load_model(f"safmn-x{scale}", device="cpu")
    (result,) = evaluate(model.upscale, f"safmn-x{scale}", ["Set5"], scale)
    assert abs(result.psnr - SET5_PSNR[scale]) <= 0.01, (scale, result.psnr)


def test_readme_main_job_upscales_the_sample(tmp_path: Path) -> None:
    sample = REPO / "examples" / "chelsea.png"
    out = tmp_path / "chelsea_x4.png"
    assert main(["upscale", str(sample), "-o", str(out), "-q"]) == 0
    assert read_image(out).shape == (192 * 4, 256 * 4, 3)
    assert (REPO / "examples" / "README.md").read_text().count("CC0") >= 1


def test_bundled_ups_s_x4_loads_offline_and_is_detected() -> None:
    path = WEIGHTS / "ups_s_x4.safetensors"
    assert path.is_file(), f"{path} is missing: the package must ship its UPS-S x4 model"
    assert path.stat().st_size < 2_000_000
    net, found = load_checkpoint(path)
    assert (found.arch, found.scale) == ("ups", 4)
    assert found.config == MODELS["ups-s-x4"].config
    assert sum(p.numel() for p in net.parameters()) == 334_176
    model = lightsr.load_model("ups-s", scale=4, device="cpu")
    assert model.name == "ups-s-x4"
    # sides that are not multiples of the window (8): padded and cropped back
    out = model.upscale(np.random.default_rng(0).random((19, 26, 3), dtype=np.float32))
    assert out.shape == (19 * 4, 26 * 4, 3) and np.isfinite(out).all()


def test_ups_s_x4_set5_psnr_is_pinned() -> None:
    need_shared("datasets", "Set5")
    model = lightsr.load_model("ups-s-x4", device="cpu")
    (result,) = evaluate(model.upscale, "ups-s-x4", ["Set5"], 4)
    assert abs(result.psnr - UPS_S_X4_SET5_PSNR) <= 0.01, result.psnr


def test_cli_upscales_with_bundled_ups_s(tmp_path: Path) -> None:
    out = tmp_path / "chelsea_ups.png"
    sample = REPO / "examples" / "chelsea.png"
    assert main(["upscale", str(sample), "--model", "ups-s-x4", "-o", str(out), "-q"]) == 0
    assert read_image(out).shape == (192 * 4, 256 * 4, 3)


#: Set5 x4 PSNR-Y (dB) under ``--degrade high-order:0`` (Real-ESRGAN's second-order model,
#: seed 0), measured for the committed real-world weights and for safmn-x4 on the same LR.
REAL_SET5_HIGH_ORDER = {"real-safmn-x4": 22.85, "safmn-x4": 21.68}


def test_real_safmn_x4_is_bundled_and_beats_safmn_x4_on_degraded_set5() -> None:
    need_shared("datasets", "Set5")
    from lightsr.evaluation.evaluate import parse_degradations

    path = WEIGHTS / "real_safmn_x4.safetensors"
    assert path.is_file() and path.stat().st_size < 2_000_000
    _, found = load_checkpoint(path)
    assert (found.arch, found.scale, found.config["dim"]) == ("safmn", 4, 36)
    degradations = parse_degradations(["high-order:0"])
    psnr = {}
    for name in REAL_SET5_HIGH_ORDER:
        model = lightsr.load_model(name, device="cpu")
        (result,) = evaluate(model.upscale, name, ["Set5"], 4, degradations=degradations)
        psnr[name] = result.psnr
        assert abs(result.psnr - REAL_SET5_HIGH_ORDER[name]) <= 0.01, (name, result.psnr)
    assert psnr["real-safmn-x4"] > psnr["safmn-x4"] + 1.0


# --------------------------------------------------------------------------------------------
# Restoration models (docs/restoration.md): values measured for the committed weights with
# `lightsr eval --task ...` (the commands in the doc); the tests use fewer images to stay fast.

#: Middlebury x4 RMSE (disparity levels), all three maps.
DEPTH_X4_RMSE = {"depth-safmn-x4": 1.2942, "bicubic": 2.2622}


def _task_scores(method, name: str, dataset: str, task, *, scale: int = 1, limit=None):
    from lightsr.restoration.evaluate import evaluate_task

    (result,) = evaluate_task(method, name, [dataset], task, scale=scale, limit=limit)
    return result


def test_depth_safmn_x4_is_bundled_and_beats_bicubic_on_middlebury() -> None:
    need_shared("datasets", "Middlebury", "depth")
    from lightsr.restoration.tasks import TaskSpec

    path = WEIGHTS / "depth_safmn_x4.safetensors"
    assert path.is_file() and path.stat().st_size < 2_000_000
    model = lightsr.load_model("depth-safmn-x4", device="cpu")
    assert model.scale == 4
    rmse = {
        name: _task_scores(
            model.upscale if name != "bicubic" else name, name, "Middlebury", TaskSpec("depth"),
            scale=4,
        ).rmse
        for name in DEPTH_X4_RMSE
    }  # fmt: skip
    for name, want in DEPTH_X4_RMSE.items():
        assert abs(rmse[name] - want) <= 1e-3, (name, rmse[name])
    assert rmse["depth-safmn-x4"] < rmse["bicubic"] - 0.5


#: CBSD68, first two images (101085, 101087), PSNR on RGB (dB): the bundled model and the
#: degraded input itself, same seed.
RESTORE_PINS = {
    "safmn-denoise": ("denoise", {"sigma": (25.0, 25.0)}, 30.096, 20.769),
    "safmn-denoise-s25": ("denoise", {"sigma": (25.0, 25.0)}, 30.176, 20.769),
    "safmn-jpeg": ("jpeg", {"quality": (20, 20)}, 28.205, 27.110),
}


@pytest.mark.parametrize("name", sorted(RESTORE_PINS))
def test_restoration_models_are_bundled_and_pinned_on_cbsd68(name: str) -> None:
    need_shared("datasets", "CBSD68", "HR")
    from lightsr.restoration.tasks import TaskSpec

    task_name, level, want, identity = RESTORE_PINS[name]
    path = WEIGHTS / f"{name.replace('-', '_')}.safetensors"
    assert path.is_file() and path.stat().st_size < 2_000_000
    restorer = lightsr.load_restorer(name, task=task_name, device="cpu")
    assert restorer.upscaler.scale == 1
    if name in TASK_MODELS.values():  # the task's default model
        assert lightsr.load_restorer(task=task_name).name == name
    task = TaskSpec(task_name, **level)
    got = _task_scores(restorer.upscaler.upscale, name, "CBSD68", task, limit=2).psnr
    base = _task_scores("identity", "identity", "CBSD68", task, limit=2).psnr
    assert abs(got - want) <= 0.01 and abs(base - identity) <= 0.01, (got, base)
    assert got > base + 0.9
