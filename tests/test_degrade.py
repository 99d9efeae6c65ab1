"""lightsr.degrade: Real-ESRGAN's second-order degradations, seeded per image."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from lightsr import degrade as D
from lightsr.errors import LightSRError


def _hr(batch: int = 3, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth random images with edges (noise alone would hide the blur)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(batch, 3, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(small, size=(size, size), mode="nearest")


def _bytes(lr: torch.Tensor) -> bytes:
    return (lr * 255).round().to(torch.uint8).numpy().tobytes()


def test_same_seed_same_bytes_other_seed_differs() -> None:
    hr = _hr()
    a = D.degrade(hr, scale=4, seed=7)
    assert _bytes(a) == _bytes(D.degrade(hr.clone(), scale=4, seed=7))
    assert _bytes(a) != _bytes(D.degrade(hr, scale=4, seed=8))
    # each image depends only on (seed, index), not on the rest of the batch
    alone = D.degrade(hr[1:2], scale=4, seed=7, indices=[1])
    assert _bytes(alone) == _bytes(a[1:2])
    assert _bytes(D.degrade(hr[1:2], scale=4, seed=7)) != _bytes(alone)


def test_shape_dtype_range_and_8_bit_levels() -> None:
    hr = _hr(2, 48)
    for scale in (1, 2, 4):
        lr = D.degrade(hr, scale=scale, seed=1)
        assert lr.shape == (2, 3, 48 // scale, 48 // scale) and lr.dtype == torch.float32
        assert lr.min() >= 0 and lr.max() <= 1
        assert torch.equal(lr * 255, (lr * 255).round())
    assert D.degrade(hr.double(), 4, seed=1).dtype == torch.float64
    tiny = D.degrade(_hr(1, 8), scale=4, seed=3)  # reflections wider than the image
    assert tiny.shape == (1, 3, 2, 2)
    img = (hr[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    lr8 = D.degrade_image(img, scale=4, seed=5)
    assert lr8.shape == (12, 12, 3) and lr8.dtype == np.uint8
    expect = D.degrade(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255, 4, seed=5)
    assert lr8.tobytes() == (expect[0].permute(1, 2, 0) * 255).round().byte().numpy().tobytes()


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(LightSRError, match="multiple of scale 4"):
        D.degrade(torch.rand(1, 3, 30, 32), scale=4)
    with pytest.raises(LightSRError, match=r"\(B, 3, H, W\)"):
        D.degrade(torch.rand(3, 32, 32))
    with pytest.raises(LightSRError, match="float"):
        D.degrade(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(LightSRError, match="uint8"):
        D.degrade_image(np.zeros((32, 32, 3), np.float32))


def _freq(values: list, key: object) -> float:
    return sum(v == key for v in values) / len(values)


def _close(observed: float, p: float, n: int) -> None:
    tol = 4.5 * math.sqrt(p * (1 - p) / n) + 1e-9
    assert abs(observed - p) <= tol, (observed, p, tol)


def test_branch_frequencies_match_the_configured_probabilities() -> None:
    n = 4000
    rng = np.random.default_rng(2024)
    p = D.DegradeParams()
    plans = [D.sample_plan(rng, p) for _ in range(n)]
    for stage, probs in ((1, p.resize_prob), (2, p.resize_prob2)):
        dirs = [getattr(pl, f"resize{stage}").direction for pl in plans]
        for name, prob in zip(("up", "down", "keep"), probs, strict=True):
            _close(_freq(dirs, name), prob, n)
        modes = [getattr(pl, f"resize{stage}").mode for pl in plans]
        for mode in D.RESIZE_MODES:
            _close(_freq(modes, mode), 1 / 3, n)
        noises = [getattr(pl, f"noise{stage}") for pl in plans]
        _close(_freq([s.kind for s in noises], "gaussian"), 0.5, n)
        _close(_freq([s.gray for s in noises], True), 0.4, n)
    kinds = [pl.blur1.kind for pl in plans]
    _close(_freq(kinds, "sinc"), p.sinc_prob, n)
    for kind, prob in zip(p.kernel_list, p.kernel_prob, strict=True):
        _close(_freq(kinds, kind), (1 - p.sinc_prob) * prob, n)
    blur2 = [pl.blur2 for pl in plans]
    _close(_freq([b is not None for b in blur2], True), p.second_blur_prob, n)
    _close(_freq([b.kind for b in blur2 if b], "sinc"), p.sinc_prob2, len([b for b in blur2 if b]))
    _close(_freq([pl.final_sinc is not None for pl in plans], True), p.final_sinc_prob, n)
    _close(_freq([pl.resize_back_first for pl in plans], True), 0.5, n)
    sizes = Counter(pl.blur1.size for pl in plans)
    assert sorted(sizes) == list(p.kernel_sizes)
    for size in p.kernel_sizes:
        _close(sizes[size] / n, 1 / len(p.kernel_sizes), n)


def test_drawn_values_stay_in_their_ranges() -> None:
    rng = np.random.default_rng(5)
    plans = [D.sample_plan(rng) for _ in range(2000)]
    for pl in plans:
        r1, r2 = pl.resize1, pl.resize2
        assert {"up": 1 <= r1.factor <= 1.5, "down": 0.15 <= r1.factor <= 1}.get(
            r1.direction, r1.factor == 1
        )
        assert {"up": 1 <= r2.factor <= 1.2, "down": 0.3 <= r2.factor <= 1}.get(
            r2.direction, r2.factor == 1
        )
        for stage, sig, noise, poisson in (
            (pl.blur1, (0.2, 3), pl.noise1, (0.05, 3)),
            (pl.blur2, (0.2, 1.5), pl.noise2, (0.05, 2.5)),
        ):
            if stage is not None and stage.kind == "sinc":
                low = math.pi / 3 if stage.size < 13 else math.pi / 5
                assert low <= stage.omega <= math.pi
            elif stage is not None:
                assert sig[0] <= stage.sigma_x <= sig[1] and sig[0] <= stage.sigma_y <= sig[1]
                if "aniso" not in stage.kind:
                    assert stage.sigma_x == stage.sigma_y and stage.theta == 0
                lo, hi = (1, 2) if stage.kind.startswith("plateau") else (0.5, 4)
                assert lo <= stage.beta <= hi or stage.kind in ("iso", "aniso")
            if noise.kind == "poisson":
                assert poisson[0] <= noise.level <= poisson[1]
        assert 1 <= pl.noise1.level <= 30 or pl.noise1.kind == "poisson"
        assert 1 <= pl.noise2.level <= 25 or pl.noise2.kind == "poisson"
        if pl.final_sinc:
            assert math.pi / 3 <= pl.final_sinc.omega <= math.pi
    qualities = {pl.jpeg1 for pl in plans} | {pl.jpeg2 for pl in plans}
    assert min(qualities) == 30 and max(qualities) == 95


def test_jpeg_is_opencv_jpeg_at_the_drawn_quality(monkeypatch: pytest.MonkeyPatch) -> None:
    img = (_hr(1, 64)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    for quality in (30, 61, 95):
        data = D.jpeg_encode(img, quality)
        ok, ref = cv2.imencode(
            ".jpg", np.ascontiguousarray(img[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        assert ok and data == ref.tobytes() and data[:2] == b"\xff\xd8"
        decoded = cv2.imdecode(ref, cv2.IMREAD_COLOR)[:, :, ::-1]
        assert np.array_equal(D.jpeg_roundtrip(img, quality), decoded)
    assert len(D.jpeg_encode(img, 30)) < len(D.jpeg_encode(img, 95))
    # the pipeline encodes each image twice, at the plan's two qualities
    seen: list[int] = []
    real = D.jpeg_roundtrip
    monkeypatch.setattr(D, "jpeg_roundtrip", lambda im, q: seen.append(q) or real(im, q))
    D.degrade(_hr(2), scale=4, seed=11)
    plans = [D.sample_plan(D.image_rngs(11, i)[0]) for i in range(2)]
    assert seen == [q for pl in plans for q in (pl.jpeg1, pl.jpeg2)]


def test_kernels_sum_to_one_and_have_the_drawn_size() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        pl = D.sample_plan(rng)
        for spec in (pl.blur1, pl.blur2, pl.final_sinc):
            if spec is None:
                continue
            k = D.make_kernel(spec)
            assert k.shape == (spec.size, spec.size) and k.dtype == np.float32
            assert abs(float(k.sum(dtype=np.float64)) - 1) < 1e-5
            assert np.allclose(k, k[::-1, ::-1], atol=1e-7)  # centrally symmetric
    iso = D.make_kernel(D.KernelSpec("iso", 21, 2.0, 2.0))
    assert np.allclose(iso, iso.T, atol=1e-7) and iso.argmax() == 21 * 10 + 10
    aniso = D.make_kernel(D.KernelSpec("aniso", 21, 3.0, 0.5, 0.0))  # wide along x (columns)
    assert aniso[10, 15] > aniso[15, 10]


def test_sinc_kernel_matches_the_circular_lowpass_formula() -> None:
    special = pytest.importorskip("scipy.special")
    omega, size = 1.3, 15
    r = np.hypot(*np.meshgrid(np.arange(size) - 7.0, np.arange(size) - 7.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = omega * special.j1(omega * r) / (2 * np.pi * r)
    ref[7, 7] = omega**2 / (4 * np.pi)
    ref /= ref.sum()
    assert np.allclose(D.make_kernel(D.KernelSpec("sinc", size, omega=omega)), ref, atol=1e-6)


def test_params_from_a_dict_and_unknown_keys() -> None:
    p = D.DegradeParams.from_dict(
        {"jpeg_range": [50, 50], "sinc_prob": 0, "resize_prob": [0, 0, 1]}
    )
    assert p.jpeg_range == (50, 50) and p == replace(
        D.DegradeParams(), jpeg_range=(50, 50), sinc_prob=0, resize_prob=(0, 0, 1)
    )
    rng = np.random.default_rng(0)
    plans = [D.sample_plan(rng, p) for _ in range(200)]
    assert {pl.jpeg1 for pl in plans} == {50} and {pl.resize1.direction for pl in plans} == {"keep"}
    assert all(pl.blur1.kind != "sinc" for pl in plans)
    assert D.DegradeParams.from_dict(None) == D.DegradeParams()
    hr = _hr(1)
    by_dict = D.degrade(hr, 4, seed=2, params={"jpeg_range": [50, 50]})
    assert torch.equal(
        by_dict, D.degrade(hr, 4, seed=2, params=D.DegradeParams(jpeg_range=(50, 50)))
    )
    with pytest.raises(LightSRError, match="unknown degradation parameter 'jpeg_quality'") as err:
        D.DegradeParams.from_dict({"jpeg_quality": [30, 95]})
    assert "\n" not in str(err.value)
    with pytest.raises(LightSRError, match="'resize_prob' must sum to 1"):
        D.DegradeParams.from_dict({"resize_prob": [0.5, 0.5, 0.5]})
    with pytest.raises(LightSRError, match="'kernel_list'"):
        D.DegradeParams.from_dict({"kernel_list": ["box"], "kernel_prob": [1.0]})
    with pytest.raises(LightSRError, match="'noise_range' must be a list"):
        D.DegradeParams.from_dict({"noise_range": 5})


def test_usm_on_a_flat_image_is_identity_and_sharpens_edges() -> None:
    flat = torch.full((2, 3, 40, 40), 0.37)
    assert torch.equal(D.usm_sharp(flat), flat)
    flat_np = np.full((40, 40, 3), 0.62, np.float32)
    assert np.array_equal(D.usm_sharp(flat_np), flat_np)
    edge = torch.zeros(3, 64, 64)
    edge[:, :, 32:] = 0.6
    sharp = D.usm_sharp(edge)
    assert sharp.shape == edge.shape
    assert sharp[0, 10, 33] > 0.6 and sharp[0, 10, 30] == 0  # overshoot, clipped at 0
    # the tensor and numpy paths agree; Real-ESRGAN's radius 50 means a 51-tap blur
    assert np.allclose(sharp.permute(1, 2, 0).numpy(), D.usm_sharp(edge.permute(1, 2, 0).numpy()))
    img = edge.permute(1, 2, 0).numpy()
    residual = img - cv2.GaussianBlur(img, (51, 51), 0)
    soft = cv2.GaussianBlur((np.abs(residual) * 255 > 10).astype(np.float32), (51, 51), 0)
    expect = soft * np.clip(img + 0.5 * residual, 0, 1) + (1 - soft) * img
    assert np.allclose(sharp.permute(1, 2, 0).numpy(), expect, atol=1e-6)
