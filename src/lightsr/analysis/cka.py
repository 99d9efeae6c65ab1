"""Linear CKA between layers of one network.

Paper: S. Kornblith, M. Norouzi, H. Lee, G. Hinton, "Similarity of Neural Network
Representations Revisited", ICML 2019. For activations ``X`` (n x p) and ``Y`` (n x q) of the
same n examples, columns centred, linear CKA is

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)

(their Eq. 5 with linear kernels): 1 for X = Y, invariant to orthogonal transforms and isotropic
scaling of either side, near 0 for independent features. UPS (Zhou et al., NeurIPS 2024,
Fig. 1a) uses it to show that SwinIR-light's attention projections are alike across layers.

Here the examples are the pixels (tokens) of every image, at most ``samples`` per image drawn
once (seeded) and shared by all layers; the features are a layer's channels. Layers must have one
value per input pixel (feature maps or tokens on the input grid, window tokens put back in
place); the computation is in float64.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lightsr.analysis._common import (
    Network,
    Probe,
    capture,
    load_images,
    load_network,
    module_names,
    parse_probes,
    pyplot,
    reference_path,
    save_figure,
    to_spatial,
    write_json,
)
from lightsr.errors import LightSRError

__all__ = ["cka_matrix", "collect_features", "default_cka_layers", "linear_cka", "run_cka"]


def linear_cka(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Linear CKA of (n, p) and (n, q) activations of the same n examples."""
    a = torch.as_tensor(x, dtype=torch.float64)
    b = torch.as_tensor(y, dtype=torch.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(
            f"linear_cka: need (n, p) and (n, q), got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    a = a - a.mean(0)
    b = b - b.mean(0)
    cross = torch.linalg.matrix_norm(b.T @ a) ** 2
    norm = torch.linalg.matrix_norm(a.T @ a) * torch.linalg.matrix_norm(b.T @ b)
    return float(cross / norm) if norm > 0 else 0.0


def cka_matrix(features: Sequence[torch.Tensor]) -> np.ndarray:
    """The symmetric matrix of :func:`linear_cka` between every pair of (n, p_i) features."""
    k = len(features)
    centred = [f.double() - f.double().mean(0) for f in features]
    grams = [torch.linalg.matrix_norm(f.T @ f) for f in centred]
    out = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            cross = torch.linalg.matrix_norm(centred[j].T @ centred[i]) ** 2
            norm = grams[i] * grams[j]
            out[i, j] = out[j, i] = float(cross / norm) if norm > 0 else 0.0
    return out


def default_cka_layers(model: nn.Module) -> list[str]:
    """Window attention: every attention layer's query projection (``@q``; for UPS the shared
    projection's output); SAFMN-like bodies (``feats``): every block's output; otherwise every
    convolution."""
    modules = dict(model.named_modules())
    attn = [
        n
        for n in module_names(model)
        if n.endswith(".attn") and hasattr(modules[n], "relative_position_bias_table")
    ]
    if attn:
        return [f"{n}@q" for n in attn]
    if isinstance(getattr(model, "feats", None), nn.Sequential):
        return [f"feats.{i}" for i in range(len(model.feats))]
    return [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]


def collect_features(
    net: Network,
    images: Sequence[torch.Tensor],
    probes: Sequence[Probe],
    *,
    samples: int = 4096,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Per probe, (n, C) activations at the same sampled pixels of every image (float64)."""
    gen = torch.Generator().manual_seed(seed)
    per_probe: list[list[torch.Tensor]] = [[] for _ in probes]
    for x in images:
        h, w = x.shape[-2:]
        pick = torch.randperm(h * w, generator=gen)[:samples].sort().values.to(x.device)

        def keep(
            probe: Probe, t: torch.Tensor, h: int = h, w: int = w, pick: torch.Tensor = pick
        ) -> torch.Tensor:
            s = to_spatial(net.model, probe, t, net.padded)
            if s is None or s.shape[0] != 1:
                raise LightSRError(
                    f"layer {probe.label}: {tuple(t.shape)} is not one value per input pixel, "
                    "which CKA over pixels needs; choose layers on the input grid"
                )
            s = s[0, :, :h, :w].reshape(s.shape[1], -1)  # (C, h*w), the image's own pixels
            return s.index_select(1, pick).T.double().cpu()

        with reference_path(net.model), capture(net.model, probes, keep) as store, torch.no_grad():
            net(x)
        for i, probe in enumerate(probes):
            calls = store[probe.label]
            if len(calls) != 1:
                raise LightSRError(
                    f"layer {probe.label} ran {len(calls)} times in one forward; CKA needs a "
                    "module that runs once"
                )
            per_probe[i].append(calls[0])
    return [torch.cat(parts) for parts in per_probe]


def _short(label: str) -> str:
    return label.replace("residual_group.blocks.", "")


def cka_figure(matrix: np.ndarray, labels: Sequence[str], title: str) -> Any:
    """The CKA matrix as a heat map with the layer names on both axes."""
    plt = pyplot()
    k = len(labels)
    side = min(11.0, 2.5 + 0.32 * k)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    im = ax.imshow(matrix, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    names = [_short(s) for s in labels]
    font = 8 if k <= 16 else 6
    ax.set_xticks(range(k), names, rotation=90, fontsize=font)
    ax.set_yticks(range(k), names, fontsize=font)
    if k <= 12:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{matrix[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if matrix[i, j] < 0.6 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="linear CKA")
    ax.set_title(title, fontsize=10)
    return fig


def run_cka(
    model: str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    layers: Sequence[str] | None = None,
    *,
    scale: int | None = None,
    from_hr: bool = False,
    samples: int = 4096,
    seed: int = 0,
    device: str = "cpu",
    figures: bool = True,
) -> dict[str, Any]:
    """Linear CKA between ``layers`` (``NAME[@PART]``, globs allowed; default
    :func:`default_cka_layers`) over ``images``; writes ``cka.png`` and ``cka.json``
    (``layers``, ``cka`` as a list of lists, ``examples``) into ``out_dir``; returns the JSON's
    content."""
    if samples < 2:
        raise LightSRError("--samples must be at least 2 pixels per image")
    net = load_network(model, scale=scale, device=device)
    probes = parse_probes(net.model, layers or default_cka_layers(net.model))
    if len(probes) < 2:
        raise LightSRError("CKA compares layers: name at least two (--layers NAME ...)")
    inputs = load_images(images, downscale=net.scale if from_hr else 1, device=net.device)
    feats = collect_features(net, inputs, probes, samples=samples, seed=seed)
    matrix = cka_matrix(feats)
    labels = [p.label for p in probes]
    data = {
        "model": net.resolved.name,
        "images": [str(p) for p in images],
        "from_hr": from_hr,
        "examples": int(feats[0].shape[0]),
        "layers": labels,
        "cka": [[float(v) for v in row] for row in matrix],
    }
    out = Path(out_dir)
    if figures:
        title = f"{net.resolved.name}: linear CKA over {data['examples']} pixels"
        save_figure(cka_figure(matrix, labels, title), out / "cka.png")
    write_json(data, out / "cka.json")
    return data
