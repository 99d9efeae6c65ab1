"""Real-ESRGAN's second-order degradation model on torch tensors, seeded per image.

``degrade(hr, scale=4, seed=s)`` turns a batch of HR images (``(B, 3, H, W)`` float in
``[0, 1]``) into synthetic real-world LR images ``(B, 3, H/scale, W/scale)``: the pipeline of
Real-ESRGAN (Wang et al., 2021) with the values of its ``train_realesrgan_x4plus.yml`` as
defaults (:class:`DegradeParams`; every value can be overridden, also from a recipe section with
:meth:`DegradeParams.from_dict`):

1. (USM-sharpened input, as Real-ESRGAN feeds its sharpened GT to the first blur)
2. blur (Gaussian / generalized / plateau kernels, iso or aniso, or a 2-D sinc), random
   resize (up / down / keep; area, bilinear or bicubic), Gaussian or Poisson noise (colour or
   gray), JPEG;
3. a second blur (with probability), resize, noise; then, in random order, [resize to the LR
   size + a final sinc filter (with probability)] and JPEG;
4. clamp and round to 8-bit levels.

Randomness: every image draws its choices from its own generators, seeded from
``(seed, index)`` (``numpy.random.SeedSequence([seed, index])``), so one image of a batch
is reproducible on its own and the same seed gives the same uint8 LR bytes on the same machine.
The choices are drawn first, cheaply, into a :class:`DegradationPlan` (:func:`sample_plan`),
then applied (:func:`apply_plan`); only the noise fields use the second generator.

JPEG is real JPEG: each image is encoded and decoded with OpenCV's encoder (4:2:0 chroma
subsampling) at an integer quality, in a loop over the batch. That is not differentiable (unlike
Real-ESRGAN's DiffJPEG approximation), which is fine: degradations run under ``torch.no_grad``.
Every step runs on the CPU, image by image (OpenCV filters and JPEG, numpy noise, torch's CPU
``interpolate`` for the resizes, whose area/bilinear/bicubic are Real-ESRGAN's); the result is
moved to the input's device. Run it in data-loader workers to overlap it with training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from lightsr.errors import LightSRError

__all__ = [
    "KERNEL_TYPES",
    "RESIZE_MODES",
    "DegradationPlan",
    "DegradeParams",
    "KernelSpec",
    "NoiseStep",
    "ResizeStep",
    "apply_plan",
    "degrade",
    "degrade_image",
    "image_rngs",
    "jpeg_encode",
    "jpeg_roundtrip",
    "make_kernel",
    "sample_plan",
    "usm_sharp",
]

#: Blur kernel families, in the order of ``kernel_prob``.
KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
#: Interpolation modes of the random resizes (``torch.nn.functional.interpolate`` names).
RESIZE_MODES = ("area", "bilinear", "bicubic")
_DIRECTIONS = ("up", "down", "keep")


@dataclass(frozen=True)
class DegradeParams:
    """Every knob of the pipeline; defaults are Real-ESRGAN's ``train_realesrgan_x4plus.yml``.

    Ranges are ``(low, high)``; noise sigmas are in 1/255 units. ``resize_range`` bounds both
    directions: "up" draws a factor in ``[1, high]``, "down" in ``[low, 1]``. The stage-2 resize
    factor is relative to the final LR size, as in Real-ESRGAN.
    """

    # stage 1
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    kernel_list: tuple[str, ...] = KERNEL_TYPES
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)
    # stage 2
    second_blur_prob: float = 0.8
    kernel_list2: tuple[str, ...] = KERNEL_TYPES
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[int, int] = (30, 95)
    # the end
    final_sinc_prob: float = 0.8
    resize_back_first_prob: float = 0.5  # [resize + sinc] then JPEG, else JPEG then [...]
    resize_modes: tuple[str, ...] = RESIZE_MODES
    sharpen_input: bool = True  # USM on the HR before the first blur, as Real-ESRGAN

    def __post_init__(self) -> None:
        for f in fields(self):  # lists (from YAML or by hand) become tuples
            if isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        _validate(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> DegradeParams:
        """Defaults overridden by ``values`` (a recipe section); an unknown key is an error."""
        known = {f.name: f for f in fields(cls)}
        out: dict[str, Any] = {}
        for key, value in (values or {}).items():
            if key not in known:
                raise LightSRError(
                    f"unknown degradation parameter {key!r} (known: {', '.join(known)})"
                )
            default = getattr(cls, key)
            if isinstance(default, tuple):
                if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                    raise LightSRError(
                        f"degradation parameter {key!r} must be a list, not {value!r}"
                    )
                value = tuple(value)
            out[key] = value
        return cls(**out)


def _validate(p: DegradeParams) -> None:
    """One-line LightSRError for a value the pipeline cannot use."""

    def bad(name: str, why: str) -> LightSRError:
        return LightSRError(f"degradation parameter {name!r} {why} (got {getattr(p, name)!r})")

    for f in fields(p):
        value = getattr(p, f.name)
        if f.name.endswith("_prob") or f.name.endswith("_prob2"):
            if isinstance(value, tuple):
                if any(not isinstance(v, (int, float)) or v < 0 for v in value):
                    raise bad(f.name, "must hold probabilities >= 0")
                if abs(sum(value) - 1.0) > 1e-6:
                    raise bad(f.name, "must sum to 1")
            elif not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise bad(f.name, "must be a probability in [0, 1]")
        elif f.name.endswith("_range") or f.name.endswith("_range2") or "sigma" in f.name:
            ok = len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
            if not ok or value[0] > value[1] or value[0] < 0:
                raise bad(f.name, "must be [low, high] with 0 <= low <= high")
    for lst, prob in (("kernel_list", "kernel_prob"), ("kernel_list2", "kernel_prob2")):
        if any(k not in KERNEL_TYPES for k in getattr(p, lst)):
            raise bad(lst, f"may only name {', '.join(KERNEL_TYPES)}")
        if len(getattr(p, lst)) != len(getattr(p, prob)):
            raise bad(prob, f"must have one probability per entry of {lst}")
    for name in ("resize_prob", "resize_prob2"):
        if len(getattr(p, name)) != 3:
            raise bad(name, "must be three probabilities (up, down, keep)")
    if not p.kernel_sizes or any(
        not isinstance(k, int) or k < 1 or k % 2 == 0 for k in p.kernel_sizes
    ):
        raise bad("kernel_sizes", "must be odd positive integers")
    if not p.resize_modes or any(m not in RESIZE_MODES for m in p.resize_modes):
        raise bad("resize_modes", f"may only name {', '.join(RESIZE_MODES)}")
    for name in ("jpeg_range", "jpeg_range2"):
        lo, hi = getattr(p, name)
        if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi <= 100):
            raise bad(name, "must be integer qualities 0 <= low <= high <= 100")
    if not isinstance(p.sharpen_input, bool):
        raise bad("sharpen_input", "must be true or false")
    for name in ("resize_range", "resize_range2"):
        lo, hi = getattr(p, name)
        if not (0 < lo <= 1 <= hi):
            raise bad(name, "must be [low, high] with 0 < low <= 1 <= high")


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class KernelSpec:
    """One blur kernel: a family of :data:`KERNEL_TYPES` or ``"sinc"``, and its drawn values."""

    kind: str
    size: int
    sigma_x: float = 0.0
    sigma_y: float = 0.0
    theta: float = 0.0  # rotation in radians (aniso kernels)
    beta: float = 1.0  # shape (generalized and plateau kernels)
    omega: float = 0.0  # cut-off frequency (sinc)

    def summary(self) -> str:
        if self.kind == "sinc":
            return f"sinc{self.size} w{self.omega:.2f}"
        text = f"{self.kind}{self.size} s{self.sigma_x:.1f}"
        if "aniso" in self.kind:
            text += f"/{self.sigma_y:.1f}"
        if self.kind.startswith(("generalized", "plateau")):
            text += f" b{self.beta:.1f}"
        return text


@dataclass(frozen=True)
class ResizeStep:
    direction: str  # "up", "down" or "keep"
    factor: float
    mode: str  # one of RESIZE_MODES

    def summary(self) -> str:
        return "keep" if self.direction == "keep" else f"x{self.factor:.2f} {self.mode}"


@dataclass(frozen=True)
class NoiseStep:
    kind: str  # "gaussian" (level: sigma in 1/255 units) or "poisson" (level: scale)
    level: float
    gray: bool

    def summary(self) -> str:
        name = "gauss" if self.kind == "gaussian" else "poisson"
        return f"{name} {self.level:.2f}{' gray' if self.gray else ''}"


@dataclass(frozen=True)
class DegradationPlan:
    """All random choices for one image; :func:`apply_plan` carries them out."""

    sharpen_input: bool
    blur1: KernelSpec
    resize1: ResizeStep
    noise1: NoiseStep
    jpeg1: int
    blur2: KernelSpec | None  # None: no second blur
    resize2: ResizeStep
    noise2: NoiseStep
    resize_back_first: bool  # [resize + sinc] then JPEG; else JPEG then [resize + sinc]
    final_mode: str
    final_sinc: KernelSpec | None  # None: no final sinc
    jpeg2: int

    def summary(self) -> str:
        """Two short lines (stage 1, stage 2) for figure labels and logs."""
        one = (
            f"{self.blur1.summary()} | {self.resize1.summary()} | {self.noise1.summary()}"
            f" | q{self.jpeg1}"
        )
        blur2 = self.blur2.summary() if self.blur2 else "no blur"
        sinc = self.final_sinc.summary() if self.final_sinc else "no sinc"
        tail = [f"resize {self.final_mode}, {sinc}", f"q{self.jpeg2}"]
        if not self.resize_back_first:
            tail.reverse()
        two = f"{blur2} | {self.resize2.summary()} | {self.noise2.summary()} | {' -> '.join(tail)}"
        return f"{one}\n{two}"


def image_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The plan generator and the noise generator of image ``index`` under ``seed``."""
    if seed < 0 or index < 0:
        raise LightSRError(f"degradation seed and index must be >= 0 (got {seed}, {index})")
    plan_seq, noise_seq = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
    return np.random.default_rng(plan_seq), np.random.default_rng(noise_seq)


def _beta(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Real-ESRGAN's shape draw: half the time from [lo, 1], else from [1, hi] (within range)."""
    if rng.random() < 0.5:
        return float(rng.uniform(lo, max(lo, min(1.0, hi))))
    return float(rng.uniform(min(hi, max(1.0, lo)), hi))


def _sample_kernel(
    rng: np.random.Generator,
    p: DegradeParams,
    stage: int,
) -> KernelSpec:
    suffix = "" if stage == 1 else "2"
    size = int(p.kernel_sizes[rng.integers(len(p.kernel_sizes))])
    if rng.random() < getattr(p, "sinc_prob" + suffix):
        lo = math.pi / 3 if size < 13 else math.pi / 5
        return KernelSpec("sinc", size, omega=float(rng.uniform(lo, math.pi)))
    kinds: tuple[str, ...] = getattr(p, "kernel_list" + suffix)
    kind = kinds[rng.choice(len(kinds), p=getattr(p, "kernel_prob" + suffix))]
    sigma = getattr(p, "blur_sigma" + suffix)
    sx = float(rng.uniform(*sigma))
    sy, theta = sx, 0.0
    if "aniso" in kind:
        sy, theta = float(rng.uniform(*sigma)), float(rng.uniform(-math.pi, math.pi))
    beta = 1.0
    if kind.startswith("generalized"):
        beta = _beta(rng, *getattr(p, "betag_range" + suffix))
    elif kind.startswith("plateau"):
        beta = _beta(rng, *getattr(p, "betap_range" + suffix))
    return KernelSpec(kind, size, sx, sy, theta, beta)


def _sample_resize(rng: np.random.Generator, p: DegradeParams, stage: int) -> ResizeStep:
    suffix = "" if stage == 1 else "2"
    direction = _DIRECTIONS[rng.choice(3, p=getattr(p, "resize_prob" + suffix))]
    lo, hi = getattr(p, "resize_range" + suffix)
    factor = {"up": lambda: rng.uniform(1, hi), "down": lambda: rng.uniform(lo, 1)}.get(
        direction, lambda: 1.0
    )()
    mode = p.resize_modes[rng.integers(len(p.resize_modes))]
    return ResizeStep(direction, float(factor), mode)


def _sample_noise(rng: np.random.Generator, p: DegradeParams, stage: int) -> NoiseStep:
    suffix = "" if stage == 1 else "2"
    gray = bool(rng.random() < getattr(p, "gray_noise_prob" + suffix))
    if rng.random() < getattr(p, "gaussian_noise_prob" + suffix):
        return NoiseStep("gaussian", float(rng.uniform(*getattr(p, "noise_range" + suffix))), gray)
    scale = float(rng.uniform(*getattr(p, "poisson_scale_range" + suffix)))
    return NoiseStep("poisson", scale, gray)


def _sample_quality(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))  # inclusive, uniform over integers


def sample_plan(rng: np.random.Generator, params: DegradeParams | None = None) -> DegradationPlan:
    """Draw every random choice of one image's degradation (no image work: cheap)."""
    p = params or DegradeParams()
    blur1 = _sample_kernel(rng, p, 1)
    resize1 = _sample_resize(rng, p, 1)
    noise1 = _sample_noise(rng, p, 1)
    jpeg1 = _sample_quality(rng, p.jpeg_range)
    blur2 = _sample_kernel(rng, p, 2)
    if not rng.random() < p.second_blur_prob:
        blur2 = None
    resize2 = _sample_resize(rng, p, 2)
    noise2 = _sample_noise(rng, p, 2)
    back_first = bool(rng.random() < p.resize_back_first_prob)
    final_mode = p.resize_modes[rng.integers(len(p.resize_modes))]
    size = int(p.kernel_sizes[rng.integers(len(p.kernel_sizes))])
    omega = float(rng.uniform(math.pi / 3, math.pi))
    final_sinc = KernelSpec("sinc", size, omega=omega)
    if not rng.random() < p.final_sinc_prob:
        final_sinc = None
    jpeg2 = _sample_quality(rng, p.jpeg_range2)
    return DegradationPlan(
        p.sharpen_input, blur1, resize1, noise1, jpeg1, blur2, resize2, noise2, back_first,
        final_mode, final_sinc, jpeg2,
    )  # fmt: skip


# --------------------------------------------------------------------------- kernels


def make_kernel(spec: KernelSpec) -> np.ndarray:
    """The ``size x size`` float32 kernel of ``spec``, summing to 1.

    Gaussian families use the quadratic form ``q = d^T S^-1 d`` with ``S = R diag(sx^2, sy^2)
    R^T`` (R rotates by theta, d is the offset from the centre, x along columns):
    ``exp(-q/2)`` (iso/aniso), ``exp(-q^beta/2)`` (generalized), ``1/(q^beta + 1)`` (plateau).
    ``sinc`` is the circular low-pass ``omega J1(omega r) / (2 pi r)`` (``omega^2 / (4 pi)`` at
    the centre).
    """
    k = spec.size
    ax = np.arange(k, dtype=np.float64) - (k - 1) / 2
    x, y = np.meshgrid(ax, ax)  # x varies along columns
    if spec.kind == "sinc":
        r = np.hypot(x, y)
        j1 = torch.special.bessel_j1(torch.from_numpy(spec.omega * r)).numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            kernel = spec.omega * j1 / (2 * np.pi * r)
        kernel[k // 2, k // 2] = spec.omega**2 / (4 * np.pi)
    else:
        c, s = math.cos(spec.theta), math.sin(spec.theta)
        rot = np.array([[c, -s], [s, c]])
        inv = np.linalg.inv(rot @ np.diag([spec.sigma_x**2, spec.sigma_y**2]) @ rot.T)
        q = inv[0, 0] * x * x + (inv[0, 1] + inv[1, 0]) * x * y + inv[1, 1] * y * y
        if spec.kind.startswith("plateau"):
            kernel = 1.0 / (q**spec.beta + 1.0)
        elif spec.kind.startswith("generalized"):
            kernel = np.exp(-0.5 * q**spec.beta)
        elif spec.kind in ("iso", "aniso"):
            kernel = np.exp(-0.5 * q)
        else:
            raise LightSRError(f"unknown blur kernel type {spec.kind!r}")
    return (kernel / kernel.sum()).astype(np.float32)


def _filter(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate each channel of an ``(H, W, C)`` float32 image with ``kernel``, reflecting at
    the border without repeating the edge (BORDER_REFLECT_101, torch's "reflect" padding)."""
    out = cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(x.shape)  # OpenCV drops a trailing 1-channel axis


def _gaussian_blur(x: np.ndarray, size: int) -> np.ndarray:
    out = cv2.GaussianBlur(x, (size, size), 0, borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(x.shape)


def _usm_hwc(x: np.ndarray, weight: float, size: int, threshold: float) -> np.ndarray:
    blur = _gaussian_blur(x, size)
    residual = x - blur
    mask = (np.abs(residual) * 255 > threshold).astype(np.float32)
    soft = _gaussian_blur(mask, size)
    sharp = np.clip(x + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * x


def usm_sharp(
    img: torch.Tensor | np.ndarray, weight: float = 0.5, radius: int = 50, threshold: float = 10
) -> torch.Tensor | np.ndarray:
    """Real-ESRGAN's unsharp mask: sharpen where the detail exceeds ``threshold`` (8-bit units).

    ``blur = cv2.GaussianBlur(img, (k, k), 0)`` with ``k = radius`` made odd (51: sigma 8 from
    OpenCV's size rule), ``residual = img - blur``; the sharpened ``clip(img + weight * residual,
    0, 1)`` is blended in with a soft mask (the same blur of ``|residual| * 255 > threshold``).
    ``img``: float in [0, 1], a numpy ``(H, W, C)`` / ``(H, W)`` array or a tensor ``(C, H, W)`` /
    ``(N, C, H, W)``; the same kind, shape and dtype come back. A flat image comes back unchanged.
    """
    size = radius + 1 if radius % 2 == 0 else radius
    if isinstance(img, np.ndarray):
        x = np.ascontiguousarray(img, dtype=np.float32)
        return _usm_hwc(x, weight, size, threshold).astype(img.dtype, copy=False)
    x = img[None] if img.ndim == 3 else img
    hwc = x.detach().float().permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([_usm_hwc(np.ascontiguousarray(i), weight, size, threshold) for i in hwc])
    t = torch.from_numpy(out).permute(0, 3, 1, 2).to(device=img.device, dtype=img.dtype)
    return t[0] if img.ndim == 3 else t


# --------------------------------------------------------------------------- image steps


def _resize(x: np.ndarray, size: tuple[int, int] | None, factor: float, mode: str) -> np.ndarray:
    """``F.interpolate`` of an ``(H, W, C)`` image by ``factor`` (``size`` None) or to
    ``size`` (Real-ESRGAN resizes with torch; OpenCV's modes differ, area above all)."""
    t = torch.from_numpy(x).permute(2, 0, 1)[None]
    align = None if mode == "area" else False
    h, w = x.shape[:2]
    if size is None and math.floor(h * factor) >= 1 and math.floor(w * factor) >= 1:
        t = F.interpolate(t, scale_factor=factor, mode=mode, align_corners=align)
    else:
        if size is None:
            size = (math.floor(h * factor), math.floor(w * factor))
        size = (max(1, size[0]), max(1, size[1]))
        t = F.interpolate(t, size=size, mode=mode, align_corners=align)
    return np.ascontiguousarray(t[0].permute(1, 2, 0).numpy())


def _poisson_noise(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Real-ESRGAN's Poisson noise field of ``base`` (float, [0, 1]), before scaling: counts
    at ``2^ceil(log2(#distinct 8-bit levels))`` photons per unit, of the 8-bit-rounded image."""
    levels = np.clip(np.round(base * 255.0), 0, 255)
    distinct = np.count_nonzero(np.bincount(levels.astype(np.int64).ravel(), minlength=256))
    vals = 2.0 ** math.ceil(math.log2(max(distinct, 1)))
    quantised = levels / 255.0
    return rng.poisson(quantised * vals) / vals - quantised


def _add_noise(x: np.ndarray, step: NoiseStep, rng: np.random.Generator) -> np.ndarray:
    h, w, c = x.shape
    if step.kind == "gaussian":
        shape = (h, w, 1) if step.gray else (h, w, c)
        noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(step.level / 255.0)
    else:
        base = np.clip(x, 0, 1).astype(np.float64)
        if step.gray:  # ITU-R 601 luma, as torchvision's rgb_to_grayscale
            base = 0.299 * base[..., 0:1] + 0.587 * base[..., 1:2] + 0.114 * base[..., 2:3]
        noise = (_poisson_noise(base, rng) * step.level).astype(np.float32)
    return np.clip(x + noise, 0, 1)


def jpeg_encode(rgb: np.ndarray, quality: int) -> bytes:
    """OpenCV's JPEG (baseline, 4:2:0 chroma) of an RGB ``(H, W, 3)`` uint8 image."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise LightSRError(f"OpenCV could not JPEG-encode a {rgb.shape} image")
    return buf.tobytes()


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode an RGB uint8 ``(H, W, 3)`` image as JPEG at ``quality`` and decode it again."""
    data = np.frombuffer(jpeg_encode(rgb, quality), dtype=np.uint8)
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1])


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    """Real JPEG of an ``(H, W, 3)`` float image: clamp, round to 8 bits, encode, decode."""
    u8 = np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
    return jpeg_roundtrip(u8, quality).astype(np.float32) / np.float32(255.0)


def _apply_hwc(
    x: np.ndarray, plan: DegradationPlan, scale: int, rng: np.random.Generator
) -> np.ndarray:
    lr_size = (x.shape[0] // scale, x.shape[1] // scale)
    if plan.sharpen_input:
        x = _usm_hwc(x, 0.5, 51, 10)
    # stage 1
    x = _filter(x, make_kernel(plan.blur1))
    if plan.resize1.direction != "keep":
        x = _resize(x, None, plan.resize1.factor, plan.resize1.mode)
    x = _jpeg(_add_noise(x, plan.noise1, rng), plan.jpeg1)
    # stage 2 (its resize factor is relative to the LR size, as Real-ESRGAN)
    if plan.blur2 is not None:
        x = _filter(x, make_kernel(plan.blur2))
    f = plan.resize2.factor
    x = _resize(x, (int(lr_size[0] * f), int(lr_size[1] * f)), f, plan.resize2.mode)
    x = _add_noise(x, plan.noise2, rng)

    def back(x: np.ndarray) -> np.ndarray:
        x = _resize(x, lr_size, 1.0, plan.final_mode)
        return x if plan.final_sinc is None else _filter(x, make_kernel(plan.final_sinc))

    if plan.resize_back_first:
        x = _jpeg(back(x), plan.jpeg2)
    else:
        x = back(_jpeg(x, plan.jpeg2))
    return np.clip(np.round(x * 255.0), 0, 255) / np.float32(255.0)


def apply_plan(
    hr: torch.Tensor, plan: DegradationPlan, scale: int, rng: np.random.Generator
) -> torch.Tensor:
    """Degrade one image ``(3, H, W)`` (float, [0, 1]) by ``plan``; ``rng`` draws the noise.

    Returns ``(3, H // scale, W // scale)`` float32 on 8-bit levels, on the CPU (all steps run
    there: OpenCV filters and JPEG, numpy noise, torch's CPU ``interpolate``).
    """
    hwc = np.ascontiguousarray(hr.detach().float().permute(1, 2, 0).cpu().numpy())
    out = _apply_hwc(hwc, plan, scale, rng).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))


def _check_hr(hr: object, scale: int) -> None:
    if not isinstance(hr, torch.Tensor) or hr.ndim != 4 or hr.shape[1] != 3:
        shape = tuple(hr.shape) if isinstance(hr, torch.Tensor) else type(hr).__name__
        raise LightSRError(f"degrade needs a (B, 3, H, W) tensor, got {shape}")
    if not hr.is_floating_point():
        raise LightSRError(f"degrade needs float HR values in [0, 1], got {hr.dtype}")
    if not isinstance(scale, int) or scale < 1:
        raise LightSRError(f"degrade needs an integer scale >= 1, got {scale!r}")
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise LightSRError(f"HR size {h}x{w} is not a multiple of scale {scale}: crop it first")


def degrade(
    hr: torch.Tensor,
    scale: int = 4,
    seed: int = 0,
    params: DegradeParams | Mapping[str, Any] | None = None,
    indices: Sequence[int] | None = None,
) -> torch.Tensor:
    """Real-ESRGAN-style LR images ``(B, 3, H/scale, W/scale)`` of ``hr`` ``(B, 3, H, W)``.

    Image ``b`` is degraded with the generators of ``(seed, indices[b])`` (default index: ``b``),
    so it does not depend on the rest of the batch. ``params``: :class:`DegradeParams` or a dict
    of overrides. The output has ``hr``'s dtype and device and holds 8-bit levels (``k/255``).
    """
    _check_hr(hr, scale)
    p = params if isinstance(params, DegradeParams) else DegradeParams.from_dict(params)
    idx = list(range(hr.shape[0])) if indices is None else [int(i) for i in indices]
    if len(idx) != hr.shape[0]:
        raise LightSRError(f"degrade got {len(idx)} indices for a batch of {hr.shape[0]}")
    out = []
    with torch.no_grad():
        for b, i in enumerate(idx):
            plan_rng, noise_rng = image_rngs(seed, i)
            out.append(apply_plan(hr[b], sample_plan(plan_rng, p), scale, noise_rng))
    return torch.stack(out).to(device=hr.device, dtype=hr.dtype)


def degrade_image(
    hr: np.ndarray,
    scale: int = 4,
    seed: int = 0,
    params: DegradeParams | Mapping[str, Any] | None = None,
    index: int = 0,
) -> np.ndarray:
    """:func:`degrade` for one RGB uint8 ``(H, W, 3)`` image; returns uint8 ``(H/s, W/s, 3)``."""
    if not isinstance(hr, np.ndarray) or hr.dtype != np.uint8 or hr.ndim != 3 or hr.shape[2] != 3:
        what = f"{hr.dtype} {hr.shape}" if isinstance(hr, np.ndarray) else type(hr).__name__
        raise LightSRError(f"degrade_image needs an RGB uint8 (H, W, 3) array, got {what}")
    x = torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1)[None].float() / 255.0
    lr = degrade(x, scale, seed, params, indices=[index])[0]
    return (lr * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy().copy()
