"""The model zoo against the SAFMN paper's Table 1 and Figure 1, from measured numbers only.

For every model whose public checkpoint is in ``shared/weights/`` (see its README), at each
scale the checkpoint serves, this script

- evaluates PSNR/SSIM (Y channel, border cropped by the scale, LR made on the fly with the
  MATLAB-exact bicubic) on Set5, Set14 and B100 with :func:`lightsr.evaluation.evaluate.evaluate`;
- counts parameters, FLOPs (1 multiply-add = 1 FLOP) and activations at the paper's sizes (the
  output is 1280x720) with :func:`lightsr.evaluation.bench.count_complexity`;

and writes ``docs/zoo.md`` (a Markdown table in the layout of the paper's Table 1, then the
Set5 values against the published ones) and ``docs/zoo.png`` (Set5 x4 PSNR against FLOPs,
marker area by parameters, like the paper's Figure 1). Plotting needs matplotlib (a dev-only
dependency: ``pip install matplotlib``).

Run (about 30 minutes on 2 CPU cores)::

    python benchmarks/zoo_report.py [--json runs/zoo.json] [--threads N]
    python benchmarks/zoo_report.py --from-json runs/zoo.json   # re-render only

``LIGHTSR_SHARED`` overrides the location of ``shared/`` (default: ``../shared`` beside the
checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lightsr.evaluation.bench import count_complexity, input_size_for_output
from lightsr.evaluation.evaluate import evaluate
from lightsr.inference.upscaler import load_model
from lightsr.models.registry import MODELS

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("Set5", "Set14", "B100")


@dataclass(frozen=True)
class Entry:
    """One method of the table.

    Attributes:
        label: the method as printed.
        model: base name in :data:`lightsr.models.registry.MODELS` (its ``paper`` metadata is used).
        files: scale -> checkpoint under ``shared/weights/``.
        reference: scale -> Set5 PSNR that ``shared/weights/README.md`` lists for the file.
    """

    label: str
    model: str
    files: dict[int, str]
    reference: dict[int, float]


ENTRIES = [
    Entry("FSRCNN (T91)", "fsrcnn",
          {s: f"baselines/FSRCNN_T91_x{s}.pth" for s in (2, 3, 4)},
          {2: 37.10, 3: 32.59, 4: 30.51}),
    Entry("CARN-M", "carn-m", {s: "baselines/CARN_M.pth" for s in (2, 3, 4)},
          {2: 37.68, 3: 34.06, 4: 31.88}),
    Entry("IMDN", "imdn", {s: f"baselines/IMDN_x{s}.pth" for s in (2, 3, 4)},
          {2: 38.00, 3: 34.36, 4: 32.21}),
    Entry("PAN", "pan", {s: f"baselines/PANx{s}_DF2K.pth" for s in (2, 3, 4)},
          {2: 38.00, 3: 34.40, 4: 32.13}),
    Entry("RFDN (AIM 2020)", "rfdn", {4: "baselines/RFDN_AIM_x4.pth"}, {4: 32.16}),
    Entry("RLFN-S", "rlfn-s", {s: f"baselines/rlfn_s_x{s}.pth" for s in (2, 4)},
          {2: 38.05, 4: 32.24}),
    Entry("RLFN", "rlfn", {s: f"baselines/rlfn_x{s}.pth" for s in (2, 4)},
          {2: 38.07, 4: 32.24}),
    Entry("light SAFMN++ (AIS 2024)", "light-safmnpp",
          {4: "safmn/light_SAFMNPP_AIS2024_x4.pth"}, {}),
    Entry("SAFMN++ (NTIRE 2024)", "safmnpp", {4: "safmn/SAFMNPP_NTIRE2024_x4.pth"},
          {4: 32.02}),
    Entry("SAFMN (NTIRE 2023)", "safmn-ntire2023", {4: "safmn/SAFMN_NTIRE2023_x4.pth"},
          {4: 32.17}),
    Entry("SAFMN", "safmn", {2: "safmn/SAFMN_DF2K_x2.pth"}, {2: 38.00}),
]  # fmt: skip

#: The paper's own SAFMN x2 row (Table 1; PSNR, SSIM), the only one with published weights.
SAFMN_PAPER_X2 = {"Set5": (38.00, 0.9605), "Set14": (33.54, 0.9177), "B100": (32.16, 0.8995)}

#: Why a measured Set5 value differs from the paper's by more than 0.02 dB.
EXPLANATIONS = {
    "carn-m": (
        "CARN-M's published numbers come from CARN's own evaluation code (its LR images and "
        "PSNR computation), not the MATLAB protocol used here; on the common protocol the same "
        "public weights read +0.15/+0.07/-0.04 dB against them, as the weights README notes."
    ),
    "fsrcnn": (
        "the public FSRCNN weights are a third-party re-training on T91 alone, not the paper's "
        "T91 + General-100 training with per-scale fine-tuning: they read 0.14 dB above the "
        "paper at x2 and 0.19-0.56 dB below it at x4/x3. (The weights README's 37.10/32.59/30.51 "
        "round the network's Y plane to 8 bits; this table rounds the RGB output, Y from "
        "bicubically upscaled Cb/Cr, which reads 0.013-0.033 dB higher.)"
    ),
}


def shared_root() -> Path:
    return Path(os.environ.get("LIGHTSR_SHARED", REPO.parent / "shared")).resolve()


def measure(entry: Entry, scale: int, datasets: tuple[str, ...]) -> dict[str, Any]:
    """Evaluate and count one (method, scale)."""
    path = shared_root() / "weights" / entry.files[scale]
    up = load_model(path, scale=scale, device="cpu", fast=False)
    t0 = time.perf_counter()
    results = evaluate(up.upscale, entry.label, list(datasets), scale,
                       data_root=shared_root() / "datasets")  # fmt: skip
    cost = count_complexity(up.model, input_size_for_output((1280, 720), scale))
    return {
        "label": entry.label,
        "model": entry.model,
        "scale": scale,
        "file": entry.files[scale],
        "params": cost.params,
        "flops_g": cost.flops / 1e9,
        "acts_m": cost.acts / 1e6,
        "input_size": list(cost.input_size),
        "scores": {r.dataset: [r.psnr, r.ssim] for r in results},
        "seconds": time.perf_counter() - t0,
    }


def _paper_set5(model: str, scale: int) -> float | None:
    if model == "safmn" and scale == 2:
        return SAFMN_PAPER_X2["Set5"][0]
    spec = MODELS.get(f"{model}-x{scale}")
    value = spec.paper.get("set5_psnr") if spec else None
    return float(value) if value else None


def render_markdown(records: list[dict[str, Any]], datasets: tuple[str, ...]) -> str:
    """The report: a Table 1-style table, then Set5 against the published values."""
    entries = {e.model: e for e in ENTRIES}
    lines = [
        "# Model zoo: efficient SR models measured with one evaluator and one cost counter",
        "",
        "Generated by `python benchmarks/zoo_report.py` from the public checkpoints in "
        "`shared/weights/` (not part of the repository). Every number below was measured "
        "here; none is copied from a paper.",
        "",
        "- PSNR/SSIM: Y channel of BT.601 YCbCr, `scale` pixels cropped from each border, "
        "LR made on the fly by MATLAB-exact bicubic downscaling, SR rounded to 8-bit RGB "
        "(`lightsr eval`).",
        "- #Params: all parameters of the loaded network. #FLOPs: multiply-adds (1 MAC = 1 "
        "FLOP, fvcore convention, plus fvcore's counts for upsampling and norms) and #Acts: "
        "elements of all conv outputs, both for an output of 1280x720 (input "
        "ceil(1280/s) x ceil(720/s)) (`lightsr bench`).",
        "",
        "| Scale | Method | #Params [K] | #FLOPs [G] | #Acts [M] | " + " | ".join(datasets) + " |",
        "|---|---|---:|---:|---:|" + "---|" * len(datasets),
    ]
    for scale in (2, 3, 4):
        for r in (r for r in records if r["scale"] == scale):
            cells = [
                "{:.2f}/{:.4f}".format(*r["scores"][d]) if d in r["scores"] else "-"
                for d in datasets
            ]
            lines.append(
                f"| x{scale} | {r['label']} | {r['params'] / 1e3:.2f} | {r['flops_g']:.2f} | "
                f"{r['acts_m']:.2f} | " + " | ".join(cells) + " |"
            )
    lines += [
        "",
        "Notes: CARN-M is one multi-scale network; its parameter count includes the x2, x3 and "
        "x4 upsamplers and the two fixed mean-shift convolutions (the FLOPs only the branch "
        "used). FSRCNN's transposed convolution is counted on its input grid, as fvcore does; "
        "counting it on the HR grid, as some tables do, gives 6.0G at x2 and 4.6G at x4. "
        "light SAFMN++ was trained for AVIF-compressed inputs, so clean bicubic inputs are not "
        "its task. The x3 input is 427x240.",
        "",
        "## Set5 against the published values",
        "",
        "| Method | Scale | Set5 measured | weights README | paper (SAFMN Table 1) | "
        "measured - paper |",
        "|---|---|---:|---:|---:|---:|",
    ]
    flagged = []
    for r in records:
        measured = r["scores"].get("Set5", [float("nan")])[0]
        ref = entries[r["model"]].reference.get(r["scale"])
        paper = _paper_set5(r["model"], r["scale"])
        delta = measured - paper if paper is not None else None
        if delta is not None and abs(delta) > 0.02:
            flagged.append(r["model"])
        lines.append(
            f"| {r['label']} | x{r['scale']} | {measured:.3f} | "
            f"{f'{ref:.2f}' if ref is not None else '-'} | "
            f"{f'{paper:.2f}' if paper is not None else '-'} | "
            f"{f'{delta:+.3f}' if delta is not None else '-'} |"
        )
    if "safmn" in {r["model"] for r in records}:
        safmn = next(r for r in records if r["model"] == "safmn")
        lines += ["", "SAFMN x2 (the paper's checkpoint) on every dataset, measured - paper:"]
        lines.append(
            ", ".join(
                f"{d} {safmn['scores'][d][0] - SAFMN_PAPER_X2[d][0]:+.3f} dB / "
                f"{safmn['scores'][d][1] - SAFMN_PAPER_X2[d][1]:+.4f}"
                for d in datasets
                if d in safmn["scores"] and d in SAFMN_PAPER_X2
            )
            + "."
        )
    if flagged:
        lines += ["", "Rows more than 0.02 dB from the paper:", ""]
        lines += [
            f"- {entries[m].label}: {EXPLANATIONS.get(m, 'not explained')}"
            for m in dict.fromkeys(flagged)
        ]
    lines += [
        "",
        "Not in the table (no public weights reachable): the paper's SAFMN x3/x4, ESPCN, "
        "EDSR-baseline, LAPAR, ShuffleMixer. ESPCN and EDSR-baseline are built and counted by "
        "`lightsr bench espcn-x4` / `lightsr bench edsr-baseline-x4`.",
        "",
        "![Set5 x4 PSNR against FLOPs](zoo.png)",
        "",
    ]
    return "\n".join(lines)


#: Label directions tried in turn: right, left, up-right, down-left, up, down, ...
_DIRECTIONS = ((1, 0.5), (-1, 0.5), (1, -0.5), (-1, -0.5), (0, 1), (0, -1), (1, 1), (-1, -1))


def _overlap(a: Any, b: Any) -> float:
    """The area two display boxes share."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


def place_labels(
    ax: Any, points: list[tuple[float, float]], labels: list[str], sizes: list[float]
) -> None:
    """Annotate each point (a scatter marker of area ``sizes`` in points^2) with its label at
    the offset that overlaps least: labels already placed count most, then leaving the axes,
    then markers, then distance (a leader line when the label sits away from its marker);
    points are labelled top to bottom. Call after the axes' scales and data are set."""
    import matplotlib.transforms as mtransforms

    fig = ax.figure
    fig.canvas.draw()  # fixes the limits and gives a renderer for the text extents
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    px = fig.dpi / 72.0  # display pixels per point
    radii = [(s**0.5) / 2.0 for s in sizes]  # marker radius in points
    markers = []
    for (x, y), r in zip(points, radii, strict=True):
        cx, cy = ax.transData.transform((x, y))
        markers.append(
            mtransforms.Bbox.from_extents(cx - r * px, cy - r * px, cx + r * px, cy + r * px)
        )
    placed: list[Any] = []
    for i in sorted(range(len(points)), key=lambda k: -points[k][1]):
        own = radii[i] + 2.0
        best: tuple[float, float, float] | None = None
        for step in range(6):
            for dx, dy in _DIRECTIONS:
                off = (dx * (own + 12 * step), dy * (own + 12 * step))
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                text = ax.annotate(labels[i], points[i], textcoords="offset points", xytext=off,
                                   fontsize=7, ha=ha, va="bottom" if dy > 0 else "top")  # fmt: skip
                box = text.get_window_extent(renderer).expanded(1.04, 1.08)
                text.remove()
                outside = box.width * box.height - _overlap(box, frame)
                cost = (1e3 * sum(_overlap(box, b) for b in placed) + 1e2 * outside
                        + sum(_overlap(box, m) for m in markers) + step)  # fmt: skip
                if best is None or cost < best[0]:
                    best = (cost, *off)
                    best_box = box
        assert best is not None
        _, dx, dy = best
        ax.annotate(labels[i], points[i], textcoords="offset points", xytext=(dx, dy), fontsize=7,
                    ha="left" if dx > 0 else "right" if dx < 0 else "center",
                    va="bottom" if dy > 0 else "top",
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.4"}
                    if max(abs(dx), abs(dy)) > own + 6 else None)  # fmt: skip
        placed.append(best_box)


def render_plot(records: list[dict[str, Any]], out: Path) -> None:
    """Set5 x4 PSNR against FLOPs (log axis), marker area proportional to parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if r["scale"] == 4 and "Set5" in r["scores"]]
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    for r in rows:
        is_safmn = "SAFMN" in r["label"]
        ax.scatter(
            r["flops_g"],
            r["scores"]["Set5"][0],
            s=r["params"] / 1e3,  # area in points^2 = params in K
            alpha=0.55,
            color="tab:red" if is_safmn else "tab:blue",
            edgecolors="black",
            linewidths=0.6,
        )
    ax.set_xscale("log")
    place_labels(
        ax,
        [(r["flops_g"], r["scores"]["Set5"][0]) for r in rows],
        [f"{r['label']}\n{r['params'] / 1e3:.0f}K" for r in rows],
        [r["params"] / 1e3 for r in rows],
    )
    ax.set_xlabel("FLOPs (G, 1 multiply-add = 1 FLOP), output 1280x720")
    ax.set_ylabel("PSNR on Set5 x4 (dB, Y channel)")
    ax.set_title("Efficient SR, x4: measured PSNR vs FLOPs (marker area = parameters)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Comparison with the NTIRE efficient-SR challenge winners (x4)

NTIRE_HEADING = "## Comparison with NTIRE winners"

#: (label, catalog name, checkpoint under shared/weights or None for lightsr's bundled weights,
#: Set5 PSNR-Y measured with the official code per shared/weights/ntire/README.md).
NTIRE_ENTRIES: list[tuple[str, str, str | None, float | None]] = [
    ("RLFN (NTIRE 2022 winner)", "rlfn-x4", "baselines/rlfn_x4.pth", None),
    ("SAFMN (lightsr, bundled)", "safmn-x4", None, None),
    ("SAFMN (NTIRE 2023)", "safmn-ntire2023-x4", "safmn/SAFMN_NTIRE2023_x4.pth", None),
    ("SAFMN++ (NTIRE 2024)", "safmnpp-x4", "safmn/SAFMNPP_NTIRE2024_x4.pth", None),
    ("SPAN (NTIRE 2024 winner)", "span-ch28-x4",
     "ntire/NTIRE2024_team38_span_ch28_slim.pth", 31.7459),
    ("DSCF (NTIRE 2025 winner)", "dscf-x4", "ntire/NTIRE2025_team23_DSCF.pth", 31.7467),
    ("SPAN-F (NTIRE 2025, 2nd)", "span-f-x4", "ntire/NTIRE2025_team24_spanf.pth", 31.7736),
    ("ESPAN (NTIRE 2025)", "espan-x4", "ntire/NTIRE2025_team36_espan.pth", 31.9422),
    ("SAFMNv3 (NTIRE 2025)", "safmnv3-x4", "ntire/NTIRE2025_team19_safmnv3.pth", 32.0347),
    ("EFDN (NTIRE 2025 baseline)", "efdn-x4", "ntire/NTIRE2025_team00_EFDN.pth", 32.0797),
]  # fmt: skip


def measure_ntire(
    label: str, name: str, rel: str | None, datasets: tuple[str, ...], runs: int
) -> dict[str, Any]:
    """Evaluate, count (256x256 input, the challenges' convention) and time one x4 model."""
    from lightsr.evaluation.bench import NTIRE_INPUT_SIZE, measure_runtime

    source: str | Path = name if rel is None else shared_root() / "weights" / rel
    up = load_model(source, scale=4, device="cpu", fast=False)
    data = shared_root() / "datasets"
    present = [d for d in datasets if (data / d).is_dir()]
    t0 = time.perf_counter()
    results = evaluate(up.upscale, label, present, 4, data_root=data)
    cost = count_complexity(up.model, NTIRE_INPUT_SIZE)
    rt = measure_runtime(up.model, NTIRE_INPUT_SIZE, device="cpu", runs=runs, warmup=1, fast=False)
    return {
        "label": label,
        "model": name,
        "file": rel or "bundled",
        "params": cost.params,
        "flops_g": cost.flops / 1e9,
        "acts_m": cost.acts / 1e6,
        "convs": cost.convs,
        "runtime_ms": rt.median_ms,
        "runtime_min_ms": rt.min_ms,
        "runtime_max_ms": rt.max_ms,
        "runs": runs,
        "peak_mem_mb": rt.peak_mem_mb,
        "scores": {r.dataset: [r.psnr, r.ssim] for r in results},
        "seconds": time.perf_counter() - t0,
    }


def render_ntire_markdown(records: list[dict[str, Any]]) -> str:
    """The NTIRE section: cost the challenges' way, PSNR, runtime in the same run."""
    datasets = [d for d in ("Set5", "Set14", "B100", "Urban100")
                if any(d in r["scores"] for r in records)]  # fmt: skip
    reference = {name: ref for _, name, _, ref in NTIRE_ENTRIES}
    lines = [
        NTIRE_HEADING,
        "",
        "The NTIRE efficient-SR challenge winners and entries whose weights are public, x4, "
        "measured in one run of `python benchmarks/zoo_report.py --ntire-only` (cost columns "
        "as `lightsr bench --ntire` prints them). #FLOPs (1 multiply-add = 1 FLOP), #Acts "
        "(elements of conv outputs) and #Convs at the challenges' 256x256 input. Runtime: "
        "median (min-max) of the timed forward passes of the plain PyTorch model on a "
        "256x256 input, batch 1, float32, on this machine's CPU in the same run (2 cores "
        "shared with other jobs: compare rows with each other, not with the challenge "
        "reports' GPU times); peak memory: the CPU peak-RSS increase of one forward pass plus "
        "weights and input. PSNR/SSIM: Y channel, border 4, MATLAB-bicubic LR "
        "(`lightsr eval`). SPAN, DSCF, SPAN-F and ESPAN run their re-parameterised inference "
        "form, EFDN its deployed form.",
        "",
        "| Method | #Params [K] | #FLOPs [G] | #Acts [M] | #Convs | Runtime [ms] | "
        "Peak [MB] | " + " | ".join(datasets) + " |",
        "|---|---:|---:|---:|---:|---:|---:|" + "---|" * len(datasets),
    ]
    for r in records:
        cells = ["{:.2f}/{:.4f}".format(*r["scores"][d]) if d in r["scores"] else "-"
                 for d in datasets]  # fmt: skip
        mem = f"{r['peak_mem_mb']:.0f}" if r.get("peak_mem_mb") is not None else "-"
        lines.append(
            f"| {r['label']} | {r['params'] / 1e3:.2f} | {r['flops_g']:.2f} | "
            f"{r['acts_m']:.2f} | {r['convs']} | {r['runtime_ms']:.0f} "
            f"({r['runtime_min_ms']:.0f}-{r['runtime_max_ms']:.0f}) | {mem} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "Set5 against the values measured with each team's official code "
        "(`shared/weights/ntire/README.md`):",
        "",
        "| Method | Set5 measured | official code | measured - official |",
        "|---|---:|---:|---:|",
    ]
    for r in records:
        ref = reference.get(r["model"])
        if ref is None or "Set5" not in r["scores"]:
            continue
        got = r["scores"]["Set5"][0]
        lines.append(f"| {r['label']} | {got:.4f} | {ref:.4f} | {got - ref:+.4f} |")
    missing = [
        label for label, name, _, _ in NTIRE_ENTRIES if name not in {r["model"] for r in records}
    ]
    if missing:
        lines += ["", f"Not measured in this run: {', '.join(missing)}."]
    lines += ["", "![Set5 x4 PSNR against CPU runtime, NTIRE entries](zoo_ntire.png)", ""]
    return "\n".join(lines)


def render_ntire_plot(records: list[dict[str, Any]], out: Path) -> None:
    """PSNR (Set5 x4, and Set14/B100 where measured) against the runtime of the same run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in ("Set5", "Set14", "B100") if any(d in r["scores"] for r in records)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.8), dpi=120)
    for ax, d in zip(list(np.atleast_1d(axes)), datasets, strict=True):
        for r in (r for r in records if d in r["scores"]):
            colour = "tab:red" if "SAFMN" in r["label"] else "tab:blue"
            ax.scatter(r["runtime_ms"], r["scores"][d][0], s=r["params"] / 1e3, alpha=0.55,
                       color=colour, edgecolors="black", linewidths=0.6)  # fmt: skip
        rows = [r for r in records if d in r["scores"]]
        place_labels(ax, [(r["runtime_ms"], r["scores"][d][0]) for r in rows],
                     [r["label"] for r in rows], [r["params"] / 1e3 for r in rows])  # fmt: skip
        ax.set_xlabel("CPU runtime, 256x256 input (ms, median; same run)")
        ax.set_ylabel(f"PSNR on {d} x4 (dB, Y channel)")
        ax.set_title(f"NTIRE efficient-SR entries, x4, {d} (marker area = parameters)")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def _splice(text: str, section: str) -> str:
    """``text`` with its NTIRE section (heading to the end) replaced by ``section``."""
    head = text.split(NTIRE_HEADING)[0].rstrip("\n")
    return f"{head}\n\n{section}"


def _run_ntire(args: argparse.Namespace, datasets: tuple[str, ...]) -> list[dict[str, Any]]:
    if args.from_ntire_json:
        return json.loads(args.from_ntire_json.read_text(encoding="utf-8"))
    records = []
    for label, name, rel, _ in NTIRE_ENTRIES:
        if rel is not None and not (shared_root() / "weights" / rel).is_file():
            continue
        rec = measure_ntire(label, name, rel, datasets, args.runs)
        records.append(rec)
        scores = ", ".join(f"{d} {p:.3f}" for d, (p, _) in rec["scores"].items())
        print(f"{label}: {scores}, {rec['runtime_ms']:.0f} ms ({rec['seconds']:.0f} s)", flush=True)
        if args.ntire_json:
            args.ntire_json.parent.mkdir(parents=True, exist_ok=True)
            args.ntire_json.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-md", type=Path, default=REPO / "docs" / "zoo.md")
    parser.add_argument("--out-png", type=Path, default=REPO / "docs" / "zoo.png")
    parser.add_argument("--json", type=Path, help="also save the raw measurements here")
    parser.add_argument("--from-json", type=Path, help="render saved measurements only")
    parser.add_argument("--models", nargs="+", help="model base names (default: all)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--ntire-only", action="store_true",
                        help="measure only the NTIRE comparison and replace that section of "
                        "--out-md (the rest of the file is kept)")  # fmt: skip
    parser.add_argument("--no-ntire", action="store_true", help="skip the NTIRE comparison")
    parser.add_argument("--ntire-json", type=Path, help="also save the NTIRE measurements")
    parser.add_argument("--from-ntire-json", type=Path, help="render saved NTIRE measurements")
    parser.add_argument("--out-ntire-png", type=Path, default=REPO / "docs" / "zoo_ntire.png")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per NTIRE model (5)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    datasets = tuple(args.datasets)
    if args.ntire_only:
        ntire = _run_ntire(args, (*datasets, "Urban100"))
        text = args.out_md.read_text(encoding="utf-8") if args.out_md.is_file() else ""
        args.out_md.write_text(_splice(text, render_ntire_markdown(ntire)), encoding="utf-8")
        render_ntire_plot(ntire, args.out_ntire_png)
        print(f"wrote the NTIRE section of {args.out_md} and {args.out_ntire_png}")
        return 0
    if args.from_json:
        records = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        if not (shared_root() / "weights").is_dir():
            print(f"error: {shared_root()}/weights not found; set LIGHTSR_SHARED", file=sys.stderr)
            return 1
        records = []
        for entry in ENTRIES:
            if args.models and entry.model not in args.models:
                continue
            for scale in sorted(entry.files):
                rec = measure(entry, scale, datasets)
                records.append(rec)
                scores = ", ".join(f"{d} {p:.3f}/{s:.4f}" for d, (p, s) in rec["scores"].items())
                print(f"{entry.label} x{scale}: {scores} ({rec['seconds']:.0f} s)", flush=True)
                if args.json:  # keep what is done if a later model fails
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps(records, indent=1), encoding="utf-8")
    args.out_md.parent.mkdir(parents=True, exist_ok=True)
    text = render_markdown(records, datasets)
    if not args.no_ntire:
        ntire = _run_ntire(args, (*datasets, "Urban100"))
        text = _splice(text, render_ntire_markdown(ntire))
        render_ntire_plot(ntire, args.out_ntire_png)
    args.out_md.write_text(text, encoding="utf-8")
    render_plot(records, args.out_png)
    print(f"wrote {args.out_md} and {args.out_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
