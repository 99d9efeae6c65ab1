"""Local Attribution Maps (LAM) and the diffusion index (DI).

Paper: J. Gu, C. Dong, "Interpreting Super-Resolution Networks with Local Attribution Maps",
CVPR 2021. LAM attributes one output window of an SR network to the pixels of its LR input with
path-integrated gradients along a *progressive blur* path, as the authors' demo code does:

- the path: ``I(a) = G(sigma_a) * x`` with ``sigma`` going linearly from ``sigma`` (1.2 in the
  demo) down to 0 over ``steps`` (the demo's ``fold``, 50) intervals; ``G`` is an isotropic
  ``kernel_size`` x ``kernel_size`` Gaussian (9 in the demo), normalised to sum 1 (at sigma 0:
  the identity), applied per channel with reflected borders (OpenCV's ``filter2D`` default);
- the attribution: ``A = sum_i grad D(I_{i+1}) * (I_{i+1} - I_i)``: the gradient at the right end
  of each interval times the path's step (the demo's ``mean`` over ``fold`` of the gradient times
  ``fold * (K_{i+1} - K_i) * x`` is the same sum). By completeness ``sum(A)`` approaches
  ``D(x) - D(I_0)`` as the steps grow;
- the objective ``D``: the sum, over the window and the channels, of the output's gradient
  magnitude ``sqrt(dy^2 + dx^2)`` with forward differences (the demo's ``attr_grad``); squared
  magnitudes below 1e-12 are clamped so that a flat region gives a zero gradient, not the NaN
  the demo replaces by zero. ``objective="sum"`` attributes the plain sum of the window's
  values instead (the demo's ``attr_id``);
- the map: ``|sum_c A|`` divided by its maximum (the demo's ``grad_abs_norm``);
- DI = ``(1 - Gini(map)) * 100``, with the Gini index of the demo (values shifted to be
  non-negative, 1e-7 added, sorted ascending, ``sum((2i - n - 1) a_i) / (n sum a_i)``). One
  pixel carrying all attribution gives DI ~ 100 / n (0 for large n); a uniform map gives 100.

The window ``(x, y, size)`` is in output (SR) pixels, ``x`` the column and ``y`` the row of its
top-left corner, as the demo's ``w`` and ``h``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lightsr.analysis._common import (
    MAX_SIDE,
    Network,
    image_array,
    load_images,
    load_network,
    pyplot,
    reference_path,
    save_figure,
    write_json,
)
from lightsr.errors import LightSRError
from lightsr.files import atomic_path

__all__ = [
    "LamResult",
    "blur_path",
    "diffusion_index",
    "gaussian_kernel",
    "gini",
    "lam",
    "run_lam",
    "window_objective",
]

OBJECTIVES = ("gradient", "sum")


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """(size, size) isotropic Gaussian summing to 1; ``sigma`` 0 gives the identity kernel."""
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    if sigma <= 0:
        k = (ax[:, None] == 0) & (ax[None, :] == 0)
        return k.to(torch.float64)
    k = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    return k / k.sum()


def blur_path(x: torch.Tensor, *, sigma: float, steps: int, kernel_size: int) -> torch.Tensor:
    """The progressive-blur path: (steps + 1, C, H, W), from ``G(sigma) * x`` (index 0, the
    baseline) to ``x`` itself (index ``steps``); ``x`` is (1, C, H, W)."""
    c = x.shape[1]
    pad = kernel_size // 2
    if min(x.shape[-2:]) <= pad:
        raise LightSRError(
            f"LAM: the input ({x.shape[-1]}x{x.shape[-2]}) is too small for a "
            f"{kernel_size}x{kernel_size} blur; use a larger image or a smaller --kernel-size"
        )
    padded = F.pad(x.double(), (pad, pad, pad, pad), mode="reflect")
    sigmas = np.linspace(sigma, 0.0, steps + 1)
    kernels = torch.stack([gaussian_kernel(kernel_size, float(s)) for s in sigmas])
    points = []
    for k in kernels:
        weight = k.to(x.device).expand(c, 1, kernel_size, kernel_size)
        points.append(F.conv2d(padded, weight, groups=c))
    return torch.cat(points).to(x.dtype)


def window_objective(
    out: torch.Tensor, x: int, y: int, size: int, kind: str = "gradient"
) -> torch.Tensor:
    """LAM's objective of each output in the batch (B,): over the window's pixels and channels,
    the sum of the gradient magnitude (``"gradient"``) or of the values (``"sum"``)."""
    if kind == "sum":
        return out[:, :, y : y + size, x : x + size].sum(dim=(1, 2, 3))
    if kind != "gradient":
        raise LightSRError(f"LAM objective {kind!r}: use one of {OBJECTIVES}")
    dy = (out[:, :, :-1, :] - out[:, :, 1:, :]) ** 2
    dx = (out[:, :, :, :-1] - out[:, :, :, 1:]) ** 2
    mag = (dy[:, :, :, :-1] + dx[:, :, :-1, :]).clamp_min(1e-12).sqrt()
    return mag[:, :, y : y + size, x : x + size].sum(dim=(1, 2, 3))


def gini(values: np.ndarray | torch.Tensor) -> float:
    """The Gini index of the values, as LAM's code computes it (0: uniform, ~1: one value)."""
    a = np.asarray(values, dtype=np.float64).ravel().copy()
    if a.min() < 0:
        a -= a.min()
    a = np.sort(a + 1e-7)
    n = a.size
    index = np.arange(1, n + 1)
    return float(np.sum((2 * index - n - 1) * a) / (n * np.sum(a)))


def diffusion_index(attribution: np.ndarray | torch.Tensor) -> float:
    """DI = (1 - Gini) * 100 of LAM's map (``|sum over channels|``, normalised by its maximum).

    ``attribution`` is (C, H, W) (summed over C first) or an (H, W) map of non-negative values.
    """
    a = np.asarray(attribution, dtype=np.float64)
    saliency = np.abs(a.sum(0)) if a.ndim == 3 else np.abs(a)
    peak = saliency.max()
    if peak > 0:
        saliency = saliency / peak
    return (1.0 - gini(saliency)) * 100.0


@dataclass
class LamResult:
    """One LAM.

    Attributes:
        attribution: (3, H, W) path-integrated gradients over the LR input.
        saliency: (H, W) ``|sum_c attribution|`` divided by its maximum.
        di: the diffusion index.
        objective_input, objective_baseline: the objective at the input and at the baseline.
        total: ``attribution.sum()`` (completeness: close to their difference).
        output: (1, 3, sH, sW) the network's output for the input.
    """

    attribution: np.ndarray
    saliency: np.ndarray
    di: float
    objective_input: float
    objective_baseline: float
    total: float
    output: torch.Tensor


def _check_window(net: Network, x: torch.Tensor, window: Sequence[int]) -> tuple[int, int, int]:
    wx, wy, size = (int(v) for v in window)
    out_h, out_w = x.shape[-2] * net.scale, x.shape[-1] * net.scale
    if size < 1 or wx < 0 or wy < 0 or wx + size > out_w or wy + size > out_h:
        raise LightSRError(
            f"--window {wx} {wy} {size}: the window must lie inside the {out_w}x{out_h} output "
            f"(x + size <= {out_w}, y + size <= {out_h}, all >= 0)"
        )
    return wx, wy, size


def lam(
    net: Network,
    x: torch.Tensor,
    window: Sequence[int],
    *,
    sigma: float = 1.2,
    steps: int = 50,
    kernel_size: int = 9,
    objective: str = "gradient",
    batch: int = 4,
) -> LamResult:
    """LAM of output window ``(x, y, size)`` for the (1, 3, H, W) input ``x`` in [0, 1].

    Args:
        net: from :func:`lightsr.analysis._common.load_network`.
        x: the LR input.
        window: output-pixel column, row and side of the window.
        sigma: the blur of the baseline (LAM: 1.2).
        steps: intervals of the path (LAM: 50).
        kernel_size: side of the Gaussian kernel (LAM: 9).
        objective: ``"gradient"`` (LAM) or ``"sum"``.
        batch: path points per forward/backward (memory against speed).
    """
    if steps < 1 or batch < 1 or sigma < 0:
        raise LightSRError("LAM: --steps and --batch must be >= 1 and --sigma >= 0")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise LightSRError(f"LAM: --kernel-size {kernel_size}: use an odd size (LAM: 9)")
    wx, wy, size = _check_window(net, x, window)
    path = blur_path(x, sigma=sigma, steps=steps, kernel_size=kernel_size)
    deltas = path[1:] - path[:-1]
    total = torch.zeros_like(x[0])
    with reference_path(net.model):
        for i in range(1, steps + 1, batch):
            points = path[i : i + batch].clone().requires_grad_(True)
            value = window_objective(net(points), wx, wy, size, objective).sum()
            (grad,) = torch.autograd.grad(value, points)
            grad = torch.nan_to_num(grad)
            total += (grad * deltas[i - 1 : i - 1 + points.shape[0]]).sum(0)
        with torch.no_grad():
            ends = net(torch.cat([path[:1], path[-1:]]))
            f_base, f_in = window_objective(ends, wx, wy, size, objective).tolist()
    attribution = total.double().cpu().numpy()
    saliency = np.abs(attribution.sum(0))
    peak = saliency.max()
    return LamResult(
        attribution=attribution,
        saliency=saliency / peak if peak > 0 else saliency,
        di=diffusion_index(attribution),
        objective_input=f_in,
        objective_baseline=f_base,
        total=float(attribution.sum()),
        output=ends[1:].detach(),
    )


def lam_figure(
    x: torch.Tensor, result: LamResult, window: Sequence[int], scale: int, title: str
) -> Any:
    """Input with the window's box (in input pixels), the attribution map, and an overlay."""
    plt = pyplot()
    from matplotlib.patches import Rectangle

    img = image_array(x)
    wx, wy, size = (v / scale for v in window)
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.6))
    axes[0].imshow(img, interpolation="nearest")
    axes[0].add_patch(Rectangle((wx - 0.5, wy - 0.5), size, size, fill=False, ec="red", lw=1.5))
    axes[0].set_title("LR input, output window", fontsize=9)
    # Shown on a square-root scale so that the tails are visible; DI uses the linear map.
    heat = np.sqrt(result.saliency)
    axes[1].imshow(heat, cmap="inferno", vmin=0, vmax=1, interpolation="nearest")
    axes[1].set_title("LAM |attribution|, sqrt scale", fontsize=9)
    axes[2].imshow(img.mean(2), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[2].imshow(heat, cmap="inferno", alpha=0.6, vmin=0, vmax=1, interpolation="nearest")
    axes[2].add_patch(Rectangle((wx - 0.5, wy - 0.5), size, size, fill=False, ec="cyan", lw=1))
    axes[2].set_title(f"overlay, DI = {result.di:.2f}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return fig


def run_lam(
    model: str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    windows: Sequence[Sequence[int]],
    *,
    scale: int | None = None,
    from_hr: bool = False,
    sigma: float = 1.2,
    steps: int = 50,
    kernel_size: int = 9,
    objective: str = "gradient",
    batch: int = 4,
    device: str = "cpu",
    figures: bool = True,
) -> dict[str, Any]:
    """LAM of each window on each image; writes ``lam_<image>_<x>_<y>_<size>.png`` (the
    figure), ``.npy`` (the (3, H, W) float32 attribution) and ``lam.json`` into ``out_dir`` and
    returns the JSON's content.

    ``lam.json``: the settings, ``results`` (one record per image and window: ``di``, the
    objective at input and baseline, the attribution's sum and its completeness gap) and ``di``
    (the same DIs, in that order).

    Args:
        model: a model name (bundled weights) or a checkpoint path.
        images: LR inputs (or, with ``from_hr``, HR images made into the benchmark LR input).
        windows: ``(x, y, size)`` output windows.
        Others: as :func:`lam`.
    """
    if not windows:
        raise LightSRError("LAM needs at least one --window X Y SIZE (output pixels)")
    net = load_network(model, scale=scale, device=device)
    inputs = load_images(
        images, downscale=net.scale if from_hr else 1, max_side=MAX_SIDE, device=net.device
    )
    out = Path(out_dir)
    results = []
    for path, x in zip(images, inputs, strict=True):
        for window in windows:
            r = lam(
                net,
                x,
                window,
                sigma=sigma,
                steps=steps,
                kernel_size=kernel_size,
                objective=objective,
                batch=batch,
            )
            stem = f"lam_{Path(path).stem}_{'_'.join(str(int(v)) for v in window)}"
            record = {
                "image": str(path),
                "window": [int(v) for v in window],
                "di": r.di,
                "objective_input": r.objective_input,
                "objective_baseline": r.objective_baseline,
                "attribution_sum": r.total,
                "completeness_gap": r.total - (r.objective_input - r.objective_baseline),
            }
            with atomic_path(out / f"{stem}.npy", suffix=".npy") as tmp:
                np.save(tmp, r.attribution.astype(np.float32))
            record["attribution"] = f"{stem}.npy"
            if figures:
                title = f"{net.resolved.name}: {Path(path).name}, window {tuple(window)}"
                save_figure(lam_figure(x, r, window, net.scale, title), out / f"{stem}.png")
                record["figure"] = f"{stem}.png"
            results.append(record)
    data = {
        "model": net.resolved.name,
        "scale": net.scale,
        "from_hr": from_hr,
        "sigma": sigma,
        "steps": steps,
        "kernel_size": kernel_size,
        "objective": objective,
        "results": results,
        "di": [r["di"] for r in results],
    }
    write_json(data, out / "lam.json")
    return data
