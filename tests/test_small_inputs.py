"""RLFN and RFDN on inputs smaller than their ESA's pooling needs (15 px a side).

The official code raises below 15 px (a strided 3x3 conv, then a 7x7 max pooling with stride
3, on an empty map). lightsr replicates the bottom/right edge up to 15 px inside the network and
crops the output: sizes the official code runs at must keep their outputs bit for bit, which
these tests check against the official formula written out here, on the same modules.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models.archs import rfdn, rlfn
from lightsr.models.checkpoint import load_checkpoint
from lightsr.models.registry import build_arch

from conftest import need_shared

#: Small random configurations (quick on 2 cores) with non-default widths.
SMALL = {
    "rlfn": {"feature_channels": 12, "mid_channels": 8, "esa_channels": 4, "n_blocks": 2},
    "rfdn": {"nf": 8, "num_modules": 2},
}
#: The public checkpoints (shared/weights/baselines).
CHECKPOINTS = ("rlfn_x4.pth", "rlfn_s_x2.pth", "RFDN_AIM_x4.pth")


def _official_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """RLFN's or RFDN's forward as the official code (and lightsr before the fix) computes
    it: no padding, no crop. It raises on inputs under 15 px."""
    if isinstance(model, rlfn.RLFN):
        fea = model.conv_1(x * model.img_range)
        out = fea
        for i in range(model.n_blocks):
            out = getattr(model, f"block_{i + 1}")(out)
        return model.upsampler(model.conv_2(out) + fea) / model.img_range
    assert isinstance(model, rfdn.RFDN)
    fea = model.fea_conv(x * model.img_range)
    outs, out = [], fea
    for i in range(model.num_modules):
        out = getattr(model, f"B{i + 1}")(out)
        outs.append(out)
    body = model.LR_conv(model.c(torch.cat(outs, dim=1))) + fea
    return model.upsampler(body) / model.img_range


def _random(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_min_size_is_where_the_official_formula_stops(arch: str) -> None:
    model = _random(build_arch(arch, scale=2, **SMALL[arch]))
    minimum = {"rlfn": rlfn.MIN_SIZE, "rfdn": rfdn.MIN_SIZE}[arch]
    x = torch.rand(1, 3, minimum, minimum)
    with torch.no_grad():
        assert _official_forward(model, x).shape == (1, 3, 2 * minimum, 2 * minimum)
        with pytest.raises(RuntimeError):  # what the official code does one pixel lower
            _official_forward(model, x[..., : minimum - 1, :])


@pytest.mark.parametrize("arch", sorted(SMALL))
@pytest.mark.parametrize("size", [(1, 1), (7, 7), (14, 14), (15, 15), (1, 40), (14, 23)])
def test_tiny_inputs_run_and_equal_the_padded_formula(arch: str, size: tuple[int, int]) -> None:
    """Any input of at least 1x1 runs; below 15 px the result is the official formula on the
    edge-replicated input (bottom/right), cropped to the input's footprint."""
    h, w = size
    model = _random(build_arch(arch, scale=3, **SMALL[arch]))
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h * 100 + w))
    with torch.no_grad():
        y = model(x)
        padded = F.pad(x, (0, max(0, 15 - w), 0, max(0, 15 - h)), mode="replicate")
        want = _official_forward(model, padded)[..., : 3 * h, : 3 * w]
    assert y.shape == (2, 3, 3 * h, 3 * w) and bool(torch.isfinite(y).all())
    assert torch.equal(y, want)


@pytest.mark.parametrize("arch", sorted(SMALL))
@pytest.mark.parametrize("size", [(48, 48), (15, 37), (53, 16)])
def test_normal_sizes_are_bit_identical_to_the_official_formula(
    arch: str, size: tuple[int, int]
) -> None:
    model = _random(build_arch(arch, scale=4, **SMALL[arch]))
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), _official_forward(model, x))


@pytest.mark.parametrize("file", CHECKPOINTS)
def test_public_checkpoints_unchanged_at_48_and_run_at_1x1(file: str) -> None:
    model, found = load_checkpoint(need_shared("weights", "baselines", file))
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), _official_forward(model, x))
        for side in (1, 7, 14):
            y = model(x[..., :side, :side])
            assert y.shape == (1, 3, side * found.scale, side * found.scale)
            assert bool(torch.isfinite(y).all())
            assert 0.0 <= float(y.mean()) <= 1.0  # an image, not garbage: [0, 1] in, ~[0, 1] out
