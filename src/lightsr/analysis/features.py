"""Feature maps and window-attention maps at named layers, channel-reduced, beside the input.

What the papers show: SAFMN (Sun et al., ICCV 2023) compares features before and after the SAFM
and its modulation map; UPS (Zhou et al., NeurIPS 2024) shows, at a layer of SwinIR-light and of
UPS, the features X entering the attention, the similarity (attention) map S of a query and the
attention's output Y. Feature maps are reduced over channels by their mean or their first
principal component (:func:`lightsr.analysis._common.reduce_channels`); an attention map is the
head-averaged attention weights of one query pixel over the keys of its (shifted) window, put
back at the keys' pixels (zero outside the window).
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
    image_array,
    load_images,
    load_network,
    module_names,
    parse_probes,
    pyplot,
    reduce_channels,
    reference_path,
    save_figure,
    to_spatial,
    window_layer,
    write_json,
)
from lightsr.errors import LightSRError

__all__ = ["capture_features", "default_feature_layers", "query_attention", "run_features"]


def _attention_layers(model: nn.Module) -> list[str]:
    modules = dict(model.named_modules())
    return [
        n
        for n in module_names(model)
        if n.endswith(".attn") and hasattr(modules[n], "relative_position_bias_table")
    ]


def default_feature_layers(model: nn.Module, block: int | None = None) -> list[str]:
    """The papers' choices: SAFMN block ``block`` (default the middle one) before the SAFM
    (its input, the normalised X), after it, and its modulation map; window attention: the
    X / S / Y triple of attention layer ``block`` (counted over all groups; default: the first
    layer of the second group); otherwise every top-level child with a per-pixel output."""
    modules = dict(model.named_modules())
    attn = _attention_layers(model)
    feats = getattr(model, "feats", None)
    if attn:
        if block is None:
            second = [n for n in attn if n.startswith("layers.1.")]
            name = second[0] if second else attn[len(attn) // 2]
        else:
            name = attn[_block_index(block, len(attn))]
        return [f"{name}@in", f"{name}@attn", name]
    if isinstance(feats, nn.Sequential) and len(feats) and hasattr(feats[0], "safm"):
        i = _block_index(len(feats) // 2 if block is None else block, len(feats))
        act = "safm.act" if f"feats.{i}.safm.act" in modules else "safm"
        return [f"feats.{i}.safm@in", f"feats.{i}.safm", f"feats.{i}.{act}"]
    return [name for name, _ in model.named_children()]


def _block_index(block: int, count: int) -> int:
    if not 0 <= block < count:
        raise LightSRError(f"--block {block}: this model has blocks 0 to {count - 1}")
    return block


def query_attention(
    model: nn.Module,
    probe: Probe,
    weights: torch.Tensor,
    padded: tuple[int, int],
    query: tuple[int, int],
) -> np.ndarray:
    """(H, W) map of the head-averaged attention weights of query pixel ``(x, y)`` (input
    pixels) from the (nW, heads, N, N) weights of a Swin layer's attention (one image)."""
    found = window_layer(model, probe.module)
    if found is None:
        raise LightSRError(f"{probe.label}: not inside a window-attention layer")
    hp, wp = padded
    order, inverse, _ = found[0].order_for(hp, wp, weights.device)
    n = weights.shape[-1]
    qx, qy = query
    pos = int(inverse[qy * wp + qx])
    win, row = divmod(pos, n)
    row_weights = weights[win, :, row, :].mean(0).double()
    flat = torch.zeros(hp * wp, dtype=torch.float64, device=weights.device)
    flat[order[win * n : (win + 1) * n]] = row_weights
    return flat.view(hp, wp).cpu().numpy()


def capture_features(
    net: Network, x: torch.Tensor, probes: Sequence[Probe]
) -> dict[str, torch.Tensor]:
    """One forward of the (1, 3, H, W) input; per probe the recorded tensor: per-pixel ones as
    (C, H, W) cropped to the input, attention weights raw (nW, heads, N, N), anything else as
    recorded (last call when a module runs more than once)."""
    h, w = x.shape[-2:]
    with reference_path(net.model), capture(net.model, probes) as store, torch.no_grad():
        net(x)
    out = {}
    for probe in probes:
        calls = store[probe.label]
        if not calls:
            raise LightSRError(f"layer {probe.label} did not run in the forward")
        t = calls[-1]
        s = None if probe.part == "attn" else to_spatial(net.model, probe, t, net.padded)
        out[probe.label] = t if s is None else s[0, :, :h, :w]
    return out


#: What the papers call the default layers' maps (by the label's ending).
ROLES = (
    ("safm@in", "before SAFM"),
    ("safm.act", "modulation map"),
    ("safm", "after SAFM"),
    ("attn@in", "X"),
    ("attn@attn", "S"),
    ("attn", "Y"),
)


def _role(label: str) -> str:
    return next((f"{role}: " for end, role in ROLES if label.endswith(end)), "")


def _panel(
    net: Network,
    probe: Probe,
    t: torch.Tensor,
    x: torch.Tensor,
    query: tuple[int, int],
    reduce: str,
) -> tuple[np.ndarray, str, dict[str, Any]] | None:
    """A 2-D map for one probe, its caption and its JSON record (None: not showable)."""
    h, w = x.shape[-2:]
    if probe.part == "attn":
        m = query_attention(net.model, probe, t, net.padded, query)[:h, :w]
        caption = f"S: attention of query {query} (zoomed)"
    elif t.ndim == 3 and tuple(t.shape[-2:]) == (h, w):
        m = reduce_channels(t, reduce)
        caption = f"{_role(probe.label)}{reduce} over {t.shape[0]} ch"
    elif t.ndim == 4 and t.shape[0] == 1:  # a map on another grid (e.g. the output)
        m = reduce_channels(t[0], reduce)
        caption = f"{reduce} over {t.shape[1]} ch, {t.shape[-1]}x{t.shape[-2]}"
    else:
        return None
    record = {
        "layer": probe.label,
        "shape": list(t.shape),
        "min": float(m.min()),
        "max": float(m.max()),
        "mean": float(m.mean()),
    }
    return m, caption, record


def features_figure(
    x: torch.Tensor,
    panels: Sequence[tuple[str, np.ndarray, str]],
    title: str,
    query: tuple[int, int] | None,
) -> Any:
    """The input and one panel per layer, side by side."""
    plt = pyplot()
    k = len(panels) + 1
    fig, axes = plt.subplots(1, k, figsize=(2.9 * k, 3.3))
    axes[0].imshow(image_array(x), interpolation="nearest")
    axes[0].set_title("input", fontsize=8)
    if query is not None:
        axes[0].plot([query[0]], [query[1]], marker="+", color="red", ms=10, mew=1.5)
    gray = image_array(x).mean(2)
    for ax, (label, m, caption) in zip(axes[1:], panels, strict=True):
        ax.set_title(f"{label.replace('residual_group.blocks.', '')}\n{caption}", fontsize=7)
        if not caption.startswith("S:") or not m.any():
            ax.imshow(m, cmap="viridis", interpolation="nearest")
            continue
        # an attention map: zoom to its window (4 pixels around), over the gray input
        rows, cols = np.nonzero(m)
        y0, y1 = max(0, rows.min() - 4), min(m.shape[0], rows.max() + 5)
        x0, x1 = max(0, cols.min() - 4), min(m.shape[1], cols.max() + 5)
        extent = (x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5)
        ax.imshow(gray[y0:y1, x0:x1], cmap="gray", vmin=0, vmax=1, extent=extent)
        heat = np.ma.masked_equal(m[y0:y1, x0:x1], 0)
        ax.imshow(heat, cmap="inferno", alpha=0.8, extent=extent, interpolation="nearest")
        if query is not None:
            ax.plot([query[0]], [query[1]], marker="+", color="cyan", ms=10, mew=1.5)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    return fig


def run_features(
    model: str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    layers: Sequence[str] | None = None,
    *,
    block: int | None = None,
    query: tuple[int, int] | None = None,
    reduce: str = "mean",
    scale: int | None = None,
    from_hr: bool = False,
    device: str = "cpu",
    figures: bool = True,
) -> dict[str, Any]:
    """Feature (and attention) maps of ``layers`` (default :func:`default_feature_layers`) for
    each image; writes ``features_<image>.png`` and ``features.json`` (per image and layer: the
    recorded shape and the reduced map's min, max and mean) into ``out_dir``.

    ``query``: the (x, y) input pixel whose attention map ``@attn`` layers show (default the
    image centre)."""
    if reduce not in ("mean", "pca"):
        raise LightSRError(f"--reduce {reduce!r}: use mean or pca")
    net = load_network(model, scale=scale, device=device)
    probes = parse_probes(net.model, layers or default_feature_layers(net.model, block))
    inputs = load_images(images, downscale=net.scale if from_hr else 1, device=net.device)
    out = Path(out_dir)
    results = []
    for path, x in zip(images, inputs, strict=True):
        h, w = x.shape[-2:]
        q = query if query is not None else (w // 2, h // 2)
        if not (0 <= q[0] < w and 0 <= q[1] < h):
            raise LightSRError(f"--query {q[0]} {q[1]}: outside the {w}x{h} input")
        captured = capture_features(net, x, probes)
        panels, records = [], []
        for probe in probes:
            shown = _panel(net, probe, captured[probe.label], x, q, reduce)
            if shown is None:
                records.append({"layer": probe.label, "shape": list(captured[probe.label].shape)})
                continue
            m, caption, record = shown
            panels.append((probe.label, m, caption))
            records.append(record)
        entry: dict[str, Any] = {"image": str(path), "query": list(q), "layers": records}
        if figures and panels:
            name = f"features_{Path(path).stem}.png"
            title = f"{net.resolved.name}: {Path(path).name}"
            has_attn = any(p.part == "attn" for p in probes)
            save_figure(features_figure(x, panels, title, q if has_attn else None), out / name)
            entry["figure"] = name
        results.append(entry)
    data = {
        "model": net.resolved.name,
        "reduce": reduce,
        "from_hr": from_hr,
        "layers": [p.label for p in probes],
        "results": results,
    }
    write_json(data, out / "features.json")
    return data
