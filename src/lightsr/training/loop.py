"""Training: :func:`train` runs :func:`setup`, then :func:`train_step`, :func:`validate` and
:func:`save_checkpoint` per iteration; small pure helpers around them.

The recipe is the SAFMN paper's (Sec. 4.1) and its official BasicSR configs: random LR patches
made on the fly with the MATLAB-exact bicubic (``training.data``), ``L1 + 0.05 * FFT`` loss
(``training.losses``), Adam with betas (0.9, 0.99), cosine annealing to ``min_lr``, and an EMA
of the weights (decay 0.999) that is validated, tracked and exported.
Real-world recipes may add a perceptual (VGG19) term, distillation from a frozen teacher and
Real-ESRGAN's adversarial training (``training.gan``: a U-Net discriminator with spectral
normalisation and its own Adam, updated once per step and saved in every checkpoint).

Run directory (``output_dir/name``)::

    config.yaml                 the resolved configuration
    checkpoints/iter_XXXXXXXX.pt  the last ``train.keep_last`` checkpoints
    checkpoints/best.pt         the state with the best validation PSNR (first dataset)
    metrics.jsonl               one JSON record per log interval and per validation
    tb/                         TensorBoard events (losses, lr, PSNR/SSIM, SR images)

Checkpoints hold the model, the EMA, the optimizer, the schedule position, the gradient scaler,
the RNG states of every rank and the data position (samples consumed); they are written to a
temporary file, flushed to disk and renamed (``os.replace``), so a killed process (even SIGKILL)
leaves either the previous checkpoint or the new one, never a partial file. They are read with
``torch.load(weights_only=True)``. Resuming (``resume=RUN_DIR``) continues exactly: on the CPU,
N steps + resume + M steps gives bit-identical weights to N + M steps (tested). The config given
on resume is compared key by key with the one stored in the checkpoint (:func:`check_resume`):
a value that differs is refused unless the caller names its key (``--set``).

The config arrives resolved (:func:`lightsr.training.config.load_config` expands every path
once); the loop reads its values as they are.

Distributed: under ``torchrun --nproc_per_node=N`` the loop runs DistributedDataParallel (gloo
on the CPU, NCCL on GPUs). ``data.batch_size`` is per process, the global batch is
``batch_size * N``; rank ``r`` trains on its slice of each global batch of the same data stream
a single process would see, so results equal single-process training with the global batch up
to float rounding (tested). Only rank 0 logs, validates and writes files.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from lightsr.errors import LightSRError
from lightsr.files import atomic_path
from lightsr.runtime import PRECISIONS, resolve_device
from lightsr.training.config import (
    UNSET,
    Config,
    ConfigError,
    ScheduleConfig,
    config_diff,
    config_from_dict,
    config_to_dict,
    dump_config,
    format_value,
)

__all__ = [
    "ResumeMismatchError",
    "TrainResult",
    "TrainingError",
    "build_training_model",
    "check_resume",
    "ema_decay_at",
    "ema_update",
    "export_weights",
    "find_checkpoint",
    "load_training_state",
    "lr_at",
    "save_atomic",
    "setup",
    "train",
]

CHECKPOINT_FORMAT = 1


class TrainingError(LightSRError):
    """Training stopped for a reason the user can act on (non-finite loss, bad run dir...)."""


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced.

    Attributes:
        run_dir: the run directory.
        iteration: the last completed iteration.
        best_psnr: best validation PSNR (first dataset), or None without validation.
        best_iteration: where it was reached.
        last_val: ``{dataset: {"psnr": .., "ssim": ..}}`` of the last validation.
        seconds: wall time of this invocation.
    """

    run_dir: Path
    iteration: int
    best_psnr: float | None = None
    best_iteration: int | None = None
    last_val: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------
# Pure helpers


def lr_at(it: int, base_lr: float, schedule: ScheduleConfig, total: int) -> float:
    """Learning rate of iteration ``it`` (1-based), as BasicSR's schedulers compute it.

    Warm-up: linear ``base_lr * it / warmup_iters``. Cosine (``CosineAnnealingRestartLR``):
    ``min_lr + w * (base_lr - min_lr) * (1 + cos(pi * t / period)) / 2`` with ``t`` counted from
    the start of the current period, so the last iteration of a period has ``min_lr``.
    Multistep: ``base_lr * gamma ** (milestones reached)``.
    """
    s = schedule
    if s.warmup_iters and it <= s.warmup_iters:
        return base_lr * it / s.warmup_iters
    if s.name == "constant":
        return base_lr
    if s.name == "multistep":
        return base_lr * s.gamma ** sum(m <= it for m in s.milestones)
    periods = s.periods or [total]
    weights = s.restart_weights or [1.0] * len(periods)
    k, start = 0, 0  # find the period that holds `it`
    while k < len(periods) - 1 and it > start + periods[k]:
        start += periods[k]
        k += 1
    period, weight = periods[k], weights[k]
    t = min(it - start, period) / period
    return s.min_lr + weight * 0.5 * (base_lr - s.min_lr) * (1.0 + math.cos(math.pi * t))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for parameters; buffers are copied."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


def ema_decay_at(it: int, decay: float, warmup: bool) -> float:
    """The EMA decay at iteration ``it``: ``decay``, or ``min(decay, (1 + it) / (10 + it))``."""
    return min(decay, (1 + it) / (10 + it)) if warmup else decay


def _capture_rng() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`lightsr.files.atomic_path` (temporary file, fsync, rename).

    Readers (and a crash at any moment) see the old file or the complete new one. Temporary
    files start with ``.`` and end in ``.tmp``.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def _periodic_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for p in ckpt_dir.glob("iter_*.pt"):
        try:
            found.append((int(p.stem.split("_", 1)[1]), p))
        except ValueError:
            continue
    return sorted(found)


def find_checkpoint(run_dir: str | os.PathLike[str], which: str = "latest") -> Path:
    """The checkpoint of a run: ``latest``, ``best``, or a file path (returned as is).

    Raises:
        TrainingError: no such run directory or checkpoint.
    """
    path = Path(run_dir)
    if path.is_file():
        return path
    ckpt_dir = path / "checkpoints"
    if not ckpt_dir.is_dir():
        raise TrainingError(f"{path}: not a run directory (no checkpoints/ folder)")
    if which == "best":
        best = ckpt_dir / "best.pt"
        if not best.is_file():
            raise TrainingError(f"{path}: no best.pt (the run has not validated yet)")
        return best
    if which != "latest":
        raise TrainingError(f"unknown checkpoint {which!r}; use latest, best or a file path")
    found = _periodic_checkpoints(ckpt_dir)
    if not found:
        raise TrainingError(f"{path}: no checkpoint yet in {ckpt_dir}")
    return found[-1][1]


def load_training_state(path: Path) -> dict[str, Any]:
    """Read a training checkpoint (``weights_only=True``: no code is executed).

    Raises:
        TrainingError: unreadable or not a lightsr training checkpoint.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"{path}: not a readable training checkpoint ({first})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path}: not a lightsr training checkpoint")
    return state


def build_training_model(cfg: Config) -> tuple[nn.Module, str, dict[str, Any]]:
    """The model of ``cfg.model`` with random weights; returns ``(model, arch, arch_config)``.

    Raises:
        ConfigError: unknown model name or constructor arguments (naming the key).
    """
    from lightsr.models.registry import build_arch, get_spec

    try:
        if cfg.data.task == "sr":
            spec = get_spec(cfg.model.name, cfg.model.scale)
        else:  # restoration / depth: the named size (a base name: its x4 entry) at model.scale
            spec = get_spec(cfg.model.name, None if "-x" in cfg.model.name else 4)
    except KeyError as exc:
        raise ConfigError(f"model.name: {exc.args[0]}") from exc
    arch_config = {**spec.config, **cfg.model.args}
    try:
        model = build_arch(spec.arch, scale=cfg.model.scale, **arch_config)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.args: {exc}") from exc
    return model, spec.arch, arch_config


def init_weights(model: nn.Module, source: str | os.PathLike[str], *, grow: bool = False) -> str:
    """Copy the tensors of ``source`` whose name and shape match into ``model`` (fine-tuning).

    ``source`` is a run directory (its best checkpoint, else its latest), a training checkpoint
    (the EMA weights are used, as the papers release them), a named model with bundled weights
    (``safmn-x4``) or a weights file that
    :func:`lightsr.models.checkpoint.read_state_dict` reads. With ``grow`` (``model.grow``) a
    SAFMN ``model`` deeper than the source gets the source's function with identity blocks
    inserted (:func:`lightsr.models.archs.safmn.grow_blocks`). Returns a one-line summary for
    the log.

    Raises:
        TrainingError: unreadable source, no tensor in common with the model, or a ``grow``
            that does not apply (not a SAFMN, block counts that are not multiples).
    """
    from lightsr.models.checkpoint import read_state_dict

    path = Path(source)
    if not path.exists() and not path.suffix:  # a named model with bundled weights: safmn-x4
        from lightsr.models.catalog import MODELS

        spec = MODELS.get(str(source).lower())
        if spec is not None and spec.weights:
            from lightsr.models.resolve import bundled_weights_path

            path = bundled_weights_path(spec.weights)
    if path.is_dir():
        try:
            path = find_checkpoint(path, "best")
        except TrainingError:
            path = find_checkpoint(path, "latest")
    if not path.exists():
        raise TrainingError(
            f"model.init: {path} does not exist; give a run directory, a "
            "training checkpoint or a weights file"
        )
    if path.suffix == ".pt":
        sd = load_training_state(path)["ema"]
    else:
        try:
            sd, _ = read_state_dict(path)
        except LightSRError as exc:
            raise TrainingError(f"model.init: {exc}") from exc
    own = model.state_dict()
    if grow:
        from lightsr.models.archs.safmn import SAFMN, grow_blocks

        if not isinstance(model, SAFMN):
            raise TrainingError(f"model.grow: only SAFMN models grow, not {type(model).__name__}")
        try:
            grown = grow_blocks(model, sd)
        except ValueError as exc:
            raise TrainingError(f"model.{exc} ({path})") from exc
        model.load_state_dict(grown)
        n_old = len({k.split(".")[1] for k in sd if k.startswith("feats.")})
        return (
            f"initialised from {path} grown from {n_old} to {len(model.feats)} blocks "
            "(the new blocks start as identities)"
        )
    copied = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    if not copied:
        raise TrainingError(f"model.init: {path} has no tensor in common with the model")
    skipped = sorted(k for k in own if k not in copied)
    model.load_state_dict(copied, strict=False)
    line = f"initialised {len(copied)}/{len(own)} tensors from {path}"
    if skipped:
        line += f"; kept random: {', '.join(skipped)}"
    return line


def _sr_function(
    model: nn.Module, device: torch.device, scale: int, keep: list[np.ndarray], n_keep: int
) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 RGB LR -> float SR in [0, 1], padded to the model's size multiple and cropped.

    The first ``n_keep`` outputs are also appended to ``keep`` as uint8 (for TensorBoard).
    """
    from lightsr.inference.tiling import pad_to_multiple
    from lightsr.models.registry import size_multiple

    multiple = size_multiple(model)

    @torch.no_grad()
    def fn(lr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)))[None]
        x = x.to(device, torch.float32) / 255.0
        h, w = x.shape[-2:]
        y = model(pad_to_multiple(x, multiple))[0, :, : h * scale, : w * scale]
        sr = y.clamp(0.0, 1.0).permute(1, 2, 0).cpu().numpy()
        if len(keep) < n_keep:
            keep.append((sr * 255.0 + 0.5).astype(np.uint8))
        return sr

    return fn


def _reraise_loader_error(exc: Exception) -> NoReturn:
    """DataLoader workers wrap errors in a traceback; give a LightSRError its one line back."""
    msg = str(exc)
    if isinstance(exc, LightSRError) and "Traceback" in msg:
        last = msg.strip().splitlines()[-1]
        raise type(exc)(last.split(": ", 1)[1] if ": " in last else last) from None
    raise exc


def _device(cfg: Config, local_rank: int) -> torch.device:
    try:
        return resolve_device(cfg.train.device, what="train.device", local_rank=local_rank)
    except LightSRError as exc:
        raise ConfigError(str(exc)) from None


class _Writer:
    """Rank 0's files: metrics.jsonl and TensorBoard events (no-ops on other ranks)."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.tb = None
        self.metrics = None
        if not enabled:
            return
        self.metrics = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise TrainingError(
                    "TensorBoard logging needs the tensorboard package: pip install tensorboard "
                    "(or pip install 'lightsr[train]'), or set train.tensorboard=false"
                ) from exc
            self.tb = SummaryWriter(str(run_dir / "tb"))

    def record(self, it: int, rec: dict[str, Any]) -> None:
        if self.metrics is None:
            return
        self.metrics.write(json.dumps({"iter": it, **rec}) + "\n")
        self.metrics.flush()
        if self.tb is not None:
            for key, value in _flatten(rec).items():
                self.tb.add_scalar(key, value, it)

    def images(self, it: int, images: list[np.ndarray], dataset: str) -> None:
        if self.tb is not None:
            for i, img in enumerate(images):
                self.tb.add_image(f"val_{dataset}/{i}", img, it, dataformats="HWC")

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        if self.tb is not None:
            self.tb.close()


class _Progress:
    """Rank 0's console: a live bar with it/s and ETA on a terminal; plain lines otherwise."""

    def __init__(self, total: int, *, start: int, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        if enabled and sys.stdout.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
            )
            self.task = self.bar.add_task("", total=total, completed=start, rate="")
            self.bar.start()
        self.t_last = time.perf_counter()
        self.rate = 0.0

    def say(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.console.print(line, highlight=False, markup=False)
        else:
            print(line, flush=True)

    def step(self, it: int) -> None:
        if self.bar is None:
            return
        now = time.perf_counter()
        dt, self.t_last = now - self.t_last, now
        self.rate = 1 / dt if self.rate == 0 else 0.9 * self.rate + 0.1 / max(dt, 1e-9)
        self.bar.update(self.task, completed=it, rate=f"{self.rate:.2f} it/s")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _flatten(rec: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in rec.items():
        key = f"{prefix}/{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = float(v)
    return out


def _hardware(device: torch.device, world: int) -> str:
    """``"2 x AMD EPYC (AVX2), 2 threads"`` / ``"4 x NVIDIA H100"``: where a run trained."""
    from lightsr.runtime import cpu_name

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        cap = torch.backends.cpu.get_cpu_capability()
        n = torch.get_num_threads()
        name = f"{cpu_name()} ({cap}), {n} thread{'' if n == 1 else 's'}"
    return f"{world} x {name}" if world > 1 else name


def _fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}"


# --------------------------------------------------------------------------------------------
# Resume check


class ResumeMismatchError(ConfigError):
    """``--resume`` with a recipe whose values differ from the checkpoint's stored config in
    keys that the ``--set`` overrides do not name."""


def check_resume(
    state: dict[str, Any], cfg: Config, accept: Collection[str], checkpoint: Path
) -> dict[str, tuple[Any, Any]]:
    """Compare ``cfg`` with the config stored in a checkpoint, key by key (resolved values).

    Every differing key must be named in ``accept`` (the ``--set`` keys; a section such as
    ``optim`` names all of its keys); keys named without a change are fine. Returns the
    accepted changes ``{key: (stored, new)}``.

    Raises:
        ResumeMismatchError: a differing key that ``accept`` does not name; the one-line
            message lists every differing key as ``key: stored -> new``.
        TrainingError: the stored config cannot be read back.
    """
    try:
        stored = config_from_dict(state["config"])
    except (ConfigError, KeyError) as exc:
        raise TrainingError(f"{checkpoint}: its stored config cannot be read ({exc})") from None
    changes = config_diff(stored, cfg)
    if all(any(k == a or k.startswith(a + ".") for a in accept) for k in changes):
        return changes
    new = config_to_dict(cfg)
    examples: dict[str, str] = {}
    for key, (_, value) in changes.items():
        while value is UNSET:  # a model.args key dropped: name the section that holds it
            key = key.rsplit(".", 1)[0]
            value = _lookup(new, key)
        examples.setdefault(key, f"--set {key}={format_value(value)}")
    flags = [f for k, f in examples.items() if not any(k.startswith(sec + ".") for sec in examples)]
    raise ResumeMismatchError(
        f"{checkpoint.parent.parent}: the recipe differs from the config stored in "
        f"{checkpoint.name}: {describe_changes(changes)}; pass --set key=value for each to "
        f"accept the change ({' '.join(flags)})"
    )


def describe_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    """``optim.lr: 0.001 -> 0.002; train.iters: 6 -> 9`` (stored -> new)."""
    return "; ".join(
        f"{k}: {format_value(a)} -> {format_value(b)}" for k, (a, b) in changes.items()
    )


def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node.get(part, UNSET) if isinstance(node, dict) else UNSET
    return node


# --------------------------------------------------------------------------------------------
# The loop: setup, step, validate, checkpoint


_BASE = ("total", "l1", "fft")  # the statistics every run records (l1, fft even when off)


@dataclass
class _Run:
    """Everything a run holds between iterations (built by :func:`setup`)."""

    cfg: Config
    run_dir: Path
    device: torch.device
    rank: int
    world: int
    out: _Writer
    progress: _Progress
    raw: nn.Module  # the model's own parameters (saved, EMA-tracked)
    model: nn.Module  # what the step calls: raw, or its DDP / compiled wrapper
    ema: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    arch: str
    arch_config: dict[str, Any]
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]]
    loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
    autocast: AbstractContextManager[Any]
    t_start: float
    prior_seconds: float = 0.0
    hardware: str = ""
    start_iter: int = 0
    best_psnr: float | None = None
    best_iter: int | None = None
    last_ckpt: Path | None = None
    last_val: dict[str, dict[str, float]] = field(default_factory=dict)
    # the logged statistics, in the order of train_step's stats (more with the optional terms)
    stat_names: tuple[str, ...] = _BASE
    disc: nn.Module | None = None  # the GAN discriminator's own parameters (saved)
    disc_train: nn.Module | None = None  # what the discriminator step calls: disc or its DDP
    d_optimizer: torch.optim.Optimizer | None = None
    perceptual: nn.Module | None = None  # loss.perceptual's frozen VGG19
    teacher: Callable[[torch.Tensor], torch.Tensor] | None = None  # loss.distill's, frozen

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def global_batch(self) -> int:
        return self.cfg.data.batch_size * self.world

    def close(self) -> None:
        self.progress.stop()
        self.out.close()
        _end_processes(self.world)


@dataclass
class _Window:
    """Loss sums and timing since the last log line (``paused``: validation + checkpoints)."""

    t0: float = field(default_factory=time.perf_counter)
    n: int = 0
    paused: float = 0.0
    sums: torch.Tensor = field(default_factory=lambda: torch.zeros(3, dtype=torch.float64))


def _start_processes(cfg: Config) -> tuple[torch.device, int, int]:
    """``(device, rank, world size)``; joins the process group under torchrun, sets threads."""
    from lightsr.runtime import configure_threads

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = _device(cfg, int(os.environ.get("LOCAL_RANK", "0")))
    if cfg.train.precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision: fp16 needs a CUDA GPU; use bf16 on the CPU")
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # other ranks wait in their next all-reduce while rank 0 validates: allow long validations
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=2))
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    elif device.type == "cpu":
        configure_threads()
    return device, rank, world


def _end_processes(world: int) -> None:
    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def _open_run_dir(
    cfg: Config, resume: str | os.PathLike[str] | None, main: bool, accept: Collection[str]
) -> tuple[Path, dict[str, Any] | None, dict[str, tuple[Any, Any]]]:
    """``(run_dir, checkpoint state or None, accepted changes)``; rank 0 writes config.yaml.

    Nothing is written when the run directory is refused (a fresh run over checkpoints, or a
    resume whose recipe differs from the checkpoint's).
    """
    run_dir = Path(resume) if resume is not None else Path(cfg.output_dir) / cfg.name
    ckpt_dir = run_dir / "checkpoints"
    state: dict[str, Any] | None = None
    changes: dict[str, tuple[Any, Any]] = {}
    if resume is not None:
        path = find_checkpoint(run_dir)
        state = load_training_state(path)
        changes = check_resume(state, cfg, accept, path)
    elif _periodic_checkpoints(ckpt_dir):
        raise TrainingError(
            f"{run_dir} already holds checkpoints: continue it with --resume {run_dir}, or "
            "start another run with --set name=NEW_NAME"
        )
    if main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for tmp in ckpt_dir.glob(".*.tmp"):  # left by a killed process; never a checkpoint
            tmp.unlink(missing_ok=True)
        with atomic_path(run_dir / "config.yaml") as tmp:  # a kill never leaves half a recipe
            tmp.write_text(dump_config(cfg), encoding="utf-8")
    return run_dir, state, changes


def _build_model(
    cfg: Config, device: torch.device, state: dict[str, Any] | None, say: Callable[[str], None]
) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.amp.GradScaler, str, dict]:
    """``(model, ema, optimizer, scaler, arch, arch_config)``, restored from ``state`` if any
    (the RNGs are restored by the caller)."""
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    raw, arch, arch_config = build_training_model(cfg)
    from lightsr.models.registry import size_multiple

    multiple = size_multiple(raw)
    if cfg.data.patch_size % multiple:
        raise ConfigError(
            f"data.patch_size: {cfg.data.patch_size} is not a multiple of {multiple}, "
            f"which {arch} needs"
        )
    if cfg.model.init and state is None:
        say(init_weights(raw, cfg.model.init, grow=cfg.model.grow))
    raw.to(device)
    ema = copy.deepcopy(raw).eval().requires_grad_(False)
    raw = _native_training(cfg, raw, device)
    if cfg.train.channels_last:
        raw.to(memory_format=torch.channels_last)
    o = cfg.optim
    opt_cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    optimizer = opt_cls(
        raw.parameters(), lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay
    )
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.precision == "fp16")
    if state is not None:
        raw.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
    return raw, ema, optimizer, scaler, arch, arch_config


def _native_training(cfg: Config, raw: nn.Module, device: torch.device) -> nn.Module:
    """``raw`` on the native SAFMN training kernels where ``train.native`` and the run allow
    (see :class:`~lightsr.training.config.TrainConfig`); the EMA copy stays plain."""
    t = cfg.train
    if t.native == "off":
        return raw
    from lightsr.native.train_ops import training_unavailable_reason

    reason = training_unavailable_reason()
    if device.type != "cpu" or t.precision != "fp32":
        reason = reason or f"train.precision is {t.precision} on {device.type} (fp32 on CPU only)"
    if reason is not None:
        if t.native == "on":
            raise ConfigError(f"train.native: on, but the native kernels cannot run: {reason}; "
                              "use --set train.native=auto or off")  # fmt: skip
        return raw
    from lightsr.native.train_ops import native_training_model

    return native_training_model(raw)


def uses_native_kernels(model: nn.Module) -> bool:
    """Whether :func:`~lightsr.native.train_ops.native_training_model` swapped modules in."""
    return any(type(m).__module__ == "lightsr.native.train_ops" for m in model.modules())


def _build_data(
    cfg: Config, rank: int, world: int, device: torch.device, position: int, say: Callable
) -> tuple[Iterator[tuple[torch.Tensor, torch.Tensor]], int]:
    """``(endless batch iterator from stream position, number of training images)``."""
    from lightsr.training.data import PatchDataset, StreamSampler, make_loader, scan_images

    d = cfg.data
    scale = cfg.model.scale
    if d.task == "depth" and not d.hr_dirs:  # generated depth maps (lightsr.restoration)
        from lightsr.training.data import synthetic_records

        records = synthetic_records(d.synthetic_maps, d.synthetic_size)
    else:
        records = scan_images(
            d.hr_dirs,
            d.lr_dirs,
            scale=scale,
            patch_size=d.patch_size,
            skip_corrupt=d.skip_corrupt,
            log=say,
        )
    dataset = PatchDataset(
        records,
        scale=scale,
        patch_size=d.patch_size,
        flip=d.flip,
        rotate=d.rotate,
        seed=cfg.seed,
        cache=d.cache,
        skip_corrupt=d.skip_corrupt,
        log=say,
        degradation=d.degradation,
        degrade=d.degrade,
        usm_target=d.usm_target,
        task=task_spec(cfg),
    )
    sampler = StreamSampler(
        len(dataset),
        batch_size=d.batch_size,
        seed=cfg.seed,
        rank=rank,
        world_size=world,
        start=position,
    )
    loader = make_loader(dataset, sampler, workers=d.workers, pin_memory=device.type == "cuda")
    return iter(loader), len(records)


def _build_extras(run: _Run, state: dict[str, Any] | None, say: Callable[[str], None]) -> None:
    """The optional terms of real-world recipes: the perceptual loss's VGG, the distillation
    teacher, and the GAN discriminator with its optimizer (restored from ``state``); sets the
    statistics the step returns (:attr:`_Run.stat_names`)."""
    cfg, device, lo, g = run.cfg, run.device, run.cfg.loss, run.cfg.gan
    names = [*_BASE, *(["l2"] if lo.l2 > 0 else [])]
    if lo.perceptual > 0 and lo.perceptual_weights:
        from lightsr.training.losses import load_perceptual

        try:
            run.perceptual = load_perceptual(lo.perceptual_weights).to(device)
        except LightSRError as exc:
            raise ConfigError(str(exc)) from None
        names.append("perceptual")
    if lo.distill > 0 and lo.distill_teacher:
        run.teacher = _load_teacher(cfg, device)
        names.append("distill")
    if g.weight > 0:
        from lightsr.training.gan import UNetDiscriminatorSN

        with torch.random.fork_rng(devices=[]):  # the model's RNG stream stays as without GAN
            torch.manual_seed(cfg.seed)
            disc = UNetDiscriminatorSN(num_feat=g.d_num_feat).to(device)
        if cfg.train.channels_last:
            disc.to(memory_format=torch.channels_last)
        run.d_optimizer = torch.optim.Adam(disc.parameters(), lr=g.d_lr, betas=g.d_betas)
        if state is not None and "disc" in state:
            disc.load_state_dict(state["disc"])
            run.d_optimizer.load_state_dict(state["d_optimizer"])
        elif state is not None:
            say("the checkpoint holds no discriminator (gan.weight was 0): starting a new one")
        run.disc = disc
        run.disc_train = disc
        if run.world > 1:
            ids = [device.index] if device.type == "cuda" else None
            run.disc_train = nn.parallel.DistributedDataParallel(disc, device_ids=ids)
        names += ["g_gan", "d_loss", "d_real", "d_fake"]
    run.stat_names = tuple(names)


def _load_teacher(cfg: Config, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """``loss.distill_teacher`` as a frozen function LR -> SR (padded to its size multiple)."""
    from lightsr.inference.tiling import pad_to_multiple
    from lightsr.models.registry import size_multiple
    from lightsr.models.resolve import resolve_model

    try:
        teacher = resolve_model(cfg.loss.distill_teacher, scale=cfg.model.scale).model
    except LightSRError as exc:
        raise ConfigError(f"loss.distill_teacher: {exc}") from None
    teacher = teacher.to(device).eval().requires_grad_(False)
    multiple, scale = size_multiple(teacher), cfg.model.scale

    @torch.no_grad()
    def fn(lr: torch.Tensor) -> torch.Tensor:
        h, w = lr.shape[-2:]
        return teacher(pad_to_multiple(lr.float(), multiple))[..., : h * scale, : w * scale]

    return fn


def _extra_losses(
    run: _Run, lr_img: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor, parts: dict
) -> torch.Tensor:
    """The weighted sum of the perceptual, distillation and generator-adversarial terms that
    are on; their unweighted values are added to ``parts`` (detached)."""
    cfg = run.cfg
    total = sr.new_zeros((), dtype=torch.float32)
    if run.perceptual is not None:
        with run.autocast:
            term = run.perceptual(sr, hr)
        parts["perceptual"] = term.detach()
        total = total + cfg.loss.perceptual * term
    if run.teacher is not None:
        from lightsr.training.losses import distill_loss

        with run.autocast:
            target = run.teacher(lr_img)
        term = distill_loss(sr, target)
        parts["distill"] = term.detach()
        total = total + cfg.loss.distill * term
    if run.disc is not None:
        from lightsr.training.gan import generator_loss

        run.disc.requires_grad_(False)  # gradients flow to the SR image only
        with run.autocast:
            fake = run.disc(_disc_input(run, sr))
        term = generator_loss(fake, cfg.gan.type)
        parts["g_gan"] = term.detach()
        total = total + cfg.gan.weight * term
    return total


def _disc_input(run: _Run, x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    return x.contiguous(memory_format=torch.channels_last) if run.cfg.train.channels_last else x


def _disc_loss(run: _Run, sr: torch.Tensor, hr: torch.Tensor, parts: dict) -> torch.Tensor:
    """The discriminator's loss on real = HR (the training target: USM-sharpened with
    ``data.usm_target``) and fake = the detached SR, in one batch; logs its mean logits."""
    from lightsr.training.gan import discriminator_loss

    assert run.disc is not None and run.disc_train is not None
    run.disc.requires_grad_(True)
    b = sr.shape[0]
    with run.autocast:
        logits = run.disc_train(_disc_input(run, torch.cat([hr.float(), sr.detach().float()])))
    real, fake = logits[:b].float(), logits[b:].float()
    term = discriminator_loss(real, fake, run.cfg.gan.type)
    parts.update(d_loss=term.detach(), d_real=real.mean().detach(), d_fake=fake.mean().detach())
    return term


def _gan_state(run: _Run) -> dict[str, Any]:
    """The discriminator and its optimizer for a checkpoint (nothing without GAN)."""
    if run.disc is None or run.d_optimizer is None:
        return {}
    return {"disc": run.disc.state_dict(), "d_optimizer": run.d_optimizer.state_dict()}


def task_spec(cfg: Config) -> Any:
    """The :class:`lightsr.restoration.tasks.TaskSpec` of ``cfg.data`` (its task and ranges)."""
    from lightsr.restoration.tasks import TaskSpec

    d = cfg.data
    return TaskSpec(d.task, sigma=tuple(d.noise_sigma), quality=tuple(d.jpeg_quality))


def _validate_task(run: _Run, kept: list[np.ndarray]) -> list[Any]:
    """Validation of a restoration or depth run: :func:`lightsr.restoration.evaluate.
    evaluate_task` at the task's validation level, on the EMA weights."""
    from lightsr.restoration.evaluate import evaluate_task, network_function

    v = run.cfg.val
    fn = network_function(run.ema, run.device, run.cfg.model.scale, kept, v.images)
    task, scale = task_spec(run.cfg).for_validation(), run.cfg.model.scale
    return evaluate_task(
        fn,
        run.cfg.name,
        v.datasets,
        task,
        scale=scale,
        data_root=Path(v.data_root) if v.data_root else None,
    )


def setup(
    cfg: Config,
    *,
    resume: str | os.PathLike[str] | None = None,
    quiet: bool = False,
    accept: Collection[str] = (),
) -> _Run:
    """Processes, run directory (with the resume check), model, EMA, optimizer and data."""
    from lightsr.training.losses import sr_loss

    t_start = time.perf_counter()
    t = cfg.train
    device, rank, world = _start_processes(cfg)
    run_dir, state, changes = _open_run_dir(cfg, resume, rank == 0, accept)
    out = _Writer(run_dir, rank == 0, t.tensorboard and rank == 0)
    first = state["iteration"] if state is not None else 0
    progress = _Progress(t.iters, start=first, enabled=rank == 0 and not quiet)
    say = progress.say
    try:
        raw, ema, optimizer, scaler, arch, arch_config = _build_model(cfg, device, state, say)
        run = _Run(
            cfg=cfg, run_dir=run_dir, device=device, rank=rank, world=world, out=out,
            progress=progress, raw=raw, model=raw, ema=ema, optimizer=optimizer, scaler=scaler,
            arch=arch, arch_config=arch_config, batches=iter(()), loss_fn=sr_loss,
            autocast=nullcontext(), t_start=t_start,
        )  # fmt: skip
        _build_extras(run, state, say)
        if state is not None:
            rngs = state["rng"]
            _restore_rng(rngs[rank] if len(rngs) == world else rngs[0])
            run.start_iter = state["iteration"]
            run.best_psnr, run.best_iter = state["best"]["psnr"], state["best"]["iteration"]
        if world > 1:
            ids = [device.index] if device.type == "cuda" else None
            run.model = nn.parallel.DistributedDataParallel(raw, device_ids=ids)
        if t.compile and not uses_native_kernels(raw):
            run.model = torch.compile(run.model)
        position = state["data"]["position"] if state is not None else 0
        run.batches, n_images = _build_data(cfg, rank, world, device, position, say)
        _say_start(run, n_images, resumed=state is not None)
        if changes:
            say(f"changed on resume (named by --set): {describe_changes(changes)}")
        if t.precision != "fp32":
            run.autocast = torch.autocast(device.type, dtype=PRECISIONS[t.precision])
        run.last_ckpt = find_checkpoint(run_dir) if state is not None else None
        run.prior_seconds = float(state.get("train_seconds", 0.0)) if state is not None else 0.0
        run.hardware = _hardware(device, world)
        return run
    except BaseException:
        progress.stop()
        out.close()
        _end_processes(world)
        raise


def _speed_path(run: _Run) -> str:
    """``, native kernels`` / ``, compiled`` / nothing, for the start line."""
    if uses_native_kernels(run.raw):
        return ", native kernels" + (" (not compiled)" if run.cfg.train.compile else "")
    return ", compiled" if run.cfg.train.compile else ""


def _say_start(run: _Run, n_images: int, *, resumed: bool) -> None:
    cfg, t, d, world = run.cfg, run.cfg.train, run.cfg.data, run.world
    run.progress.say(
        f"{'resuming' if resumed else 'training'} {cfg.name}: {run.arch} x{cfg.model.scale} "
        f"({sum(p.numel() for p in run.raw.parameters()):,} params) on {run.device}"
        f"{f' x {world} processes' if world > 1 else ''}, {t.precision}"
        f"{', channels_last' if t.channels_last else ''}{_speed_path(run)}; "
        f"{n_images} training images, batch {d.batch_size}"
        f"{f' per process ({run.global_batch} global)' if world > 1 else ''} of "
        f"{d.patch_size}x{d.patch_size} LR patches; iterations {run.start_iter + 1}..{t.iters}; "
        f"run dir {run.run_dir}"
    )
    if t.precision == "bf16" and run.device.type == "cpu":
        from lightsr.runtime import cpu_supports_bf16

        if not cpu_supports_bf16():
            run.progress.say(
                "warning: train.precision=bf16 on a CPU without native bfloat16 (no "
                "AVX512-BF16 or AMX): it is emulated, about 8x slower than fp32 on an AVX2 "
                "machine; use --set train.precision=fp32"
            )


def train_step(run: _Run, it: int) -> tuple[float, torch.Tensor]:
    """One optimizer step (iteration ``it``); returns ``(lr, stats as float64)``, the losses
    averaged over ranks in the order of ``run.stat_names`` (``total, l1, fft``, then the
    optional terms, ``l2`` first). With ``gan.weight`` the discriminator is updated after the
    model, on the same HR patches and this step's SR (detached).

    Raises:
        TrainingError: a non-finite loss (before the update).
    """
    cfg, device = run.cfg, run.device
    lr = lr_at(it, cfg.optim.lr, cfg.schedule, cfg.train.iters)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    try:
        lr_img, hr_img = next(run.batches)
    except LightSRError as exc:
        _reraise_loader_error(exc)
    lr_img = lr_img.to(device, non_blocking=True)
    hr_img = hr_img.to(device, non_blocking=True)
    if cfg.train.channels_last:
        lr_img = lr_img.contiguous(memory_format=torch.channels_last)
    with run.autocast:
        sr = run.model(lr_img)
    lo = cfg.loss
    loss, parts = run.loss_fn(sr, hr_img, l1=lo.l1, fft=lo.fft, l2=lo.l2)
    if run.perceptual is not None or run.teacher is not None or run.disc is not None:
        loss = loss + _extra_losses(run, lr_img, sr, hr_img, parts)
    d_loss = _disc_loss(run, sr, hr_img, parts) if run.disc is not None else None
    zero = loss.new_zeros(())
    stats = torch.stack([loss.detach(), *(parts.get(k, zero) for k in run.stat_names[1:])])
    stats = stats.double()
    if run.world > 1:  # the mean over ranks: every rank sees the same value and stops alike
        stats = stats.to(device)
        dist.all_reduce(stats)
        stats = stats.cpu() / run.world
    for i in (0, *(i for i, k in enumerate(run.stat_names) if k == "d_loss")):
        if not math.isfinite(float(stats[i])):
            where = f"; the last good checkpoint is {run.last_ckpt}" if run.last_ckpt else ""
            what = "loss" if i == 0 else "discriminator loss"
            raise TrainingError(
                f"non-finite {what} ({float(stats[i])}) at iteration {it}: training stopped "
                f"before the update{where} (resume with --resume {run.run_dir}; try a lower "
                "optim.lr, optim.grad_clip or train.precision=fp32)"
            )
    run.scaler.scale(loss).backward()
    if cfg.optim.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.raw.parameters(), cfg.optim.grad_clip)
    run.scaler.step(run.optimizer)
    if d_loss is not None and run.d_optimizer is not None:  # fake = this step's SR, detached
        for group in run.d_optimizer.param_groups:
            group["lr"] = cfg.gan.d_lr * lr / cfg.optim.lr  # the same schedule as the model
        run.scaler.scale(d_loss).backward()
        run.scaler.step(run.d_optimizer)
        run.d_optimizer.zero_grad(set_to_none=True)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    ema_update(run.ema, run.raw, ema_decay_at(it, cfg.train.ema_decay, cfg.train.ema_warmup))
    return lr, stats


def _log(run: _Run, it: int, lr: float, window: _Window) -> None:
    """Record and print the mean losses, lr and speed of the window, then reset it."""
    iters = run.cfg.train.iters
    now = time.perf_counter()
    speed = window.n / max(now - window.t0 - window.paused, 1e-9)
    mean = dict(zip(run.stat_names, (window.sums / window.n).tolist(), strict=True))
    gan = {k: mean.pop(k) for k in ("d_loss", "d_real", "d_fake") if k in mean}
    rec = {
        "loss": mean,
        **({"gan": gan} if gan else {}),
        "lr": lr,
        "speed": {"it_s": speed, "samples_s": speed * run.global_batch},
    }
    run.out.record(it, rec)
    lo = run.cfg.loss
    digits = {"l1": 5, "l2": 6}
    # the terms that are on (l1 and fft are recorded even when off)
    shown = [k for k in ("l1", "fft") if getattr(lo, k)] + [k for k in mean if k not in _BASE]
    parts = " ".join(f"{k} {mean[k]:.{digits.get(k, 4)}f}" for k in shown)
    if gan:
        parts += f"; d {gan['d_loss']:.4f} real {gan['d_real']:+.2f} fake {gan['d_fake']:+.2f}"
    run.progress.say(
        f"iter {it:>7d}/{iters}  loss {mean['total']:.5f} ({parts})  lr {lr:.3e}  "
        f"{speed:.2f} it/s  eta {_fmt_time((iters - it) / speed)}"
    )
    window.t0, window.n, window.paused = now, 0, 0.0
    window.sums.zero_()


def validate(run: _Run, it: int, lr: float) -> None:
    """Rank 0: PSNR/SSIM of the EMA weights; a new best is saved as ``best.pt``."""
    from lightsr.evaluation.evaluate import evaluate

    v, scale = run.cfg.val, run.cfg.model.scale
    kept: list[np.ndarray] = []
    t_val = time.perf_counter()
    if run.cfg.data.task != "sr":  # restoration and depth: the task's protocol
        results: list[Any] = _validate_task(run, kept)
    else:
        fn = _sr_function(run.ema, run.device, scale, kept, v.images)
        results = evaluate(
            fn,
            run.cfg.name,
            v.datasets,
            scale,
            data_root=Path(v.data_root) if v.data_root else None,
            lr_dir=Path(v.lr_dir) if v.lr_dir else None,
        )
    run.last_val = {r.dataset: {"psnr": r.psnr, "ssim": r.ssim} for r in results}
    improved = run.best_psnr is None or results[0].psnr > run.best_psnr
    if improved:
        run.best_psnr, run.best_iter = results[0].psnr, it
    run.out.record(it, {"val": run.last_val})
    run.out.images(it, kept, results[0].dataset)
    run.progress.say(
        f"val  {it:>7d}  "
        + "  ".join(f"{r.dataset} {r.psnr:.3f} dB / {r.ssim:.4f}" for r in results)
        + f"  (EMA, {time.perf_counter() - t_val:.1f} s)"
        + ("  best" if improved else f"  best {run.best_psnr:.3f} @ {run.best_iter}")
    )
    if improved:  # full state: best.pt can be resumed or exported like any other
        save_atomic(_snapshot(run, it, lr, [_capture_rng()]), run.ckpt_dir / "best.pt")


def _snapshot(run: _Run, it: int, lr: float, rngs: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything needed to continue exactly after iteration ``it``."""
    return {
        "format": CHECKPOINT_FORMAT,
        "iteration": it,
        "config": config_to_dict(run.cfg),
        "arch": run.arch,
        "arch_config": run.arch_config,
        "scale": run.cfg.model.scale,
        "model": run.raw.state_dict(),
        "ema": run.ema.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": {"name": run.cfg.schedule.name, "iteration": it, "lr": lr},
        "scaler": run.scaler.state_dict(),
        **_gan_state(run),
        "rng": rngs,  # one per rank
        "data": {"position": it * run.global_batch, "global_batch": run.global_batch},
        "best": {"psnr": run.best_psnr, "iteration": run.best_iter},
        "world_size": run.world,
        # wall time of all invocations so far (training, validation, checkpoints) and
        # where it ran: provenance for exported weights (model cards)
        "train_seconds": run.prior_seconds + time.perf_counter() - run.t_start,
        "hardware": run.hardware,
    }


def save_checkpoint(run: _Run, it: int, lr: float) -> None:
    """Every rank hands over its RNG state; rank 0 writes ``iter_XXXXXXXX.pt`` and keeps the
    last ``train.keep_last``."""
    rngs = [_capture_rng()]
    if run.world > 1:
        gathered: list[Any] = [None] * run.world
        dist.all_gather_object(gathered, rngs[0])
        rngs = gathered
    if run.main:
        path = run.ckpt_dir / f"iter_{it:08d}.pt"
        save_atomic(_snapshot(run, it, lr, rngs), path)
        run.last_ckpt = path
        for _, old in _periodic_checkpoints(run.ckpt_dir)[: -run.cfg.train.keep_last]:
            old.unlink(missing_ok=True)


def train(
    cfg: Config,
    *,
    resume: str | os.PathLike[str] | None = None,
    quiet: bool = False,
    accept: Collection[str] = (),
) -> TrainResult:
    """Train ``cfg`` (a fresh run in ``output_dir/name``, or continue ``resume``'s run).

    ``cfg`` is a resolved config (:func:`~lightsr.training.config.load_config`). On resume it
    is compared key by key with the config stored in the checkpoint: every differing key must
    be named in ``accept`` (the ``--set`` keys; see :func:`check_resume`). Under ``torchrun``
    this is one process of a DistributedDataParallel run (see the module docstring). ``quiet``
    turns off console output (files are still written).

    Raises:
        ConfigError: values that do not fit the model, data or machine.
        ResumeMismatchError: a resume whose recipe differs in keys ``accept`` does not name.
        DataError: missing folders, corrupt images (before training starts).
        TrainingError: run directory conflicts, unreadable checkpoints, a non-finite loss
            (the last good checkpoint is left as it was).
    """
    run = setup(cfg, resume=resume, quiet=quiet, accept=accept)
    t, v = cfg.train, cfg.val
    try:
        window = _Window(sums=torch.zeros(len(run.stat_names), dtype=torch.float64))
        it = run.start_iter
        run.model.train()
        for it in range(run.start_iter + 1, t.iters + 1):
            lr, stats = train_step(run, it)
            window.sums += stats
            window.n += 1
            run.progress.step(it)
            if it % t.log_every == 0 or it == t.iters:
                _log(run, it, lr, window)
            t_pause = time.perf_counter()
            if run.main and v.datasets and (it % v.every == 0 or it == t.iters):
                validate(run, it, lr)
            if it % t.checkpoint_every == 0 or it == t.iters:
                save_checkpoint(run, it, lr)
            window.paused += time.perf_counter() - t_pause
        if run.world > 1:  # leave together: a rank tearing down gloo early can abort the other
            dist.barrier()
        seconds = time.perf_counter() - run.t_start
        best = run.best_psnr
        run.progress.say(
            f"done: iteration {it}"
            + (f", best {best:.3f} dB at {run.best_iter}" if best is not None else "")
            + f", {_fmt_time(seconds)}; export the EMA weights with "
            f"`lightsr export-weights {run.run_dir} -o model.safetensors`"
        )
        return TrainResult(run.run_dir, it, best, run.best_iter, run.last_val, seconds)
    finally:
        run.close()


# --------------------------------------------------------------------------------------------
# Export


def export_weights(
    run: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    checkpoint: str = "latest",
    weights: str = "ema",
) -> Path:
    """Write a run's weights as ``.safetensors`` with lightsr metadata.

    Args:
        run: a run directory or a training checkpoint file.
        output: the ``.safetensors`` file to write (atomically).
        checkpoint: ``latest`` or ``best`` (ignored when ``run`` is a file).
        weights: ``ema`` (what the papers release and evaluate) or ``model``.

    Returns:
        The written path; ``lightsr upscale --weights`` and ``lightsr eval --weights`` read it.
    """
    from lightsr.models.checkpoint import save_safetensors

    if weights not in ("ema", "model"):
        raise TrainingError(f"weights: expected ema or model, found {weights!r}")
    path = find_checkpoint(run, checkpoint)
    state = load_training_state(path)
    best = state["best"]
    extra = {
        "source": f"lightsr train: {state['config']['name']}, iteration {state['iteration']}",
        "weights": weights,
        "iteration": str(state["iteration"]),
    }
    if best["psnr"] is not None:
        extra["best_val_psnr"] = f"{best['psnr']:.4f} at {best['iteration']}"
    if "train_seconds" in state:
        extra["train_seconds"] = f"{state['train_seconds']:.0f}"
        extra["hardware"] = str(state.get("hardware", ""))
    extra["recipe"] = json.dumps(state["config"], sort_keys=True)
    return save_safetensors(
        state[weights],
        output,
        arch=state["arch"],
        config=state["arch_config"],
        scale=state["scale"],
        extra=extra,
    )


def _main() -> None:  # pragma: no cover - `python -m lightsr.training.loop CONFIG` for debugging
    from lightsr.training.config import load_config

    train(load_config(sys.argv[1], sys.argv[2:]))


if __name__ == "__main__":  # pragma: no cover
    _main()
