"""Architectures: every named model runs forward and backward; SAFMN matches the paper; every
architecture file is registered and its descriptor is true; the parameter table is current."""

from __future__ import annotations

import pytest
import torch

from lightsr.models.archs.safmn import SAFMN
from lightsr.models.base import DEFAULT_SIZE_MULTIPLE
from lightsr.models.param_counts import PARAM_COUNTS
from lightsr.models.registry import (
    MODELS,
    arch_descriptors,
    build_arch,
    build_model,
    get_arch,
    get_spec,
    resolve_name,
    size_multiple,
)

SAFMN_NAMES = [n for n, s in MODELS.items() if s.arch == "safmn" and "-x" in n]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("safmn-x2", 227_820),
        ("safmn-x3", 232_695),
        ("safmn-x4", 239_520),
        # SAFMN-L: dim 128, 16 blocks (official repo configs)
        ("safmn-l-x2", 5_559_308),
        ("safmn-l-x3", 5_576_603),
        ("safmn-l-x4", 5_600_816),
    ],
)
def test_parameter_counts(name: str, expected: int) -> None:
    assert n_params(build_model(name)) == expected


@pytest.mark.parametrize("name", [f"{b}-x{s}" for b in ("safmn", "safmn-l") for s in (2, 3, 4)])
def test_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name)
    scale = get_spec(name).scale
    x = torch.rand(2, 3, 16, 24, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 3, 16 * scale, 24 * scale)
    assert torch.isfinite(y).all()
    y.mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_official_parameter_names() -> None:
    keys = set(SAFMN(dim=36, n_blocks=8, upscaling_factor=2).state_dict())
    for key in (
        "to_feat.weight",
        "feats.7.norm1.weight",
        "feats.0.norm2.bias",
        "feats.0.safm.mfr.3.weight",
        "feats.0.safm.aggr.weight",
        "feats.0.ccm.ccm.0.weight",
        "feats.0.ccm.ccm.2.bias",
        "to_img.0.weight",
    ):
        assert key in keys


def test_names_resolve_and_errors_list_valid_names() -> None:
    assert resolve_name("safmn", 3) == "safmn-x3"
    assert resolve_name("SAFMN-X2") == "safmn-x2"
    with pytest.raises(KeyError, match="safmn-x4"):
        resolve_name("nope")
    with pytest.raises(KeyError, match="needs a scale"):
        resolve_name("safmn")
    with pytest.raises(KeyError, match="x2"):
        resolve_name("safmn-x2", 4)


def test_layernorm_matches_torch_layernorm() -> None:
    from lightsr.models.archs.safmn import ChannelLayerNorm

    torch.manual_seed(0)
    ln = ChannelLayerNorm(12)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(2, 12, 5, 7)
    ref = torch.nn.functional.layer_norm(
        x.permute(0, 2, 3, 1), (12,), ln.weight, ln.bias, eps=1e-6
    ).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# The architecture registry: one row per architecture file


#: name -> (scales, size_multiple, supports_fp16). A new file under lightsr/models/archs adds
#: its row here (its detector is checked by test_checkpoint / test_zoo).
ARCH_ROWS: dict[str, tuple[tuple[int, ...], int, bool]] = {
    "safmn": ((2, 3, 4), 8, True),
    "swinir": ((2, 3, 4), 8, True),
    "ups": ((2, 3, 4), 8, True),
    "imdn": ((2, 3, 4), 1, True),
    "pan": ((2, 3, 4), 1, False),
    "rlfn": ((2, 3, 4), 1, True),
    "rfdn": ((2, 3, 4), 1, True),
    "carn_m": ((2, 3, 4), 1, True),
    "fsrcnn": ((2, 3, 4), 1, True),
    "espcn": ((2, 3, 4), 1, True),
    "edsr": ((2, 3, 4), 1, True),
    "safmn_ntire2023": ((4,), 1, True),
    "safmnpp": ((4,), 1, False),
    "light_safmnpp": ((4,), 1, False),
    "span": ((2, 3, 4), 1, False),
    "spanf": ((4,), 1, True),
    "espan": ((4,), 1, False),
    "efdn": ((2, 3, 4), 1, True),
    "safmnv3": ((4,), 1, False),
}


def test_every_architecture_file_is_registered_with_its_row() -> None:
    descriptors = arch_descriptors()
    assert set(descriptors) == set(ARCH_ROWS)
    for name, (scales, multiple, fp16) in ARCH_ROWS.items():
        d = descriptors[name]
        assert (d.scales, d.size_multiple, d.supports_fp16) == (scales, multiple, fp16), name
        assert (d.in_channels, d.out_channels, d.input_range) == (3, 3, (0.0, 1.0)), name
    assert {s.arch for s in MODELS.values()} <= set(ARCH_ROWS)


@pytest.mark.parametrize("arch", sorted(ARCH_ROWS))
def test_descriptor_describes_the_built_network(arch: str) -> None:
    """At each declared scale: (B, in_channels, H, W) at the size multiple in, the declared
    channels and scale out. (16 px at least: RLFN's and RFDN's ESA pooling needs 15.)"""
    d = get_arch(arch)
    spec = next(s for s in MODELS.values() if s.arch == arch)
    side = max(16, 2 * d.size_multiple)
    for scale in d.scales:
        torch.manual_seed(0)
        model = build_arch(arch, scale=scale, **spec.config).eval()
        assert size_multiple(model) == d.size_multiple and model.scale == scale
        with torch.no_grad():
            y = model(torch.rand(1, d.in_channels, side, side + d.size_multiple))
        assert y.shape == (1, d.out_channels, side * scale, (side + d.size_multiple) * scale)


def test_size_multiple_reads_instance_then_descriptor_then_default() -> None:
    assert size_multiple(build_model("safmn-x2")) == 8
    assert size_multiple(build_arch("swinir", scale=2, window_size=4, depths=[2])) == 4
    assert size_multiple(build_model("imdn-x2")) == 1
    assert size_multiple(torch.nn.Conv2d(3, 3, 1)) == DEFAULT_SIZE_MULTIPLE == 1


def test_param_table_matches_the_built_models() -> None:
    """``lightsr models`` prints PARAM_COUNTS without building anything: it must not drift.
    Regenerate with ``lightsr.models.registry.write_param_counts()``."""
    assert list(PARAM_COUNTS) == list(MODELS)
    counted = {name: n_params(build_model(name)) for name in MODELS}
    assert counted == PARAM_COUNTS
    assert all(spec.params == PARAM_COUNTS[name] for name, spec in MODELS.items())
