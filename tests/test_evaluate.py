"""Evaluation: the paper's numbers through `lightsr eval`, bicubic rows, formats, options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lightsr.cli import main
from lightsr.evaluation.evaluate import (
    evaluate,
    format_results,
    geometric_ensemble,
    resolve_dataset,
    self_ensemble,
)
from lightsr.inference.upscaler import load_model

from conftest import need_shared

# Table 1 of the SAFMN paper, x2 (PSNR, SSIM on Y).
PAPER_SAFMN_X2 = {"Set5": (38.00, 0.9605), "Set14": (33.54, 0.9177), "B100": (32.16, 0.8995)}
PAPER_BICUBIC = {
    "Set5": {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)},
    "B100": {2: (29.56, 0.8431), 3: (27.21, 0.7385), 4: (25.96, 0.6675)},
}


def weights() -> str:
    return str(need_shared("weights", "safmn", "SAFMN_DF2K_x2.pth"))


def data_root() -> Path:
    return need_shared("datasets")


@pytest.fixture(scope="module")
def safmn_x2_results() -> dict[str, tuple[float, float]]:
    up = load_model(weights(), device="cpu")
    results = evaluate(up.upscale, "safmn", ["Set5", "Set14", "B100"], 2, data_root=data_root())
    return {r.dataset: (r.psnr, r.ssim) for r in results}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["Set5", "Set14", "B100"])
def test_paper_safmn_x2(safmn_x2_results: dict[str, tuple[float, float]], dataset: str) -> None:
    got_psnr, got_ssim = safmn_x2_results[dataset]
    paper_psnr, paper_ssim = PAPER_SAFMN_X2[dataset]
    assert abs(got_psnr - paper_psnr) <= 0.02, (dataset, got_psnr)
    assert abs(got_ssim - paper_ssim) <= 0.0005, (dataset, got_ssim)


@pytest.mark.parametrize("dataset", ["Set5", pytest.param("B100", marks=pytest.mark.slow)])
def test_bicubic_rows_through_eval(dataset: str) -> None:
    for scale in (2, 3, 4):
        (r,) = evaluate("bicubic", "bicubic", [dataset], scale, data_root=data_root())
        paper_psnr, paper_ssim = PAPER_BICUBIC[dataset][scale]
        assert abs(r.psnr - paper_psnr) <= 0.01, (scale, r.psnr)
        assert abs(r.ssim - paper_ssim) <= 0.001, (scale, r.ssim)
        assert r.images == {"Set5": 5, "B100": 100}[dataset]


def test_paired_lr_equals_on_the_fly() -> None:
    up = load_model(weights(), device="cpu")
    lr_dir = need_shared("datasets", "Set5", "LR_bicubic", "X2")
    (a,) = evaluate(up.upscale, "m", ["Set5"], 2, data_root=data_root(), lr_dir=lr_dir)
    (b,) = evaluate(up.upscale, "m", ["Set5"], 2, data_root=data_root())
    assert a.psnr == b.psnr and a.ssim == b.ssim


def test_self_ensemble_helps_and_inverts_exactly(tmp_path: Path) -> None:
    hr_dir = tmp_path / "one" / "HR"
    hr_dir.mkdir(parents=True)
    shutil.copy(need_shared("datasets", "Set5", "HR", "bird.png"), hr_dir)
    up = load_model(weights(), device="cpu")
    (plain,) = evaluate(up.upscale, "m", [str(tmp_path / "one")], 2)
    (plus,) = evaluate(up.upscale, "m", [str(tmp_path / "one")], 2, ensemble=True)
    assert plus.psnr > plain.psnr
    # the transforms are undone exactly: an identity "network" gives back its input
    lr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_allclose(self_ensemble(lambda a: a, lr), lr / 255.0, atol=1e-6)


def test_geometric_ensemble_averages_the_eight_views() -> None:
    """A column ramp seen through the 8 flips/rotations averages to 0.5 everywhere (rows and
    columns, both directions, twice each); maps without channels and uint8 outputs work."""

    def ramp(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.linspace(0.0, 1.0, a.shape[1]), a.shape[:2]).copy()

    x = np.zeros((5, 9), np.float32)
    np.testing.assert_allclose(geometric_ensemble(ramp, x), 0.5, atol=1e-6)
    img = np.random.default_rng(1).random((6, 4, 3)).astype(np.float32)
    as8 = geometric_ensemble(lambda a: np.round(a * 255).astype(np.uint8), img)
    np.testing.assert_allclose(as8, np.round(img * 255) / 255, atol=1e-6)


def test_geometric_ensemble_keeps_a_block_grid_aligned() -> None:
    """With ``period``, every view the model sees has sides that are multiples of it (so that a
    JPEG's blocks stay on the grid when flipped), and the mean is cropped back: exact for an
    identity and for a x2 nearest upscale of odd-sized images."""
    seen: list[tuple[int, ...]] = []

    def identity(a: np.ndarray) -> np.ndarray:
        seen.append(a.shape)
        return a

    img = np.random.default_rng(2).random((21, 35, 3)).astype(np.float32)
    np.testing.assert_allclose(geometric_ensemble(identity, img, period=16), img, atol=1e-6)
    assert len(seen) == 8 and all(h % 16 == 0 and w % 16 == 0 for h, w, _ in seen)
    up = geometric_ensemble(lambda a: a.repeat(2, 0).repeat(2, 1), img, period=16)
    np.testing.assert_allclose(up, img.repeat(2, 0).repeat(2, 1), atol=1e-6)
    seen.clear()
    geometric_ensemble(identity, img)  # period 1: the image as it is
    assert {(h, w) for h, w, _ in seen} == {(21, 35), (35, 21)}


def test_cli_json_csv_markdown_and_save_images(tmp_path: Path, capsys) -> None:
    root = str(data_root())
    base = ["eval", "--model", "bicubic", "--scale", "4", "--datasets", "Set5", "--data-root", root]
    assert main([*base, "--json", "--save-images", str(tmp_path)]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert {"model", "dataset", "scale", "psnr", "ssim", "images"} <= set(rec)
    assert rec["dataset"] == "Set5" and rec["scale"] == 4 and rec["images"] == 5
    assert abs(rec["psnr"] - 28.42) <= 0.01
    assert len(list((tmp_path / "Set5").glob("*.png"))) == 5
    assert main([*base, "--limit", "2", "--json", "--per-image"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["images"] == 2 and [r["image"] for r in rec["per_image"]] == ["baby", "bird"]
    assert main([*base, "--limit", "0"]) == 2
    assert "--limit: expected a number of images >= 1, found 0" in capsys.readouterr().err
    assert main([*base, "--csv"]) == 0
    assert capsys.readouterr().out.startswith("model,dataset,scale,degrade,psnr,ssim")
    assert main([*base, "--markdown"]) == 0
    assert "| bicubic | x4 | 28.42/0.8104 |" in capsys.readouterr().out


def test_format_results_table() -> None:
    (r,) = evaluate("bicubic", "bicubic", ["Set5"], 3, data_root=data_root())
    assert format_results([r]).splitlines()[2] == "| bicubic | x3 | 30.39/0.8682 |"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "bicubic", "--datasets", "Set5"], "--scale is required"),
        (["--model", "bicubic", "--scale", "2", "--datasets", "Nope"], "not a folder"),
        (["--scale", "2"], "--model NAME, --weights PATH"),
    ],
)
def test_eval_errors_are_one_line(args: list[str], needle: str, capsys) -> None:
    assert main(["eval", *args, "--data-root", str(data_root())]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err


def test_resolve_dataset_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--data-root or LIGHTSR_DATA"):
        resolve_dataset("Set5", tmp_path)


def test_degradations_are_reproducible_and_lower_scores() -> None:
    from lightsr.evaluation.evaluate import degrade, parse_degradations

    lr = np.random.default_rng(0).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    steps = parse_degradations(["jpeg:40", "blur:1.0", "noise:10"])
    assert steps == [("jpeg", 40.0), ("blur", 1.0), ("noise", 10.0)]
    a, b = degrade(lr, steps, seed=1), degrade(lr, steps, seed=1)
    assert a.dtype == np.uint8 and a.shape == lr.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, degrade(lr, steps, seed=2))
    # noise of sigma 10 on a flat image: the sample std is close to 10
    flat = np.full((64, 64, 3), 128, np.uint8)
    assert abs(degrade(flat, [("noise", 10.0)], 0).astype(float).std() - 10) < 0.5
    clean, noisy = (
        evaluate("bicubic-rgb", "b", ["Set5"], 4, data_root=data_root(), degradations=d)[0]
        for d in ([], [("noise", 10.0)])
    )
    assert noisy.psnr < clean.psnr - 0.5 and noisy.degrade == "noise:10"


@pytest.mark.parametrize("spec", ["gamma:2", "jpeg:0", "blur:x", "noise:-1"])
def test_bad_degradations(spec: str, capsys) -> None:
    args = ["eval", "--model", "bicubic-rgb", "--scale", "4", "--degrade", spec]
    assert main(args) == 2
    assert "--degrade" in capsys.readouterr().err
