"""The named models: pure data, importable without torch.

:data:`MODELS` maps a public name (``safmn-x4``) to a :class:`ModelSpec`: an architecture, its
constructor arguments, the scale, a description, the file name of bundled weights (when lightsr
ships trained weights for it), the paper's figures and the parameter count. ``lightsr models``
reads this module alone, so listing the models does not load torch; building one goes through
:func:`lightsr.models.registry.build_model`.

Parameter counts come from :mod:`lightsr.models.param_counts`, a generated table that
``tests/test_archs.py`` checks against counting the built models (regenerate it with
:func:`lightsr.models.registry.write_param_counts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lightsr.models.param_counts import PARAM_COUNTS

__all__ = [
    "MODELS",
    "WEIGHTS_DIR",
    "ModelSpec",
    "bundled_models",
    "bundled_weights_path",
    "get_spec",
    "is_bundled",
    "resolve_name",
]

#: Where bundled weight files (a :class:`ModelSpec`'s ``weights``) live in the package.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ModelSpec:
    """A named model: architecture + configuration + scale (+ bundled weights, if any).

    Attributes:
        name: the public name, e.g. ``safmn-x4``.
        arch: an architecture name (:func:`lightsr.models.registry.get_arch`).
        config: constructor arguments (keyword-only), without the scale.
        scale: upscaling factor.
        description: one line for ``lightsr models``.
        weights: file name of bundled weights under ``lightsr/models/weights/``, or None.
        paper: the paper's complexity figures as printed (``params_k``, ``flops_g``,
            ``acts_m`` at a 1280x720 output, and the ``source`` table), when it reports them;
            for the zoo's baselines, ``set5_psnr`` (Set5 PSNR-Y as Table 1 prints it).
        params: the built model's parameter count, from :data:`PARAM_COUNTS` (generated from
            the built models, and checked against them by the tests), or None when the table
            has no entry for the name.
    """

    name: str
    arch: str
    config: dict[str, Any]
    scale: int
    description: str
    weights: str | None = None
    paper: dict[str, str] = field(default_factory=dict)
    params: int | None = None


#: The paper's complexity figures for SAFMN (Table 1; x{2,3,4}, output 1280x720).
_SAFMN_PAPER = {
    2: {"params_k": "227.82", "flops_g": "51.53", "acts_m": "298.51", "source": "Table 1"},
    3: {"params_k": "232.70", "flops_g": "23.42", "acts_m": "134.30", "source": "Table 1"},
    4: {"params_k": "239.52", "flops_g": "13.55", "acts_m": "76.70", "source": "Table 1"},
}

#: SAFMN ablations of the paper (x4): name suffix -> (constructor options, what changes, paper's
#: params K / FLOPs G / activations M at a 1280x720 output, table). Table 3 rows, then Table 4.
_SAFMN_ABLATIONS: dict[str, tuple[dict[str, Any], str, tuple[str, str, str], str]] = {
    "no-safm": ({"safm": False}, "SAFM -> None", ("225.41", "12.90", "54.61"), "Table 3"),
    "no-ccm": ({"ccm": "none"}, "CCM -> None", ("30.72", "1.61", "26.93"), "Table 3"),
    "no-fm": ({"modulation": False}, "w/o FM", ("239.52", "13.56", "76.70"), "Table 3"),
    "no-mr": ({"multi_scale": False}, "w/o MR", ("239.52", "13.64", "87.78"), "Table 3"),
    "no-fa": ({"aggregation": False}, "w/o FA", ("228.86", "12.96", "60.11"), "Table 3"),
    "no-fm-mr": (
        {"modulation": False, "multi_scale": False},
        "w/o FM and MR",
        ("239.52", "13.64", "87.78"),
        "Table 3",
    ),
    "no-fm-fa": (
        {"modulation": False, "aggregation": False},
        "w/o FM and FA",
        ("228.86", "12.96", "60.11"),
        "Table 3",
    ),
    "no-fm-mr-fa": (
        {"modulation": False, "multi_scale": False, "aggregation": False},
        "w/o FM, MR and FA",
        ("228.86", "13.05", "71.19"),
        "Table 3",
    ),
    "avgpool": ({"pool": "avg"}, "max -> avg pooling", ("239.52", "13.56", "76.70"), "Table 3"),
    "nearest-down": (
        {"pool": "nearest"},
        "max pooling -> nearest downsampling",
        ("239.52", "13.56", "76.70"),
        "Table 3",
    ),
    "no-gelu": ({"safm_act": "none"}, "GELU -> None", ("239.52", "13.56", "76.70"), "Table 3"),
    "sigmoid": (
        {"safm_act": "sigmoid"},
        "GELU -> Sigmoid",
        ("239.52", "13.56", "76.70"),
        "Table 3",
    ),
    "ccm-se": ({"ccm": "ccm-se"}, "CCM + SE", ("260.98", "13.59", "76.70"), "Table 3"),
    "channel-mlp": (
        {"ccm": "channel-mlp"},
        "CCM -> channel MLP",
        ("73.63", "4.00", "76.70"),
        "Table 3",
    ),
    "inverted-residual": (
        {"ccm": "inverted-residual"},
        "CCM -> inverted residual",
        ("245.28", "13.85", "110.00"),
        "Table 3",
    ),
    "no-norm": ({"norm": "none"}, "LN -> None", ("238.37", "13.55", "76.70"), "Table 3"),
    "batchnorm": ({"norm": "bn"}, "LN -> BatchNorm", ("239.52", "13.72", "76.70"), "Table 3"),
    "frozen-bn": (
        {"norm": "frozen-bn"},
        "LN -> frozen BatchNorm",
        ("238.37", "13.55", "76.70"),
        "Table 3",
    ),
    "l2norm": ({"norm": "l2"}, "LN -> L2 norm", ("238.37", "13.55", "76.70"), "Table 3"),
    "blocks4": ({"n_blocks": 4}, "4 blocks", ("128.06", "7.25", "40.77"), "Table 4"),
    "blocks6": ({"n_blocks": 6}, "6 blocks", ("183.79", "10.40", "58.64"), "Table 4"),
    "blocks12": ({"n_blocks": 12}, "12 blocks", ("350.97", "19.86", "113.00"), "Table 4"),
}


def _safmn_specs() -> list[ModelSpec]:
    specs = []
    sizes = {
        "safmn": ({"dim": 36, "n_blocks": 8, "ffn_scale": 2.0}, "SAFMN (ICCV 2023), efficient SR"),
        "safmn-l": (
            {"dim": 128, "n_blocks": 16, "ffn_scale": 2.0},
            "SAFMN-L (official repo), classic SR",
        ),
    }
    for base, (config, desc) in sizes.items():
        for scale in (2, 3, 4):
            specs.append(
                ModelSpec(
                    name=f"{base}-x{scale}",
                    arch="safmn",
                    config=config,
                    scale=scale,
                    description=f"{desc}, x{scale}",
                    weights=f"safmn_x{scale}.safetensors" if base == "safmn" else None,
                    paper=dict(_SAFMN_PAPER[scale]) if base == "safmn" else {},
                )
            )
    return specs


def _safmn_ablation_specs() -> list[ModelSpec]:
    """SAFMN x4 with one ablation of the paper each, named ``safmn-x4-<ablation>``.

    Random weights only (the paper released none); other scales: ``build_arch("safmn",
    scale=2, **MODELS["safmn-x4-no-fa"].config)``.
    """
    base = {"dim": 36, "n_blocks": 8, "ffn_scale": 2.0}
    specs = []
    for suffix, (options, what, (params, flops, acts), table) in _SAFMN_ABLATIONS.items():
        specs.append(
            ModelSpec(
                name=f"safmn-x4-{suffix}",
                arch="safmn",
                config={**base, **options},
                scale=4,
                description=f"SAFMN ablation ({table}): {what}, x4",
                paper={"params_k": params, "flops_g": flops, "acts_m": acts, "source": table},
            )
        )
    return specs


def _transformer_specs() -> list[ModelSpec]:
    """SwinIR-light (the UPS baseline) and UPS / UPS-S (lightsr's specification of the paper).

    ``ups-s`` is lightsr's small configuration for quick and data-efficiency experiments; the
    paper's exact UPS-S sizes are not published. ``ups-s-x4`` has bundled weights trained by
    lightsr (``configs/bundle_ups_s_x4.yaml``).
    """
    sizes: dict[str, tuple[str, dict[str, Any], str]] = {
        "swinir-light": (
            "swinir",
            {"embed_dim": 60, "depths": [6, 6, 6, 6], "num_heads": 6, "window_size": 8,
             "mlp_ratio": 2.0},
            "SwinIR-light (ICCVW 2021), the UPS baseline",
        ),
        "ups": (
            "ups",
            {"embed_dim": 60, "depths": [6, 6, 6, 6], "num_heads": 4, "window_size": 8,
             "mlp_ratio": 2.0, "proj_dim": 128},
            "UPS (NeurIPS 2024), lightsr's implementation of the paper",
        ),
        "ups-s": (
            "ups",
            {"embed_dim": 48, "depths": [4, 4, 4, 4], "num_heads": 4, "window_size": 8,
             "mlp_ratio": 2.0, "proj_dim": 64},
            "UPS-S, lightsr's small UPS (sizes are ours)",
        ),
    }  # fmt: skip
    return [
        ModelSpec(
            name=f"{base}-x{scale}",
            arch=arch,
            config=config,
            scale=scale,
            description=f"{desc}, x{scale}",
            # lightsr trained and bundles UPS-S at x4 only (docs/models.md)
            weights="ups_s_x4.safetensors" if (base, scale) == ("ups-s", 4) else None,
        )
        for base, (arch, config, desc) in sizes.items()
        for scale in (2, 3, 4)
    ]


#: The model zoo: name -> (architecture, config, scales, description, Set5 PSNR-Y that the
#: SAFMN paper's Table 1 prints per scale, where it reports the model). lightsr ships none of
#: their weights; the public checkpoints load from a path (see docs/zoo.md).
_ZOO: dict[str, tuple[str, dict[str, Any], tuple[int, ...], str, dict[int, str]]] = {
    "imdn": (
        "imdn",
        {"nf": 64, "num_modules": 6},
        (2, 3, 4),
        "IMDN (ACM MM 2019; AIM 2019 winner)",
        {2: "38.00", 3: "34.36", 4: "32.21"},
    ),
    "pan": (
        "pan",
        {"nf": 40, "unf": 24, "nb": 16},
        (2, 3, 4),
        "PAN (ECCVW 2020), pixel attention",
        {2: "38.00", 3: "34.40", 4: "32.13"},
    ),
    "rlfn": (
        "rlfn",
        {"feature_channels": 52},
        (2, 3, 4),
        "RLFN (CVPRW 2022; NTIRE 2022 winner), [0, 255] weights scaled inside",
        {2: "38.07", 4: "32.24"},
    ),
    "rlfn-s": (
        "rlfn",
        {"feature_channels": 48},
        (2, 3, 4),
        "RLFN-S (CVPRW 2022), [0, 255] weights scaled inside",
        {2: "38.05", 4: "32.23"},
    ),
    "rfdn": (
        "rfdn",
        {"nf": 50, "num_modules": 4},
        (2, 3, 4),
        "RFDN (ECCVW 2020; AIM 2020 winner, nf 50, 4 blocks), [0, 255] weights scaled inside",
        {},
    ),
    "carn-m": (
        "carn_m",
        {"n_feats": 64, "group": 4, "multi_scale": True},
        (2, 3, 4),
        "CARN-M (ECCV 2018), one multi-scale network with x2/x3/x4 upsamplers",
        {2: "37.53", 3: "33.99", 4: "31.92"},
    ),
    "fsrcnn": (
        "fsrcnn",
        {"d": 56, "s": 12, "m": 4},
        (2, 3, 4),
        "FSRCNN (ECCV 2016), Y channel (RGB in/out, CbCr bicubic)",
        {2: "37.00", 3: "33.16", 4: "30.71"},
    ),
    "espcn": (
        "espcn",
        {"n1": 64, "n2": 32},
        (2, 3, 4),
        "ESPCN (CVPR 2016), Y channel (RGB in/out, CbCr bicubic); no public weights",
        {},
    ),
    "edsr-baseline": (
        "edsr",
        {"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0},
        (2, 3, 4),
        "EDSR-baseline (CVPRW 2017); no public weights",
        {},
    ),
    "safmn-ntire2023": (
        "safmn_ntire2023",
        {"dim": 36, "n_blocks": 8, "ffn_scale": 2.0},
        (4,),
        "SAFMN's NTIRE 2023 efficient-SR entry (GRN, bias-free blocks, bilinear skip)",
        {},
    ),
    "safmnpp": (
        "safmnpp",
        {"dim": 36, "n_blocks": 6, "ffn_scale": 1.5},
        (4,),
        "SAFMN++ (NTIRE 2024 efficient-SR entry)",
        {},
    ),
    "light-safmnpp": (
        "light_safmnpp",
        {"dim": 32, "n_blocks": 2, "ffn_scale": 1.5},
        (4,),
        "light SAFMN++ (AIS 2024 real-time SR of AVIF-compressed images)",
        {},
    ),
    # NTIRE efficient-SR challenge entries (docs/zoo.md): the inference (re-parameterised)
    # forms of their public checkpoints.
    "span-ch28": (
        "span",
        {"feature_channels": 28},
        (4,),
        "SPAN (CVPRW 2024; NTIRE 2024 winner), 28 channels, inference form",
        {},
    ),
    "dscf": (
        "span",
        {"feature_channels": 26},
        (4,),
        "DSCF/DSCLoRA (NTIRE 2025 winner): a distilled 26-channel SPAN, inference form",
        {},
    ),
    "span-f": (
        "spanf",
        {"feature_channels": 32, "n_blocks": 5},
        (4,),
        "SPAN-F (NTIRE 2025, 2nd), inference form",
        {},
    ),
    "espan": (
        "espan",
        {"feature_channels": 32, "first_kernel": 9, "n_blocks": 5},
        (4,),
        "ESPAN (NTIRE 2025 entry): SPAN with a 9x9 first conv, inference form",
        {},
    ),
    "efdn": (
        "efdn",
        {"n_feats": 48},
        (4,),
        "EFDN (CVPRW 2022; the NTIRE 2025 baseline), deployed form",
        {},
    ),
    "safmnv3": (
        "safmnv3",
        {"dim": 40, "n_blocks": 6, "ffn_scale": 1.5, "split_dim": 12},
        (4,),
        "SAFMNv3 (the SAFMN authors' NTIRE 2025 entry)",
        {},
    ),
}


def _zoo_specs() -> list[ModelSpec]:
    """The model zoo at each of its scales, named ``<model>-x<scale>`` (random weights)."""
    return [
        ModelSpec(
            name=f"{base}-x{scale}",
            arch=arch,
            config=dict(config),
            scale=scale,
            description=f"{desc}, x{scale}",
            paper={"set5_psnr": set5[scale], "source": "Table 1"} if scale in set5 else {},
        )
        for base, (arch, config, scales, desc, set5) in _ZOO.items()
        for scale in scales
    ]


def _real_world_specs() -> list[ModelSpec]:
    """Models for real photos (JPEG, noise, blur), trained by lightsr on Real-ESRGAN's
    second-order degradations (``lightsr.degrade``; docs/real_world.md)."""
    return [
        ModelSpec(
            name="real-safmn-x4",
            arch="safmn",
            config={"dim": 36, "n_blocks": 8, "ffn_scale": 2.0},
            scale=4,
            description="SAFMN x4 for real photos (JPEG, noise, blur), lightsr's",
            weights="real_safmn_x4.safetensors",
        )
    ]


def _restoration_specs() -> list[ModelSpec]:
    """Models of lightsr.restoration, trained by lightsr (docs/restoration.md): same-size
    (scale-1) models for ``lightsr restore``, one blind model per task (the task's default), a
    denoiser for a known noise level of 25, and depth-map SR x4."""
    models = [  # name, scale, blocks, description
        ("safmn-denoise", 1, 8, "SAFMN x1, blind colour denoising (sigma 0-55), lightsr's"),
        ("safmn-denoise-s25", 1, 8, "SAFMN x1, colour denoising at a known sigma of 25, lightsr's"),
        (
            "safmn-jpeg",
            1,
            16,  # grown from 8 blocks (model.grow): +0.05 dB on CBSD68 q 20 for twice the work
            "SAFMN x1 (16 blocks), blind JPEG artifact removal (quality 10-50), lightsr's",
        ),
        (
            "depth-safmn-x4",
            4,
            8,
            "SAFMN x4 for depth/disparity maps (synthetic training), lightsr's",
        ),
    ]
    return [
        ModelSpec(
            name=name,
            arch="safmn",
            config={"dim": 36, "n_blocks": blocks, "ffn_scale": 2.0},
            scale=scale,
            description=description,
            weights=f"{name.replace('-', '_')}.safetensors",
        )
        for name, scale, blocks, description in models
    ]


MODELS: dict[str, ModelSpec] = {
    spec.name: replace(spec, params=PARAM_COUNTS.get(spec.name))
    for spec in [
        *_safmn_specs(),
        *_real_world_specs(),
        *_restoration_specs(),
        *_safmn_ablation_specs(),
        *_transformer_specs(),
        *_zoo_specs(),
    ]
}


def resolve_name(name: str, scale: int | None = None) -> str:
    """Return the table key for ``name``, accepting ``safmn`` + ``scale`` for ``safmn-x{scale}``.

    Raises:
        KeyError: with the list of valid names, when nothing matches.
    """
    key = name.lower()
    if key in MODELS:
        spec = MODELS[key]
        if scale is not None and spec.scale != scale:
            other = f"{key.rsplit('-x', 1)[0]}-x{scale}"
            hint = f"use {other} or drop the scale" if other in MODELS else "drop the scale"
            raise KeyError(
                f"model {name!r} is x{spec.scale} but scale {scale} was asked for; {hint}"
            )
        return key
    if scale is not None and f"{key}-x{scale}" in MODELS:
        return f"{key}-x{scale}"
    bases = sorted({n.rsplit("-x", 1)[0] for n in MODELS})
    if key in bases:
        raise KeyError(f"model {name!r} needs a scale: use {key}-x2, {key}-x3 or {key}-x4")
    raise KeyError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}")


def get_spec(name: str, scale: int | None = None) -> ModelSpec:
    """The :class:`ModelSpec` for a name (see :func:`resolve_name`)."""
    return MODELS[resolve_name(name, scale)]


def bundled_weights_path(filename: str) -> Path:
    """Where a bundled weight file (a :class:`ModelSpec`'s ``weights``) lives in the package."""
    return WEIGHTS_DIR / filename


def is_bundled(spec: ModelSpec) -> bool:
    """True when lightsr ships weights for the model and they are installed."""
    return bool(spec.weights and bundled_weights_path(spec.weights).is_file())


def bundled_models() -> list[str]:
    """Names of the models whose weights ship with lightsr (and are installed)."""
    return sorted(n for n, s in MODELS.items() if is_bundled(s))
