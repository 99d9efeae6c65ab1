"""NIQE: the MATLAB release's value on Set14 baboon, inputs, errors, NaN blocks, `lightsr eval`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import lightsr.metrics
from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.evaluation import metrics as M
from lightsr.evaluation.metrics import niqe, rgb_to_y
from lightsr.evaluation.resize import imresize
from lightsr.inference.io import read_image, write_image

from conftest import need_shared

# The NIQE MATLAB release (computequality.m) on the Y channel in MATLAB R2021a, as quoted by
# BasicSR's calculate_niqe (its tests/data/baboon.png is Set14's baboon).
MATLAB_BABOON = 5.72957


@pytest.fixture(scope="module")
def baboon() -> np.ndarray:
    return read_image(need_shared("datasets", "Set14", "HR", "baboon.png"))


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random RGB texture (noise blurred by a bicubic upscale), uint8."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(imresize(small, 4)[:h, :w])


def test_baboon_matches_matlab(baboon: np.ndarray) -> None:
    assert baboon.shape == (480, 500, 3) and baboon.dtype == np.uint8
    value = niqe(baboon)
    assert abs(value - MATLAB_BABOON) <= 0.001, value
    assert lightsr.metrics.niqe is niqe


def test_gray_and_other_dtypes_equal_the_rgb_y(baboon: np.ndarray) -> None:
    img = baboon[:200, :300]
    ref = niqe(img)
    y = np.floor(rgb_to_y(img) + 0.5).astype(np.uint8)  # MATLAB rgb2ycbcr's rounded Y
    assert niqe(y) == ref
    assert niqe(y[:, :, None]) == ref
    assert niqe(img.astype(np.float32) / 255) == ref
    assert niqe(img.astype(np.uint16) * 257) == ref


def test_small_images_are_refused() -> None:
    with pytest.raises(LightSRError, match=r"64x64 pixels .* at least 96x96"):
        niqe(_texture(64, 64, 0))
    with pytest.raises(LightSRError, match="at least 96x96"):
        niqe(_texture(95, 300, 0))
    with pytest.raises(LightSRError, match="at least 96x96"):
        niqe(_texture(100, 100, 0), crop_border=4)  # 92x92 left
    # one block is enough: MATLAB's cov of a single observation is zero
    assert math.isfinite(niqe(_texture(96, 96, 0)))


def test_crop_border(baboon: np.ndarray) -> None:
    img = baboon[:210, :220]
    assert niqe(img, crop_border=4) == niqe(img[4:-4, 4:-4])
    assert niqe(img, crop_border=4) != niqe(img)
    with pytest.raises(LightSRError, match="crop_border"):
        niqe(img, crop_border=105)
    with pytest.raises(TypeError):
        niqe(img, crop_border=1.5)  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    with pytest.raises(LightSRError, match="alpha"):
        niqe(np.zeros((100, 100, 4), np.uint8))
    bad = _texture(100, 100, 1).astype(np.float64) / 255
    bad[5, 5, 0] = np.nan
    with pytest.raises(LightSRError, match="NaN"):
        niqe(bad)
    with pytest.raises(LightSRError, match=r"\[0, 1\]"):
        niqe(_texture(100, 100, 1).astype(np.float64))
    with pytest.raises(TypeError):
        niqe([[0] * 100] * 100)  # type: ignore[arg-type]


def test_nan_features_are_dropped_as_nanmean_and_nancov() -> None:
    # a flat image: every block has an empty side (all MSCN of one sign): undefined
    with pytest.raises(LightSRError, match="undefined"):
        niqe(np.full((192, 192, 3), 128, np.uint8))
    # a flat region gives NaN features in its blocks; the other blocks still score
    img = _texture(192, 384, 2)
    img[:, 192:] = 100
    feats = np.concatenate(
        [
            M._niqe_block_features(M._mscn(M._niqe_luma(img)), 96),
            M._niqe_block_features(M._mscn(M._half_size(M._niqe_luma(img))), 48),
        ],
        axis=1,
    )
    nan_rows = np.isnan(feats).any(axis=1)
    assert nan_rows.any() and not nan_rows.all()
    assert math.isfinite(niqe(img))
    # the distance: mean ignoring NaN per feature, covariance over the complete blocks
    mu_p, cov_p = M._niqe_model()
    mu = np.nanmean(feats, axis=0)
    cov = np.cov(feats[~nan_rows], rowvar=False)
    d = mu_p - mu
    expected = math.sqrt(d @ np.linalg.pinv((cov_p + cov) / 2) @ d)
    assert niqe(img) == pytest.approx(expected, rel=1e-9)


def test_aggd_fit_recovers_known_shapes() -> None:
    rng = np.random.default_rng(0)
    gauss = rng.normal(0.0, 1.0, (1, 200_000))
    laplace = rng.laplace(0.0, 1.0, (1, 200_000))
    alpha, bl, br, mean = M._aggd_fit(np.concatenate([gauss, laplace]))
    assert abs(alpha[0] - 2.0) < 0.05 and abs(alpha[1] - 1.0) < 0.05
    # a Gaussian of sigma 1 has the AGGD scale sqrt(2) on both sides and mean 0
    assert abs(bl[0] - math.sqrt(2)) < 0.02 and abs(br[0] - math.sqrt(2)) < 0.02
    assert abs(mean[0]) < 0.02
    # the lookup is MATLAB's 0.2:0.001:10
    gam = M._aggd_table()[0]
    assert len(gam) == 9801 and gam[0] == 0.2 and gam[-1] == 10.0 and gam[1000] == 1.2


def test_pristine_model_ships_with_the_package() -> None:
    mu, cov = M._niqe_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_array_equal(cov, cov.T)
    assert mu[0] == pytest.approx(2.60131368, abs=1e-8)
    assert np.linalg.eigvalsh(cov).min() > 0


# --- lightsr eval ------------------------------------------------------------------------------


@pytest.fixture
def lr_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "lr"
    for i in range(2):
        write_image(folder / f"img{i}.png", _texture(32, 32, 10 + i))
    return folder


def test_eval_no_reference_bicubic(lr_folder: Path, capsys) -> None:
    args = ["eval", "--model", "bicubic", "--scale", "4", "--datasets", str(lr_folder)]
    assert main([*args, "--no-reference", "--json", "--per-image"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["dataset"] == "lr" and rec["images"] == 2 and rec["reference"] is False
    assert "psnr" not in rec and "ssim" not in rec
    expected = [
        niqe(imresize(_texture(32, 32, 10 + i), 4), crop_border=4) for i in range(2)
    ]  # 128x128 SR, 120x120 after the crop: one block
    assert [r["niqe"] for r in rec["per_image"]] == expected
    assert rec["niqe"] == pytest.approx(np.mean(expected), rel=1e-12)
    assert main([*args, "--no-reference"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the caption wraps at the table's width
    assert "NIQE" in out and "lower is better" in out and "no reference" in out
    assert "PSNR" not in out


def test_eval_no_reference_named_model(lr_folder: Path, capsys) -> None:
    args = ["eval", "--model", "safmn-x4", "--datasets", str(lr_folder), "--no-reference"]
    assert main([*args, "--metrics", "niqe", "--csv", "-q"]) == 0
    head, row = capsys.readouterr().out.strip().splitlines()
    assert head == "model,dataset,scale,degrade,niqe,images,seconds,self_ensemble"
    assert math.isfinite(float(row.split(",")[4]))


def test_eval_full_reference_with_niqe(tmp_path: Path, capsys) -> None:
    hr = tmp_path / "set" / "HR"
    for i in range(2):
        write_image(hr / f"img{i}.png", _texture(128, 128, 20 + i))
    base = ["eval", "--model", "bicubic-rgb", "--scale", "4", "--datasets", str(hr.parent)]
    assert main([*base, "--json"]) == 0
    (plain,) = json.loads(capsys.readouterr().out)
    assert "niqe" not in plain
    assert main([*base, "--json", "--metrics", "psnr,ssim,niqe"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["psnr"] == plain["psnr"] and rec["ssim"] == plain["ssim"]
    assert math.isfinite(rec["niqe"]) and rec["reference"] is True
    assert main([*base, "--markdown", "--metrics", "niqe,psnr"]) == 0
    cell = capsys.readouterr().out.splitlines()[2].split("|")[3].strip()
    assert cell == f"{rec['psnr']:.2f}/{rec['niqe']:.4f}"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--no-reference", "--metrics", "psnr,niqe"], "psnr need a reference"),
        (["--metrics", "niqe,brisque"], "expected names from psnr, ssim, niqe"),
        (["--no-reference", "--lr-dir", "x"], "--lr-dir needs a reference"),
    ],
)
def test_eval_metric_errors(lr_folder: Path, extra: list[str], needle: str, capsys) -> None:
    args = ["eval", "--model", "bicubic", "--scale", "4", "--datasets", str(lr_folder)]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err


def test_eval_no_reference_errors(tmp_path: Path, capsys) -> None:
    small = tmp_path / "small"
    write_image(small / "tiny.png", _texture(16, 16, 3))  # 64x64 after x4
    args = ["eval", "--model", "bicubic", "--scale", "4", "--no-reference", "--datasets"]
    assert main([*args, str(small)]) == 2
    err = capsys.readouterr().err
    assert "tiny.png" in err and "at least 96x96" in err
    assert main([*args, "Set5"]) == 2
    assert "folders of input images" in capsys.readouterr().err


def test_no_reference_inputs_may_be_16_bit(tmp_path: Path) -> None:
    """Real photos come as 16-bit PNGs too: no-reference evaluation rounds them to 8 bits."""
    from lightsr.evaluation.evaluate import evaluate

    rng = np.random.default_rng(1)
    img8 = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    write_image(tmp_path / "a" / "x.png", img8)
    write_image(tmp_path / "b" / "x.png", img8.astype(np.uint16) * 257)
    kw = {"metrics": ("niqe",), "reference": False}
    (r8,) = evaluate("bicubic-rgb", "bicubic", [str(tmp_path / "a")], 4, **kw)
    (r16,) = evaluate("bicubic-rgb", "bicubic", [str(tmp_path / "b")], 4, **kw)
    assert r8.niqe == r16.niqe
