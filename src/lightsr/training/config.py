"""Training configuration: typed dataclasses, YAML recipes and ``--set key.sub=value`` overrides.

A recipe (``configs/*.yaml``) holds only the values that differ from the defaults below, which are
the official SAFMN x4 recipe (Sun et al., ICCV 2023, Sec. 4.1, and the official
``options/train/SAFMN/train_DF2K_X4.yml``) without data paths. Loading is strict: an unknown key
or a value of the wrong type is a :class:`ConfigError` whose one-line message names the key
(``optim.lr: expected a number, found 'fast'``).

Resolution happens once, here: :func:`load_config` (and :func:`config_from_dict`) return a
:class:`Config` whose path fields (:data:`PATH_KEYS`) are already expanded, so training reads
plain values. ``${LIGHTSR_SHARED}`` (or ``$LIGHTSR_SHARED``) in a path is replaced by the
absolute :func:`shared_root` (the ``shared/`` folder with the reference datasets); other
``$VARS`` and ``~`` are expanded from the environment, and an unset variable is an error.
Relative paths stay relative to the current directory (as in BasicSR), not to the YAML file.
``val.data_root``, when not given, is filled with the default lookup folder
(:func:`lightsr.runtime.data_root`, made absolute). Resolving a resolved config changes nothing,
so a run's stored config (``RUN_DIR/config.yaml``, checkpoints) reads back to the same values.

YAML 1.1 reads ``1e-3`` (no dot) as a string; number fields accept such strings.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from lightsr.errors import LightSRError
from lightsr.runtime import data_root, shared_root

__all__ = [
    "PATH_KEYS",
    "UNSET",
    "Config",
    "ConfigError",
    "DataConfig",
    "GanConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "ValConfig",
    "config_diff",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "expand_path",
    "format_value",
    "load_config",
    "override_keys",
    "shared_root",
]


class ConfigError(LightSRError):
    """A training configuration that cannot be used; the message names the key."""


@dataclass
class ModelConfig:
    """The network to train."""

    name: str = "safmn"
    """Named model from ``lightsr models``: a base name (``safmn``, ``safmn-l``) combined with
    ``scale``, or a full name whose scale must equal ``scale``."""
    scale: int = 4
    """Upscaling factor."""
    args: dict[str, Any] = field(default_factory=dict)
    """Constructor arguments that override the named model's (``{dim: 8, n_blocks: 1}``, or an
    ablation such as ``{ccm: none}``)."""
    init: str | None = None
    """Initial weights (fine-tuning): a run directory (its best checkpoint's EMA), a training
    checkpoint (its EMA) or a weights file (``.safetensors``/``.pth``). Tensors whose name and
    shape match are copied, the rest keep their random init and are listed in the log; this is
    how the x3/x4 recipes start from an x2 body (only the upsampler differs). Ignored on
    ``--resume``, which restores the full state."""
    grow: bool = False
    """Deepen ``init``'s SAFMN instead of copying tensors by name: with ``n_blocks`` a multiple
    of the source's, each source block is followed by identity blocks (their SAFM aggregation
    and CCM output convolution zero), so training starts from the source's exact function with
    more depth (``lightsr.models.archs.safmn.grow_blocks``). SAFMN family only."""


@dataclass
class DataConfig:
    """Training data: folders of HR images, LR made on the fly (or read from paired folders)."""

    hr_dirs: list[str] = field(default_factory=list)
    """Folders of HR images (searched recursively; PNG, JPEG, WebP, BMP, TIFF; 8 or 16 bit)."""
    lr_dirs: list[str] = field(default_factory=list)
    """Paired LR folders, one per ``hr_dirs`` entry (files ``<stem>.ext`` or
    ``<stem>x<scale>.ext``); empty: LR = MATLAB-exact bicubic of the HR, made on the fly."""
    patch_size: int = 64
    """LR patch side in pixels (the HR patch is ``patch_size * scale``)."""
    batch_size: int = 64
    """Patches per step *per process*: under torchrun the global batch is ``batch_size *
    world_size`` (BasicSR's ``batch_size_per_gpu``)."""
    flip: bool = True
    """Random horizontal flips."""
    rotate: bool = True
    """Random vertical flips and transposes (with ``flip``: all 8 flips/90-degree rotations)."""
    cache: bool = False
    """Decode every image once into memory before training (fast, needs RAM for the dataset)."""
    workers: int = 4
    """Data-loading processes per training process (0: load in the training process)."""
    skip_corrupt: bool = False
    """Skip unreadable images with a warning instead of stopping before training starts."""
    degradation: str = "bicubic"
    """How LR patches are made: ``bicubic`` (MATLAB-exact, the papers' protocol) or
    ``high-order`` (Real-ESRGAN's second-order model, :mod:`lightsr.degrade`, seeded per
    sample; for real photos). ``high-order`` needs ``lr_dirs`` empty."""
    degrade: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`lightsr.degrade.DegradeParams` (e.g. ``{jpeg_range: [50, 95]}``)."""
    usm_target: bool = False
    """Train against the unsharp-masked HR (Real-ESRGAN's ``l1_gt_usm``): crisper outputs."""
    task: str = "sr"
    """What the network learns (:mod:`lightsr.restoration`): ``sr`` (bicubic super-resolution),
    ``denoise`` or ``jpeg`` (same-size restoration: ``model.scale`` 1), or ``depth`` (depth-map
    SR on single-channel maps, ``model.scale`` 4 or 8)."""
    noise_sigma: tuple[float, float] = (0.0, 55.0)
    """``denoise``: Gaussian noise level range on the 0-255 scale, drawn per patch (a blind
    model); equal ends train one level."""
    jpeg_quality: tuple[int, int] = (10, 50)
    """``jpeg``: JPEG quality range, drawn per patch (a blind model); equal ends: one quality."""
    synthetic_maps: int = 2000
    """``depth`` with ``hr_dirs`` empty: train on this many synthetic piecewise-smooth depth
    maps (:func:`lightsr.restoration.tasks.synthetic_depth`, map ``i`` seeded by ``seed`` and
    ``i``); with ``hr_dirs``: those folders' single-channel maps instead."""
    synthetic_size: int = 256
    """``depth``: side of each synthetic map in pixels (at least a HR patch)."""


@dataclass
class ValConfig:
    """Validation during training: PSNR/SSIM on the Y channel with the papers' protocol
    (:func:`lightsr.evaluation.evaluate.evaluate`), on the EMA weights."""

    datasets: list[str] = field(default_factory=list)
    """Benchmark names (``Set5``, resolved under ``data_root``) or folders of HR images;
    empty: no validation. The first one decides the best checkpoint."""
    data_root: str | None = None
    """Where benchmark names are looked up (default: ``$LIGHTSR_DATA``, else
    ``${LIGHTSR_SHARED}/datasets``, filled in as an absolute path when the config is loaded)."""
    lr_dir: str | None = None
    """Paired LR images instead of the on-the-fly MATLAB bicubic."""
    every: int = 5000
    """Validate every this many iterations (and at the end)."""
    images: int = 3
    """SR images of the first dataset written to TensorBoard at each validation."""


@dataclass
class OptimConfig:
    """Optimizer."""

    name: Literal["adam", "adamw"] = "adam"
    """``adam`` (paper) or ``adamw`` (decoupled weight decay)."""
    lr: float = 1e-3
    """Peak learning rate."""
    betas: tuple[float, float] = (0.9, 0.99)
    """Adam betas."""
    eps: float = 1e-8
    """Adam epsilon."""
    weight_decay: float = 0.0
    """Weight decay (L2 for adam, decoupled for adamw)."""
    grad_clip: float | None = None
    """Clip the gradients' global L2 norm to this value (None: no clipping)."""


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, evaluated at each iteration (1-based) by a pure function."""

    name: Literal["cosine", "multistep", "constant"] = "cosine"
    """``cosine`` (annealing, with restarts when ``periods`` has several entries; BasicSR's
    ``CosineAnnealingRestartLR``), ``multistep`` or ``constant``."""
    min_lr: float = 1e-5
    """Cosine: the learning rate at the end of each period (``eta_min``)."""
    periods: list[int] = field(default_factory=list)
    """Cosine: period lengths in iterations, summing to ``train.iters`` (empty: one period)."""
    restart_weights: list[float] = field(default_factory=list)
    """Cosine: peak of each period as a fraction of ``optim.lr`` (empty: all 1)."""
    milestones: list[int] = field(default_factory=list)
    """Multistep: iterations at which the rate is multiplied by ``gamma``."""
    gamma: float = 0.5
    """Multistep: the factor."""
    warmup_iters: int = 0
    """Linear warm-up from 0 over this many iterations, then the schedule (0: none)."""


@dataclass
class LossConfig:
    """Loss weights: ``l1 * L1 + fft * FFT + l2 * MSE + perceptual * VGG + distill *
    L1(SR, teacher)``
    (:mod:`lightsr.training.losses`); the adversarial term is in :class:`GanConfig`."""

    l1: float = 1.0
    """Weight of the pixel L1 loss."""
    fft: float = 0.05
    """Weight of the FFT loss (the official SAFMN definition)."""
    l2: float = 0.0
    """Weight of the pixel L2 loss (mean squared error, the PSNR objective): for a last
    fine-tuning stage, e.g. ``loss.l1=0 loss.fft=0 loss.l2=1``."""
    perceptual: float = 0.0
    """Weight of the VGG19 perceptual loss (Real-ESRGAN: 1.0); needs ``perceptual_weights``."""
    perceptual_weights: str | None = None
    """A VGG19 state dict with torchvision keys (``features.N.weight``/``.bias``): pretrained
    VGG weights are not downloaded, so the user supplies them."""
    distill: float = 0.0
    """Weight of the distillation loss: L1 between the model's and a frozen teacher's outputs on
    the same LR patch; needs ``distill_teacher``."""
    distill_teacher: str | None = None
    """The teacher: a named model with bundled weights (``safmn-x4``) or a weights file that
    ``lightsr upscale --weights`` reads; its scale must be ``model.scale``."""


@dataclass
class GanConfig:
    """Adversarial training as Real-ESRGAN (:mod:`lightsr.training.gan`): a U-Net discriminator
    with spectral normalisation on HR patches (the USM target with ``data.usm_target``) against
    the model's outputs, updated once per iteration with its own Adam optimiser."""

    weight: float = 0.0
    """Weight of the generator's adversarial loss (Real-ESRGAN: 0.1); 0: no GAN."""
    type: Literal["vanilla", "lsgan", "hinge"] = "vanilla"
    """``vanilla`` (binary cross-entropy on logits, Real-ESRGAN), ``lsgan`` or ``hinge``."""
    d_lr: float = 1e-4
    """The discriminator's peak learning rate; it follows the same schedule as ``optim.lr``."""
    d_betas: tuple[float, float] = (0.9, 0.99)
    """The discriminator's Adam betas."""
    d_num_feat: int = 64
    """Channels of the discriminator's first and last layers (Real-ESRGAN: 64; cost ~ F^2)."""


@dataclass
class TrainConfig:
    """The loop: length, precision, speed options, EMA, logging and checkpoints."""

    iters: int = 500_000
    """Number of optimizer steps."""
    ema_decay: float = 0.999
    """EMA of the weights (validated and exported); 0 disables it (the EMA is the model)."""
    ema_warmup: bool = False
    """Ramp the EMA decay as ``min(ema_decay, (1 + it) / (10 + it))`` (TensorFlow's
    ``num_updates`` rule) so that short runs are not dominated by the initial weights (with
    0.999 and no warm-up, 60 % of the EMA at iteration 500 is the random init). Off in the
    papers' recipes."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """``bf16`` autocast (CPU or CUDA), ``fp16`` autocast with a gradient scaler (CUDA only)."""
    channels_last: bool = False
    """Channels-last memory format for the model and its inputs."""
    compile: bool = False
    """``torch.compile`` the model (first steps are slow while it compiles)."""
    native: Literal["auto", "on", "off"] = "auto"
    """Native CPU kernels for SAFMN-family training (:mod:`lightsr.native.train_ops`: float32,
    x86-64 with AVX2/FMA): ``auto`` uses them for fp32 training on a CPU that has them (then the
    model is not compiled: the kernels are opaque to ``torch.compile``, and faster than it),
    ``on`` requires them, ``off`` runs PyTorch's kernels. Other architectures are unaffected."""
    device: str = "auto"
    """``auto`` (CUDA if present), ``cpu``, ``cuda`` (under torchrun: the local rank's GPU)."""
    threads: int | None = None
    """Intra-op CPU threads (None: the CPUs this process may use; torchrun sets 1)."""
    log_every: int = 100
    """Log losses, learning rate and speed every this many iterations."""
    checkpoint_every: int = 5000
    """Write a checkpoint every this many iterations (and at the end)."""
    keep_last: int = 3
    """Keep this many periodic checkpoints (``best.pt`` is kept apart)."""
    tensorboard: bool = True
    """Write TensorBoard event files under ``RUN_DIR/tb`` (needs ``pip install tensorboard``)."""


@dataclass
class Config:
    """A training run."""

    name: str = "safmn_x4"
    """Run name; the run directory is ``output_dir/name``."""
    output_dir: str = "runs"
    """Folder that holds run directories."""
    seed: int = 10
    """Seed of the weights' initialisation and of the data stream (patches, flips, order)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The network."""
    data: DataConfig = field(default_factory=DataConfig)
    """Training data."""
    val: ValConfig = field(default_factory=ValConfig)
    """Validation."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """Learning-rate schedule."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Loss weights."""
    gan: GanConfig = field(default_factory=GanConfig)
    """Adversarial training (off unless ``gan.weight`` > 0)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The loop."""


# --------------------------------------------------------------------------------------------
# Paths


_VAR = re.compile(r"\$(\w+|\{[^}]*\})")


#: The path fields that loading expands (``val.datasets`` entries may also be benchmark names,
#: which expansion leaves as they are).
PATH_KEYS = (
    "output_dir",
    "model.init",
    "loss.perceptual_weights",
    "loss.distill_teacher",
    "data.hr_dirs",
    "data.lr_dirs",
    "val.datasets",
    "val.data_root",
    "val.lr_dir",
)


def expand_path(value: str, key: str) -> str:
    """Expand ``${LIGHTSR_SHARED}`` (absolute), other environment variables and ``~`` in a
    config path. Loading calls it for every field of :data:`PATH_KEYS`; nothing else needs to.

    Raises:
        ConfigError: a variable that is not set (the message names ``key``).
    """

    def sub(m: re.Match[str]) -> str:
        name = m.group(1).strip("{}")
        if name == "LIGHTSR_SHARED":
            return str(shared_root().resolve())
        if name not in os.environ:
            raise ConfigError(f"{key}: environment variable ${name} in {value!r} is not set")
        return os.environ[name]

    return os.path.expanduser(_VAR.sub(sub, value))


def _resolve(cfg: Config) -> Config:
    """Expand every path field once and fill ``val.data_root``; idempotent."""
    m, d, v = cfg.model, cfg.data, cfg.val
    cfg.output_dir = expand_path(cfg.output_dir, "output_dir")
    if m.init:
        m.init = expand_path(m.init, "model.init")
    if cfg.loss.perceptual_weights:
        cfg.loss.perceptual_weights = expand_path(
            cfg.loss.perceptual_weights, "loss.perceptual_weights"
        )
    if cfg.loss.distill_teacher:
        cfg.loss.distill_teacher = expand_path(cfg.loss.distill_teacher, "loss.distill_teacher")
    d.hr_dirs = [expand_path(p, f"data.hr_dirs[{i}]") for i, p in enumerate(d.hr_dirs)]
    d.lr_dirs = [expand_path(p, f"data.lr_dirs[{i}]") for i, p in enumerate(d.lr_dirs)]
    v.datasets = [expand_path(p, f"val.datasets[{i}]") for i, p in enumerate(v.datasets)]
    if v.data_root:
        v.data_root = expand_path(v.data_root, "val.data_root")
    else:
        v.data_root = str(data_root().absolute())
    if v.lr_dir:
        v.lr_dir = expand_path(v.lr_dir, "val.lr_dir")
    return cfg


# --------------------------------------------------------------------------------------------
# Typed conversion


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (list, tuple):
        return "a list, e.g. [a, b]"
    if origin is dict:
        return "a mapping, e.g. {key: value}"
    return str(tp)


def _fail(key: str, tp: Any, value: Any) -> typing.NoReturn:
    raise ConfigError(f"{key}: expected {_type_name(tp)}, found {value!r}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; numbers in strings become numbers."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} fields, found {value!r}")
        return _from_dict(tp, value, key)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key)
    if origin is Literal:
        if isinstance(value, bool) and "on" in args and "off" in args:
            value = "on" if value else "off"  # YAML 1.1 reads a bare on/off as a boolean
        if value not in args:
            _fail(key, tp, value)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            _fail(key, tp, value)
        return value
    if tp is int:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                _fail(key, tp, value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            _fail(key, tp, value)
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                _fail(key, tp, value)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            _fail(key, tp, value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(key, tp, value)
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            _fail(key, tp, value)
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} values, found {value!r}")
        return tuple(
            _coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            _fail(key, tp, value)
        return dict(value)
    raise TypeError(f"config: unsupported annotation {tp!r} for {key}")  # a bug, not user input


def _from_dict(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else str(key)
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{where}: unknown key; {hint}valid keys: {', '.join(names)}")
    values = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in raw.items()}
    return cls(**values)


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build, check and resolve a :class:`Config` from nested plain values (parsed YAML, or a
    checkpoint's stored config): paths expanded, defaults filled (see the module docstring).

    Raises:
        ConfigError: unknown key, wrong type, values that do not fit together, or a path with
            an unset environment variable.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping at the top level, found {raw!r}")
    cfg = _from_dict(Config, raw)
    _check(cfg)
    return _resolve(cfg)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Nested plain values (tuples as lists) that :func:`config_from_dict` reads back."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def dump_config(cfg: Config) -> str:
    """The configuration as YAML (all fields, in declaration order)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: What :func:`config_diff` reports for a ``model.args`` key given on one side only.
UNSET: Any = _Unset()


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):  # an empty model.args contributes no key
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = value
    return out


def config_diff(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old value, new value)}`` for every value that differs, in field order.

    Keys are leaves: ``optim.lr``, ``data.hr_dirs`` (a list is one value), ``model.args.dim``
    (inside the free-form ``model.args``, where a key given on one side only has the value
    :data:`UNSET` on the other, shown as ``(unset)`` by :func:`format_value`). Compare
    resolved configs (as :func:`load_config` returns them): a path written as
    ``${LIGHTSR_SHARED}/x`` on one side and as the folder it stands for on the other is then
    the same value.
    """
    a = _flatten(config_to_dict(old), "", {})
    b = _flatten(config_to_dict(new), "", {})
    keys = list(a) + [k for k in b if k not in a]
    return {
        k: (a.get(k, UNSET), b.get(k, UNSET)) for k in keys if a.get(k, UNSET) != b.get(k, UNSET)
    }


def format_value(value: Any) -> str:
    """A config value as one line of YAML, as ``--set`` reads it (``0.001``, ``[a, b]``)."""
    if value is UNSET:
        return "(unset)"
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
    return text.removesuffix("...").strip()


def override_keys(overrides: list[str] | tuple[str, ...]) -> list[str]:
    """The dotted keys that ``key.sub=value`` overrides name (``optim.lr``), in order."""
    return [item.split("=", 1)[0].strip() for item in overrides]


def _apply_override(raw: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected key.sub=value, e.g. optim.lr=2e-4")
    dotted, text = item.split("=", 1)
    parts = dotted.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {item}: empty key")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {dotted}: cannot parse {text!r} ({exc.problem})") from exc
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"--set {dotted}: {where} is not a section")
        node = child
    node[parts[-1]] = value


def load_config(
    path: str | os.PathLike[str] | None, overrides: list[str] | tuple[str, ...] = ()
) -> Config:
    """Read a YAML recipe (or start from the defaults when ``path`` is None), apply
    ``key.sub=value`` overrides (values parsed as YAML: ``[a, b]``, ``true``, ``2e-4``) and
    resolve the result: every path expanded, defaults filled (see the module docstring).

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or inconsistent values.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            where = f" at line {line + 1}" if line is not None else ""
            raise ConfigError(f"{p}: not valid YAML{where}") from exc
        except UnicodeDecodeError as exc:  # a binary file given as the recipe
            raise ConfigError(f"{p}: not a text file (not UTF-8); expected a YAML recipe") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
        raw = loaded or {}
    for item in overrides:
        _apply_override(raw, item)
    return config_from_dict(raw)


def _check_task(cfg: Config, need: Callable[[bool, str], None]) -> None:
    """``data.task`` against the scale, the LR source and its level ranges."""
    from lightsr.restoration.tasks import TASKS, TaskSpec

    d, scale = cfg.data, cfg.model.scale
    need(d.task in TASKS, f"data.task: expected one of {', '.join(TASKS)}, found {d.task!r}")
    if d.task == "sr":
        need(scale >= 2, "model.scale: 1 is for data.task denoise or jpeg; sr needs >= 2")
        return
    need(
        not d.lr_dirs and d.degradation == "bicubic",
        f"data.task {d.task}: makes its inputs from the clean images; leave data.lr_dirs empty "
        "and data.degradation bicubic",
    )
    if d.task in ("denoise", "jpeg"):
        need(scale == 1, f"model.scale: data.task {d.task} keeps the size; set model.scale 1")
        need(bool(d.hr_dirs), f"data.hr_dirs: data.task {d.task} needs clean training images")
    else:
        need(scale >= 2, "model.scale: data.task depth is super-resolution; use 4 or 8")
        need(d.synthetic_maps >= 1, f"data.synthetic_maps: expected >= 1, {d.synthetic_maps}")
        need(
            d.synthetic_size >= d.patch_size * scale,
            f"data.synthetic_size: {d.synthetic_size} is smaller than a HR patch "
            f"({d.patch_size} x {scale})",
        )
    try:
        TaskSpec(d.task, sigma=tuple(d.noise_sigma), quality=tuple(d.jpeg_quality))
    except LightSRError as exc:
        key = "data.noise_sigma" if "sigma" in str(exc) else "data.jpeg_quality"
        raise ConfigError(f"{key}: {exc}") from None


def _check(cfg: Config) -> None:
    """Cross-field checks; each error names the key."""

    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ConfigError(msg)

    t, d, o, s = cfg.train, cfg.data, cfg.optim, cfg.schedule
    need(bool(cfg.name.strip()) and "/" not in cfg.name, f"name: {cfg.name!r} is not a run name")
    need(cfg.model.scale >= 1, f"model.scale: expected >= 1, found {cfg.model.scale}")
    need(
        not cfg.model.grow or bool(cfg.model.init),
        "model.grow: grows model.init's weights; set model.init (e.g. safmn-jpeg) or drop grow",
    )
    need(d.patch_size >= 1, f"data.patch_size: expected >= 1, found {d.patch_size}")
    need(d.batch_size >= 1, f"data.batch_size: expected >= 1, found {d.batch_size}")
    need(d.workers >= 0, f"data.workers: expected >= 0, found {d.workers}")
    need(
        d.degradation in ("bicubic", "high-order"),
        f"data.degradation: expected bicubic or high-order, found {d.degradation!r}",
    )
    need(
        d.degradation == "bicubic" or not d.lr_dirs,
        "data.degradation: high-order makes LR patches from the HR; leave data.lr_dirs empty",
    )
    if d.degrade:
        from lightsr.degrade import DegradeParams

        try:
            DegradeParams.from_dict(d.degrade)
        except LightSRError as exc:
            raise ConfigError(f"data.degrade: {exc}") from None
    _check_task(cfg, need)
    need(
        not d.lr_dirs or len(d.lr_dirs) == len(d.hr_dirs),
        f"data.lr_dirs: expected one folder per data.hr_dirs entry ({len(d.hr_dirs)}), "
        f"found {len(d.lr_dirs)}",
    )
    need(cfg.val.every >= 1, f"val.every: expected >= 1, found {cfg.val.every}")
    need(cfg.val.images >= 0, f"val.images: expected >= 0, found {cfg.val.images}")
    need(o.lr > 0, f"optim.lr: expected > 0, found {o.lr}")
    need(all(0 <= b < 1 for b in o.betas), f"optim.betas: expected values in [0, 1), {o.betas}")
    need(o.eps > 0, f"optim.eps: expected > 0, found {o.eps}")
    need(o.weight_decay >= 0, f"optim.weight_decay: expected >= 0, found {o.weight_decay}")
    need(
        o.grad_clip is None or o.grad_clip > 0,
        f"optim.grad_clip: expected > 0 or null, found {o.grad_clip}",
    )
    need(t.iters >= 1, f"train.iters: expected >= 1, found {t.iters}")
    need(0 <= t.ema_decay < 1, f"train.ema_decay: expected in [0, 1), found {t.ema_decay}")
    need(t.log_every >= 1, f"train.log_every: expected >= 1, found {t.log_every}")
    need(
        t.checkpoint_every >= 1,
        f"train.checkpoint_every: expected >= 1, found {t.checkpoint_every}",
    )
    need(t.keep_last >= 1, f"train.keep_last: expected >= 1, found {t.keep_last}")
    need(t.threads is None or t.threads >= 1, f"train.threads: expected >= 1, found {t.threads}")
    need(
        t.device == "auto" or re.fullmatch(r"cpu|cuda(:\d+)?", t.device) is not None,
        f"train.device: expected auto, cpu, cuda or cuda:N, found {t.device!r}",
    )
    need(s.min_lr >= 0, f"schedule.min_lr: expected >= 0, found {s.min_lr}")
    need(
        0 <= s.warmup_iters < t.iters,
        f"schedule.warmup_iters: expected 0 <= value < train.iters ({t.iters}), "
        f"found {s.warmup_iters}",
    )
    if s.periods:
        need(all(p >= 1 for p in s.periods), f"schedule.periods: expected >= 1, {s.periods}")
        need(
            sum(s.periods) == t.iters,
            f"schedule.periods: expected a sum equal to train.iters ({t.iters}), "
            f"found {sum(s.periods)}",
        )
    need(
        not s.restart_weights or len(s.restart_weights) == max(1, len(s.periods)),
        f"schedule.restart_weights: expected one weight per period ({max(1, len(s.periods))}), "
        f"found {len(s.restart_weights)}",
    )
    need(
        all(a < b for a, b in zip(s.milestones, s.milestones[1:], strict=False)),
        f"schedule.milestones: expected increasing iterations, found {s.milestones}",
    )
    need(s.gamma > 0, f"schedule.gamma: expected > 0, found {s.gamma}")
    _check_loss(cfg)


def _check_loss(cfg: Config) -> None:
    """Checks of the loss weights and the GAN section; each error names the key."""
    lo, g = cfg.loss, cfg.gan
    weights = {
        "l1": lo.l1, "fft": lo.fft, "l2": lo.l2, "perceptual": lo.perceptual, "distill": lo.distill
    }  # fmt: skip
    if any(w < 0 for w in weights.values()) or not any(weights.values()):
        found = " ".join(f"{k}={v}" for k, v in weights.items())
        raise ConfigError(f"loss: expected non-negative weights, not all 0, found {found}")
    if lo.perceptual > 0 and not lo.perceptual_weights:
        raise ConfigError(
            f"loss.perceptual: {lo.perceptual} needs VGG19 weights, which lightsr cannot "
            "download; pass --set loss.perceptual_weights=vgg19.pth (a torchvision-format state "
            "dict) or set loss.perceptual=0"
        )
    if lo.distill > 0 and not lo.distill_teacher:
        raise ConfigError(
            f"loss.distill: {lo.distill} needs a teacher; pass --set loss.distill_teacher=NAME "
            "(a model with bundled weights such as ups-s-x4, or a weights file) or set "
            "loss.distill=0"
        )
    if g.weight < 0:
        raise ConfigError(f"gan.weight: expected >= 0, found {g.weight}")
    if g.d_lr <= 0:
        raise ConfigError(f"gan.d_lr: expected > 0, found {g.d_lr}")
    if not all(0 <= b < 1 for b in g.d_betas):
        raise ConfigError(f"gan.d_betas: expected values in [0, 1), found {list(g.d_betas)}")
    if g.d_num_feat < 1:
        raise ConfigError(f"gan.d_num_feat: expected >= 1, found {g.d_num_feat}")
    hr = cfg.data.patch_size * cfg.model.scale
    if g.weight > 0 and hr % 8:
        raise ConfigError(
            f"gan.weight: the discriminator needs HR patches whose side is a multiple of 8, "
            f"found data.patch_size {cfg.data.patch_size} x model.scale {cfg.model.scale} = {hr}"
        )
