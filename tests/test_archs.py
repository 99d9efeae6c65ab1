"""Architectures: every named model runs forward and backward; SAFMN matches the paper."""

from __future__ import annotations

import pytest
import torch

from lightsr.models.archs.safmn import SAFMN
from lightsr.models.registry import MODELS, build_model, get_spec, resolve_name

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
