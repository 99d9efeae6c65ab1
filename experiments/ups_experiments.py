"""The UPS paper's experiments as commands, each printing a Markdown table of measured numbers.

    python experiments/ups_experiments.py equal-budget [--scale 2] [--iters N]
        ups vs swinir-light vs ups with per-layer projections: the same quick recipe
        (configs/quick_ups_x<s>.yaml: T91 + BSD200, batch 16), the same data stream and the same
        number of iterations; Set5/Set14/B100 PSNR/SSIM-Y of the EMA weights, params, FLOPs
        (1280x720 output, attention products included) and training wall time.
    python experiments/ups_experiments.py ablation [--what similarity|proj-dim|v-proj] [--iters N]
        the paper's ablations on ups (similarity function; projection dimension 8..256; value
        projection on/off) at the quick budget, Set5/Set14 (or --datasets) PSNR/SSIM-Y.
    python experiments/ups_experiments.py robustness --weights A.safetensors [B ...]
        Set14 x4 under the LR-side degradations of shared/docs/ups.md (JPEG 40, Gaussian blur
        sigma 1.0, Gaussian noise sigma 10/255), next to clean input, for any models
        (named with bundled weights, or checkpoints), plus bicubic.

Runs go to ``experiments/runs/<experiment>/<variant>`` (resumable: an existing finished run is
reused, an unfinished one continued), so an interrupted experiment picks up where it stopped.
``--iters`` sets the budget (default: the quick recipe's); ``--set key=value`` applies to every
run. Reference data: ``$LIGHTSR_SHARED`` (default ``../shared``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lightsr.evaluation.bench import count_complexity, input_size_for_output
from lightsr.evaluation.evaluate import evaluate, parse_degradations, resolve_dataset
from lightsr.inference.upscaler import load_model
from lightsr.training.config import load_config, override_keys
from lightsr.training.loop import export_weights, find_checkpoint, load_training_state, train

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "experiments" / "runs"
SETS = ("Set5", "Set14", "B100")


def _train(name: str, recipe: Path, overrides: list[str], out: Path) -> tuple[Path, float]:
    """Train (or finish, or reuse) one variant; returns (exported weights, wall seconds)."""
    run = out / name
    sets = [f"name={name}", f"output_dir={out}", *overrides]
    cfg = load_config(recipe, sets)
    done = False
    if (run / "checkpoints").is_dir():
        try:
            state = load_training_state(find_checkpoint(run))
            done = state["iteration"] >= cfg.train.iters
        except Exception:  # no checkpoint yet: start over
            state = None
        if not done:
            if state is None:
                raise SystemExit(f"error: {run} exists without a checkpoint; delete it to rerun")
            train(cfg, resume=run, accept=override_keys(sets))  # the command line's choices
    else:
        train(cfg)
    weights = export_weights(run, out / f"{name}.safetensors")
    state = load_training_state(find_checkpoint(run))
    return weights, float(state.get("train_seconds", 0.0))


def _measure(
    weights: Path, datasets: tuple[str, ...], scale: int
) -> tuple[int, float, dict[str, str]]:
    """(params, GFLOPs at a 1280x720 output, {dataset: "PSNR/SSIM"}) of exported weights."""
    model = load_model(weights, device="cpu", fast=False)
    c = count_complexity(model.model, input_size_for_output((1280, 720), model.scale))
    scores = {
        r.dataset: f"{r.psnr:.2f}/{r.ssim:.4f}"
        for r in evaluate(model.upscale, weights.stem, datasets, scale)
    }
    return c.params, c.flops / 1e9, scores


def equal_budget(args: argparse.Namespace) -> str:
    s = args.scale
    recipe = ROOT / "configs" / f"quick_ups_x{s}.yaml"
    extra = list(args.set) + ([f"train.iters={args.iters}"] if args.iters else [])
    if s != 2:
        extra.append("model.init=null")  # equal budget: every model from scratch
    variants = {
        "swinir-light": ["model.name=swinir-light"],
        "ups": ["model.name=ups"],
        "ups (per-layer projections)": ["model.name=ups", "model.args={shared_projection: false}"],
    }
    out = RUNS / f"equal_budget_x{s}"
    sets = tuple(args.datasets)
    names = [resolve_dataset(d)[0] for d in sets]
    rows = [
        "| model | params | FLOPs (G) | train time | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(sets),
    ]
    for label, variant in variants.items():
        key = label.split()[0] + ("_per_layer" if "per-layer" in label else "")
        weights, secs = _train(key, recipe, [*variant, *extra], out)
        params, gflops, sc = _measure(weights, sets, s)
        rows.append(
            f"| {label} | {params:,} | {gflops:.2f} | {secs / 60:.1f} min | "
            + " | ".join(sc[d] for d in names)
            + " |"
        )
    iters = load_config(recipe, extra).train.iters
    return (
        f"Equal budget, x{s}: {iters} iterations each, recipe {recipe.name}{_overrides(extra)}"
        "\n\n" + "\n".join(rows)
    )


def _overrides(extra: list[str]) -> str:
    """The --set values that changed the recipe, for the table's title."""
    shown = [e for e in extra if not e.startswith("train.iters=")]
    return f" with {' '.join(shown)}" if shown else ""


ABLATIONS = {
    "similarity": [
        f"model.args={{similarity: {v}}}"
        for v in ("cosine-relu", "cosine-softmax", "dot-relu", "dot-softmax")
    ],
    "proj-dim": [f"model.args={{proj_dim: {d}}}" for d in (8, 32, 64, 128, 256)],
    "v-proj": ["model.args={v_proj: false}", "model.args={v_proj: true}"],
}


def ablation(args: argparse.Namespace) -> str:
    recipe = ROOT / "configs" / "quick_ups_x2.yaml"
    extra = list(args.set) + ([f"train.iters={args.iters}"] if args.iters else [])
    out = RUNS / f"ablation_{args.what}"
    sets = tuple(args.datasets)
    names = [resolve_dataset(d)[0] for d in sets]
    rows = ["| setting | params | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(sets)]
    for override in ABLATIONS[args.what]:
        label = override.split("{", 1)[1].rstrip("}")
        key = label.replace(": ", "_").replace("-", "_")
        weights, _ = _train(key, recipe, ["model.name=ups", override, *extra], out)
        params, _, sc = _measure(weights, sets, 2)
        rows.append(f"| {label} | {params:,} | " + " | ".join(sc[d] for d in names) + " |")
    iters = load_config(recipe, extra).train.iters
    return (
        f"UPS ablation ({args.what}), x2: {iters} iterations each, recipe {recipe.name}"
        f"{_overrides(extra)}\n\n" + "\n".join(rows)
    )


def robustness(args: argparse.Namespace) -> str:
    levels = {
        "clean": [],
        "JPEG q40": ["jpeg:40"],
        "blur s1.0": ["blur:1.0"],
        "noise s10": ["noise:10"],
    }
    rows = ["| model | " + " | ".join(levels) + " |", "|---|" + "---|" * len(levels)]
    models: list[tuple[str, Any]] = [("bicubic", "bicubic-rgb")]
    for w in args.weights:
        up = load_model(w, scale=4, device="cpu")
        models.append((Path(w).name if Path(w).exists() else w, up.upscale))
    for label, fn in models:
        cells = []
        for specs in levels.values():
            (r,) = evaluate(fn, label, ["Set14"], 4, degradations=parse_degradations(specs))
            cells.append(f"{r.psnr:.2f}/{r.ssim:.4f}")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "Set14 x4, LR-side degradations (shared/docs/ups.md protocol)\n\n" + "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("equal-budget")
    e.add_argument("--scale", type=int, choices=(2, 3, 4), default=2)
    e.add_argument("--datasets", nargs="+", default=list(SETS), help="evaluation sets")
    a = sub.add_parser("ablation")
    a.add_argument("--what", choices=sorted(ABLATIONS), default="similarity")
    a.add_argument("--datasets", nargs="+", default=["Set5", "Set14"], help="evaluation sets")
    for q in (e, a):
        q.add_argument("--iters", type=int, help="iterations per run (default: the recipe's)")
        q.add_argument("--set", action="append", default=[], help="key=value for every run")
    r = sub.add_parser("robustness")
    r.add_argument("--weights", nargs="+", required=True, help="checkpoints or named models")
    args = p.parse_args(argv)
    text = {"equal-budget": equal_budget, "ablation": ablation, "robustness": robustness}[args.cmd](
        args
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
