"""Write the model card of lightsr's bundled models (docs/models.md) from measurements.

For each bundled ``models/weights/*.safetensors``: the training provenance stored in its metadata
by ``lightsr export-weights`` (recipe, iterations, batch, hardware, wall time), params/FLOPs/acts
counted the paper's way for a 1280x720 output, and PSNR/SSIM-Y on Set5, Set14 and B100 (the
papers' protocol, exactly what ``lightsr eval --model safmn-x4`` prints), next to the paper's
SAFMN numbers (Table 1, as printed) and the measured bicubic baseline.

    python benchmarks/model_card.py                 # writes docs/models.md, prints it
    python benchmarks/model_card.py --print-only    # prints, writes nothing

Reference data: ``$LIGHTSR_DATA`` or ``$LIGHTSR_SHARED/datasets`` or ``../shared/datasets``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import lightsr
from lightsr.evaluation.bench import count_complexity, input_size_for_output
from lightsr.evaluation.evaluate import evaluate
from lightsr.files import new_file_mode
from lightsr.models.checkpoint import read_state_dict
from lightsr.models.registry import MODELS, ModelSpec

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ("Set5", "Set14", "B100")

#: What a recipe file cannot say: how the bundled runs were actually stopped and resumed.
HISTORY = {
    "safmn-x2": "Four legs: iterations 1-1000 under a 5000-iteration cosine "
    "(train.iters=5000); 1001-3500 "
    "resumed from the iteration-1000 checkpoint with train.iters=3500 (bundled first at that "
    "point with Set5 36.838 dB; iterations 501-650 and 1001-1050 ran twice because of restarts, "
    "and the wall time counts them); in a later session 3501-5000 under train.iters=7000 (a warm "
    "restart, learning rate 4.9e-4 at 3550; Set5 37.011 dB at 5000), then, to end within the "
    "session, 5001-6000 under train.iters=6000, the recipe's value now. The bundled weights are "
    "the iteration-6000 EMA.",
    "safmn-x3": "Six legs: iterations 1-1000 under a 2700-iteration cosine; 1001-3500 under "
    "train.iters=4000 (stopped at 3500 for lack of session time; bundled first at that point "
    "with Set5 32.815 dB); in a later session warm restarts of the cosine, each resumed from the "
    "last checkpoint: 3501-5500 under train.iters=10000 (learning rate 3.6e-4 at 3550), "
    "5501-7000 under train.iters=10500, 7001-11500 under train.iters=11500 (Set5 33.284 dB, "
    "0.016 short of the issue's minimum) and 11501-13500 under train.iters=13500, the recipe's "
    "value now (3.5e-5 at 11550); 9501-13500 ran on 2 threads, after the x4 run stopped. "
    "model.init read the x2 run's best.pt as it was then (an EMA of at most 3500 iterations, "
    "Set5 <= 36.84 dB); rerunning the recipe now starts from the later x2 body. The bundled "
    "weights are the iteration-13500 EMA.",
    "safmn-x4": "Five legs: iterations 1-1000 under a 2700-iteration cosine; 1001-3500 under "
    "train.iters=4000 (stopped at 3500, learning rate 2.9e-5, for lack of session time; bundled "
    "first at that point with Set5 30.563 dB); 3501-9000 resumed in a later session with "
    "train.iters=9000, a warm restart (3.4e-4 at 3501; bundled at 9000 with Set5 30.911 dB); "
    "in a third session 9001-10000 under train.iters=13000 (1.1e-4 at 9050) and 10001-12000 "
    "under train.iters=14500, the recipe's value now, stopped at 12000 (learning rate 4.5e-5, "
    "Set5 31.004 dB) to give the x3 run both cores for the session's last half hour. "
    "model.init read the x2 run's best.pt as it was then (an EMA of at most 3500 iterations, "
    "Set5 <= 36.84 dB); rerunning the recipe now starts from the later x2 body. The bundled "
    "weights are the iteration-12000 EMA.",
    "ups-s-x4": "Two legs, from scratch (no x2 run precedes it): iterations 1-500 under "
    "train.iters=6000 (Set5 28.845 dB at 500; stopped there because the measured 0.76 it/s "
    "would not have ended 6000 within the session), then 501-5000 resumed from the "
    "iteration-500 checkpoint with train.iters=5000, the recipe's value (learning rate 3.885e-4 "
    "at 550 against 3.920e-4 under the first leg's schedule: the cosine is shortened, not "
    "restarted; it ends at 1e-5). The compiled graphs were built once per leg. The bundled weights "
    "are the iteration-5000 EMA.",
}

#: SAFMN, Table 1 of the paper (Sun et al., ICCV 2023), as printed: PSNR/SSIM-Y.
PAPER = {
    2: {"Set5": (38.00, 0.9605), "Set14": (33.54, 0.9177), "B100": (32.16, 0.8995)},
    3: {"Set5": (34.34, 0.9267), "Set14": (30.33, 0.8418), "B100": (29.08, 0.8048)},
    4: {"Set5": (32.18, 0.8948), "Set14": (28.60, 0.7813), "B100": (27.58, 0.7359)},
}

#: What the UPS-S card says instead of a paper row: the UPS paper's tables are not reachable
#: from here and its UPS-S sizes are unpublished (shared/docs/ups.md), so no paper number exists
#: for this model; the same-data comparison is the bundled SAFMN of the same scale.
NO_PAPER = (
    "No paper row: UPS-S's sizes are lightsr's (the paper does not publish them) and the UPS "
    "paper's tables are not available to us, so there is no published number for this model. "
    "The comparison that means something is the bundled SAFMN of the same scale, trained on the "
    "same 291 images by the same pipeline (the row above)."
)


def _architecture(spec: ModelSpec) -> str:
    """One phrase naming the architecture and its sizes, from the registry entry."""
    c = spec.config
    if spec.arch == "safmn":
        return f"SAFMN, dim {c['dim']}, {c['n_blocks']} blocks"
    name = spec.description.rsplit(", x", 1)[0]  # "UPS-S, lightsr's small UPS (sizes are ours)"
    proj = f", one shared projection of dim {c['proj_dim']}" if "proj_dim" in c else ""
    return (
        f"{name}, embed dim {c['embed_dim']}, depths {'/'.join(map(str, c['depths']))}, "
        f"{c['num_heads']} heads, window {c['window_size']}{proj}"
    )


def _loss(loss: dict) -> str:
    fft = loss.get("fft")
    return "L1" if not fft else f"L1 + {fft} FFT"


def _hardware(text: str | None) -> str:
    """The checkpoint's hardware line; runs before train.py's fix wrote "1 threads"."""
    return re.sub(r"\b1 threads\b", "1 thread", text) if text else "see below"


def _minutes(seconds: str | None) -> str:
    return f"{float(seconds) / 60:.0f} min" if seconds else "not recorded"


def _trained_for(meta: dict[str, str]) -> str:
    """``sr`` (bicubic SR), ``real`` (Real-ESRGAN degradations) or the restoration task, from
    the recipe that ``lightsr export-weights`` stored in the file's metadata."""
    data = json.loads(meta.get("recipe", "{}")).get("data", {})
    if data.get("degradation") == "high-order":
        return "real"
    return data.get("task", "sr")


def card(weights_dir: Path) -> str:
    shipped = [s for s in MODELS.values() if s.weights and (weights_dir / s.weights).is_file()]
    metas = {spec.name: read_state_dict(weights_dir / spec.weights)[1] for spec in shipped}
    kinds = {name: _trained_for(meta) for name, meta in metas.items()}
    bundled = sorted(
        (spec for spec in shipped if kinds[spec.name] == "sr"), key=lambda s: (s.arch, s.scale)
    )
    if not bundled:
        raise SystemExit(f"error: no bundled weights in {weights_dir}; train and export them first")
    lines = [
        "# Bundled models",
        "",
        "lightsr ships models that it trained itself with `lightsr train` on data it may "
        "use (T91 + BSD200, 291 images): SAFMN at x2, x3 and x4, the defaults of `lightsr "
        "upscale` (`safmn-x4`; `--scale 2|3|4` or `--model safmn-x2` pick the others), and "
        "lightsr's small UPS at x4 (`--model ups-s-x4`). The paper's own "
        "SAFMN models were trained on DF2K (3450 2K images) for 500k iterations of batch 64; "
        "ours saw a tiny fraction of that compute, so they are below the paper's numbers by the "
        "margins shown. Every number here was measured by `python benchmarks/model_card.py`, "
        "which wrote this file. The models for real photos and restoration are listed at the end "
        "with their own protocols; their full cards are docs/real_world.md and "
        "docs/restoration.md.",
        "",
        "PSNR/SSIM: Y channel of BT.601 YCbCr, `scale` pixels cropped from each border, LR made "
        "by MATLAB-exact bicubic downscaling, SR rounded to 8-bit RGB (`lightsr eval`). "
        "Bicubic: the papers' baseline protocol (`lightsr eval --model bicubic`). "
        "#FLOPs: multiply-adds for a 1280x720 output (fvcore convention, `lightsr bench`).",
        "",
    ]
    measured: dict[str, dict] = {}
    for spec in bundled:
        path = weights_dir / spec.weights
        meta = metas[spec.name]
        recipe = json.loads(meta.get("recipe", "{}"))
        model = lightsr.load_model(spec.name, device="cpu")
        cost = count_complexity(
            model.model, input_size_for_output((1280, 720), spec.scale), device="cpu"
        )
        t0 = time.perf_counter()
        ours = {r.dataset: r for r in evaluate(model.upscale, spec.name, DATASETS, spec.scale)}
        eval_s = time.perf_counter() - t0
        measured[spec.name] = ours
        bic = {r.dataset: r for r in evaluate("bicubic", "bicubic", DATASETS, spec.scale)}
        data = recipe.get("data", {})
        train = recipe.get("train", {})
        lines += [
            f"## `{spec.name}` (`{spec.weights}`, {path.stat().st_size / 1e6:.2f} MB)",
            "",
            f"- Architecture: {_architecture(spec)}, "
            f"x{spec.scale}; {cost.params:,} params, {cost.flops / 1e9:.2f}G FLOPs, "
            f"{cost.acts / 1e6:.2f}M activations (1280x720 output).",
            f"- Training: {meta.get('source', '?')}; data "
            f"{', '.join(Path(d).parent.name for d in data.get('hr_dirs', [])) or '?'} "
            f"(LR by MATLAB-exact bicubic on the fly), batch {data.get('batch_size', '?')} of "
            f"{data.get('patch_size', '?')}x{data.get('patch_size', '?')} LR patches, "
            f"{recipe.get('optim', {}).get('name', 'adam')} lr {recipe.get('optim', {}).get('lr')}"
            f" {recipe.get('schedule', {}).get('name', '')}, loss "
            f"{_loss(recipe.get('loss', {}))}, EMA {train.get('ema_decay')}, "
            f"{train.get('precision')}"
            + (
                f", initialised from `{recipe['model']['init']}`"
                if recipe.get("model", {}).get("init")
                else ""
            )
            + ".",
            f"- Hardware and wall time: {_hardware(meta.get('hardware'))}, "
            f"{_minutes(meta.get('train_seconds'))}; best Set5 validation "
            f"{meta.get('best_val_psnr', '?')} (EMA weights bundled: {meta.get('weights')}).",
            f"- History: {HISTORY[spec.name]}" if spec.name in HISTORY else "",
            "",
            "| | Set5 | Set14 | B100 |",
            "|---|---|---|---|",
            "| lightsr (bundled) | "
            + " | ".join(f"{ours[d].psnr:.2f}/{ours[d].ssim:.4f}" for d in DATASETS)
            + " |",
            *_comparison_rows(spec, ours, bic, measured),
            "",
            f"Set5 PSNR to 3 decimals (pinned by tests/test_bundled.py): "
            f"{ours['Set5'].psnr:.3f} dB. Evaluation of the three sets took {eval_s:.0f} s here.",
            "",
            "Reproduce:",
            "",
            "```bash",
            f"lightsr train configs/{recipe.get('name', '?')}.yaml   # see the recipe line above",
            f"lightsr export-weights runs/{recipe.get('name', '?')} -o {spec.weights}",
            f"lightsr eval --weights {spec.weights} --datasets Set5 Set14 B100",
            f"lightsr eval --model {spec.name} --datasets Set5 Set14 B100   # the bundled copy",
            "```",
            "",
        ]
    others = [spec for spec in shipped if kinds[spec.name] != "sr"]
    return "\n".join(lines + _other_models(others, metas, kinds))


#: Per kind of model: (task, the task's level, dataset, anchor, card, the eval command's flags).
OTHER_PROTOCOLS = {
    "real": (None, {}, "B100", "safmn-x4", "docs/real_world.md", "--degrade high-order:0"),
    "denoise": ("denoise", {"sigma": (25.0, 25.0)}, "CBSD68", "identity", "docs/restoration.md",
                "--task denoise --sigma 25"),
    "jpeg": ("jpeg", {"quality": (20, 20)}, "CBSD68", "identity", "docs/restoration.md",
             "--task jpeg --quality 20"),
    "depth": ("depth", {}, "Middlebury", "bicubic", "docs/restoration.md",
              "--task depth --scale 4"),
}  # fmt: skip


def _other_models(
    specs: list[ModelSpec], metas: dict[str, dict[str, str]], kinds: dict[str, str]
) -> list[str]:
    """One table for the bundled models that bicubic-SR benchmarks do not measure: each on its
    own protocol, beside the anchor a user would otherwise use, measured in the same run."""
    from lightsr.evaluation.evaluate import parse_degradations
    from lightsr.restoration.evaluate import evaluate_task
    from lightsr.restoration.tasks import TaskSpec

    lines = [
        "## Models for real photos and restoration",
        "",
        "| model | trained | params | FLOPs (1280x720 out) | protocol | model | anchor | card |",
        "|---|---|---:|---:|---|---|---|---|",
    ]
    for spec in specs:
        meta = metas[spec.name]
        task, level, dataset, anchor, doc, flags = OTHER_PROTOCOLS[kinds[spec.name]]
        model = lightsr.load_model(spec.name, device="cpu")
        cost = count_complexity(
            model.model, input_size_for_output((1280, 720), spec.scale), device="cpu"
        )
        if task is None:  # real-world SR: PSNR/SSIM-Y against the clean HR
            degrade = parse_degradations(["high-order:0"])
            base = lightsr.load_model(anchor, device="cpu")
            scores = [
                evaluate(fn, name, [dataset], spec.scale, degradations=degrade)[0]
                for fn, name in ((model.upscale, spec.name), (base.upscale, anchor))
            ]
            shown = [f"{r.psnr:.2f}/{r.ssim:.4f}" for r in scores]
        else:
            spec_task = TaskSpec(task, **level)
            scores = [
                evaluate_task(fn, name, [dataset], spec_task, scale=spec.scale)[0]
                for fn, name in ((model.upscale, spec.name), (anchor, anchor))
            ]
            shown = [f"RMSE {r.rmse:.3f}" if task == "depth" else f"{r.psnr:.2f}/{r.ssim:.4f}"
                     for r in scores]  # fmt: skip
        lines.append(
            f"| `{spec.name}` | {meta.get('iteration', '?')} its this run "
            f"({_minutes(meta.get('train_seconds'))}, {_hardware(meta.get('hardware'))}) | "
            f"{cost.params:,} | {cost.flops / 1e9:.2f}G | {dataset} `{flags}` | {shown[0]} | "
            f"{anchor} {shown[1]} | [{doc}]({doc.removeprefix('docs/')}) |"
        )
    lines += [
        "",
        '"Trained" is the last training run of the bundled file (its metadata); the cards give '
        "every run. Measured with `lightsr eval --model NAME` and the flags shown (PSNR/SSIM on "
        "Y for real-world SR, on RGB for restoration; depth: RMSE in disparity levels).",
        "",
    ]
    return lines


def _row(label: str, values: list[tuple[float, float]]) -> str:
    return f"| {label} | " + " | ".join(f"{p:.2f}/{s:.4f}" for p, s in values) + " |"


def _gap_row(label: str, ours: dict, reference: dict[str, float]) -> str:
    gaps = " | ".join(f"{ours[d].psnr - reference[d]:+.2f}" for d in DATASETS)
    return f"| {label} | {gaps} |"


def _comparison_rows(spec: ModelSpec, ours: dict, bic: dict, measured: dict) -> list[str]:
    """The rows under the bundled model's: the paper's (SAFMN) or the same-data SAFMN (others)."""
    bicubic = _row("bicubic", [(bic[d].psnr, bic[d].ssim) for d in DATASETS])
    if spec.arch == "safmn":
        paper = PAPER[spec.scale]
        return [
            _row("SAFMN paper (DF2K, 500k it)", [paper[d] for d in DATASETS]),
            bicubic,
            _gap_row("lightsr - paper (dB)", ours, {d: paper[d][0] for d in DATASETS}),
        ]
    safmn_name = f"safmn-x{spec.scale}"
    safmn = measured.get(safmn_name)
    rows = [bicubic]
    if safmn:
        rows = [
            _row(f"lightsr `{safmn_name}` (bundled, same data)",
                 [(safmn[d].psnr, safmn[d].ssim) for d in DATASETS]),
            bicubic,
            _gap_row(f"lightsr {spec.name.rsplit('-x', 1)[0]} - safmn (dB)", ours,
                     {d: safmn[d].psnr for d in DATASETS}),
        ]  # fmt: skip
    return [*rows, "", NO_PAPER]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--weights-dir", type=Path, default=ROOT / "src" / "lightsr" / "models" / "weights"
    )
    p.add_argument("--output", type=Path, default=ROOT / "docs" / "models.md")
    p.add_argument("--print-only", action="store_true")
    args = p.parse_args()
    text = card(args.weights_dir)
    print(text)
    if not args.print_only:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=args.output.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, new_file_mode())  # mkstemp makes 0600
        os.replace(tmp, args.output)
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
