"""EFDN: Edge-enhanced Feature Distillation Network (the NTIRE 2025 efficient-SR baseline).

Paper: Y. Wang, "Edge-enhanced Feature Distillation Network for Efficient Super-Resolution",
CVPR 2022 Workshops (NTIRE 2022 efficient SR challenge); the NTIRE 2025 challenge used it as its
baseline. Each edge-enhanced diverse branch block (EDBB, Sec. 3.2) is a sum of parallel
branches followed by a PReLU; the branches are linear, so for inference they collapse into the
one 3x3 conv ``rep_conv`` that the public checkpoint stores (the deployed form, the default).

The training form (``training_form=True``; the official ``EDBB`` of ``models/unitv2.py``, state
dict keys as there) keeps the branches beside ``rep_conv`` (itself the 3x3 branch):
``conv1x1`` (a 1x1 conv); ``conv1x1_sbx``, ``conv1x1_sby``, ``conv1x1_lpl`` (a 1x1 conv
``k0``/``b0``, then a fixed Sobel-x, Sobel-y or Laplacian filter ``mask`` per channel, times a
learned per-channel ``scale``, plus ``bias``); ``conv1x1_3x3`` (a 1x1 conv to ``mid_channels``
then a 3x3 conv, ``k0``/``b0``/``k1``/``b1``), which the official default leaves out of the sum
(``with_13``) although its tensors are in every training checkpoint (lightsr freezes them
then: they get no gradient either way, and DDP refuses unused parameters); and the identity
(``with_idt``, off by default). No branch has batch normalisation (the EDBB follows ECBSR's
plain sequential convs, not DBB's conv+BN pairs). The 1x1 convs before a 3x3 filter see the
zero-padded input, so at the border the 3x3 filter sees their bias (the official code pads
their output with it): every branch is then exactly a 3x3 conv with zero padding 1, and
:func:`reparameterise` sums them into ``rep_conv``. A state dict cannot tell whether
``with_13``/``with_idt`` were on: the detector assumes the official defaults (off), and
lightsr's own ``.safetensors`` carry the configuration in their metadata. The official
``gv`` mode (a partial fold) is not supported.

Structure (Sec. 3, Fig. 2): a 3x3 conv to ``n_feats``; four edge-enhanced feature distillation
blocks (EFDB, ``cells``): a 1x1 conv + PReLU, two EDBBs, four 1x1 "distillation" convs (to
``n_feats / 2``) of the block input and of the three intermediate outputs, a 1x1 fusion of
their concatenation, an enhanced spatial attention (ESA, with RFANet's ``conv_max`` and
``conv3_`` and ReLUs) and a residual; the blocks are chained with 1x1 fusions of pairs of block
outputs (``local_fuse``: [1, 2] -> 3, [2, 3] -> 4, [2, 4] -> out); a global residual; a 3x3
conv + PixelShuffle; the output is clamped to [0, 1] inside the network.

The ESA's strided conv and 7x7/3 max pooling need inputs of at least 15x15 pixels: smaller
inputs are padded by edge replication inside and the output cropped. Sub-module names follow
the checkpoint (``head``, ``cells.{i}.conv1.conv1x1/act``, ``cells.{i}.conv{2,3}.rep_conv/act``,
``cells.{i}.branch.{j}``, ``cells.{i}.fuse``, ``cells.{i}.att.*``, ``local_fuse.{j}``,
``tail.0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict, fold_branches

from ._blocks import pad_to_min_size, pixelshuffle_upsampler

__all__ = ["ARCH", "EDGE_FILTERS", "EFDN", "MIN_SIZE", "reparameterise"]

#: The smallest side the ESA runs on (a 3x3/2 conv, then a 7x7/3 max pooling).
MIN_SIZE = 15

#: The fixed 3x3 filters of the EDBB's edge branches (Sec. 3.2), as the official code
#: writes them into each branch's ``mask`` (applied as a cross-correlation, like any conv).
EDGE_FILTERS: dict[str, tuple[tuple[float, ...], ...]] = {
    "sbx": ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0)),  # Sobel, x
    "sby": ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0)),  # Sobel, y
    "lpl": ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0)),  # Laplacian
}


class _ESA(nn.Module):
    """Enhanced spatial attention (RFANet's, as EFDN uses it): reduction to ``n_feats / 4``."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        f = n_feats // 4
        self.conv1 = nn.Conv2d(n_feats, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2)
        self.conv_max = nn.Conv2d(f, f, 3, padding=1)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv3_ = nn.Conv2d(f, f, 3, padding=1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        v = F.max_pool2d(self.conv2(c1_), kernel_size=7, stride=3)
        c3 = self.conv3_(F.relu(self.conv3(F.relu(self.conv_max(v)))))
        c3 = F.interpolate(c3, x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))


class _Conv1x1(nn.Module):
    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(n_feats, n_feats, 1)
        self.act = nn.PReLU(n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv1x1(x))


def _conv_params(c_out: int, c_in: int, k: int) -> tuple[nn.Parameter, nn.Parameter]:
    """A conv's weight and bias with PyTorch's default init (as the official branches have)."""
    conv = nn.Conv2d(c_in, c_out, k)
    return conv.weight, conv.bias  # type: ignore[return-value]


class _Conv1x1Conv3x3(nn.Module):
    """Training branch: a 1x1 conv to ``mid`` channels (``k0``, ``b0``), then a 3x3 conv
    without padding (``k1``, ``b1``) on its output over the zero-padded input."""

    def __init__(self, n_feats: int, mid: int) -> None:
        super().__init__()
        self.k0, self.b0 = _conv_params(mid, n_feats, 1)
        self.k1, self.b1 = _conv_params(n_feats, mid, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(F.pad(x, (1, 1, 1, 1)), self.k0, self.b0), self.k1, self.b1)

    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernel ``k1 . k0`` per tap; bias ``b1 + sum over taps of k1 . b0`` (the 1x1 bias
        reaches every tap, the border included)."""
        weight = torch.einsum("omhw,mi->oihw", self.k1, self.k0[:, :, 0, 0])
        return weight, self.b1 + torch.einsum("omhw,m->o", self.k1, self.b0)


class _Conv1x1Edge(nn.Module):
    """Training branch: a 1x1 conv (``k0``, ``b0``) over the zero-padded input, then per
    channel the fixed filter ``mask`` times a learned ``scale``, plus ``bias`` (Sec. 3.2)."""

    def __init__(self, n_feats: int, kind: str) -> None:
        super().__init__()
        self.k0, self.b0 = _conv_params(n_feats, n_feats, 1)
        self.scale = nn.Parameter(torch.randn(n_feats, 1, 1, 1) * 1e-3)  # the official init
        self.bias = nn.Parameter(torch.randn(n_feats) * 1e-3)
        mask = torch.tensor(EDGE_FILTERS[kind]).expand(n_feats, 1, 3, 3).clone()
        self.register_buffer("mask", mask)  # fixed (a frozen Parameter in the official code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(F.pad(x, (1, 1, 1, 1)), self.k0, self.b0)
        return F.conv2d(y, self.scale * self.mask, self.bias, groups=y.shape[1])

    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernel ``W[o, i] = scale[o] mask[o] k0[o, i]``; bias ``bias + sum(scale mask) b0``."""
        depthwise = (self.scale * self.mask)[:, 0]  # (C, 3, 3)
        weight = depthwise[:, None] * self.k0  # (C, 1, 3, 3) * (C, C, 1, 1) -> (C, C, 3, 3)
        return weight, self.bias + depthwise.sum((1, 2)) * self.b0


@dataclass(frozen=True)
class _EDBBForm:
    """Which branches every EDBB of a network keeps and sums (the :class:`EFDN` arguments of
    the same names; see there)."""

    training_form: bool
    mid_channels: int | None
    with_13: bool
    with_idt: bool

    def __post_init__(self) -> None:
        branch_options = self.mid_channels is not None or self.with_13 or self.with_idt
        if branch_options and not self.training_form:
            raise ValueError(
                "EFDN: mid_channels, with_13 and with_idt describe the training form's "
                "branches; add training_form=True"
            )
        if self.mid_channels is not None and self.mid_channels < 1:
            raise ValueError(f"EFDN: mid_channels must be >= 1, got {self.mid_channels}")


class _EDBB(nn.Module):
    """Edge-enhanced diverse branch block: the sum of its branches, then PReLU.

    Args:
        n_feats: channels in and out.
        form: the branches kept (all, or only ``rep_conv``) and summed; the width inside
            ``conv1x1_3x3`` (None: ``n_feats``).
    """

    def __init__(self, n_feats: int, form: _EDBBForm) -> None:
        super().__init__()
        self.training_form = form.training_form
        self.with_13, self.with_idt = form.with_13, form.with_idt
        self.rep_conv = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        if form.training_form:
            self.conv1x1 = nn.Conv2d(n_feats, n_feats, 1)
            self.conv1x1_3x3 = _Conv1x1Conv3x3(n_feats, form.mid_channels or n_feats)
            if not form.with_13:  # kept for the official keys; frozen, so DDP finds no unused ones
                self.conv1x1_3x3.requires_grad_(False)
            self.conv1x1_sbx = _Conv1x1Edge(n_feats, "sbx")
            self.conv1x1_sby = _Conv1x1Edge(n_feats, "sby")
            self.conv1x1_lpl = _Conv1x1Edge(n_feats, "lpl")
        self.act = nn.PReLU(n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.rep_conv(x)
        if self.training_form:  # the official order of the sum
            y = y + self.conv1x1(x) + self.conv1x1_sbx(x) + self.conv1x1_sby(x)
            y = y + self.conv1x1_lpl(x)
            if self.with_idt:
                y = y + x
            if self.with_13:
                y = y + self.conv1x1_3x3(x)
        return self.act(y)

    @torch.no_grad()
    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The one 3x3 kernel and bias equal to the sum of the branches (``rep_conv``'s own in
        the deployed form); 1x1 kernels and the identity sit on the centre tap."""
        weight, bias = self.rep_conv.weight.clone(), self.rep_conv.bias.clone()
        if not self.training_form:
            return weight, bias
        weight[:, :, 1, 1] += self.conv1x1.weight[:, :, 0, 0]
        bias += self.conv1x1.bias
        branches = [self.conv1x1_sbx, self.conv1x1_sby, self.conv1x1_lpl]
        for branch in branches + ([self.conv1x1_3x3] if self.with_13 else []):
            w, b = branch.fused()
            weight += w
            bias += b
        if self.with_idt:
            weight[:, :, 1, 1] += torch.eye(weight.shape[0]).to(weight)
        return weight, bias


class _EFDB(nn.Module):
    """Edge-enhanced feature distillation block (Fig. 2)."""

    def __init__(self, n_feats: int, form: _EDBBForm) -> None:
        super().__init__()
        self.conv1 = _Conv1x1(n_feats)
        self.conv2 = _EDBB(n_feats, form)
        self.conv3 = _EDBB(n_feats, form)
        self.branch = nn.ModuleList(nn.Conv2d(n_feats, n_feats // 2, 1) for _ in range(4))
        self.fuse = nn.Conv2d(2 * n_feats, n_feats, 1)
        self.att = _ESA(n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(x)
        out2 = self.conv2(out1)
        out3 = self.conv3(out2)
        taps = [b(t) for b, t in zip(self.branch, (x, out1, out2, out3), strict=True)]
        return self.att(self.fuse(torch.cat(taps, dim=1))) + x


class EFDN(nn.Module):
    """The EFDN network.

    Args:
        n_feats: width (48).
        upscaling_factor: output scale.
        training_form: build the EDBBs with their branches (the official training network;
            :func:`reparameterise` folds it into the deployed form, the default).
        mid_channels: training form: width inside each EDBB's 1x1 -> 3x3 branch (None:
            ``n_feats``, the official ``depth_multiplier`` 1).
        with_13: training form: that branch is part of the sum (official default: off).
        with_idt: training form: the identity is part of the sum (official default: off).
    """

    #: Its forward exports to ONNX exactly with dynamic shapes, at any size of at least
    #: :data:`MIN_SIZE` (the graph has no inner padding).
    onnx_size_multiple = 1

    def __init__(
        self,
        *,
        n_feats: int = 48,
        upscaling_factor: int = 4,
        training_form: bool = False,
        mid_channels: int | None = None,
        with_13: bool = False,
        with_idt: bool = False,
    ) -> None:
        super().__init__()
        if upscaling_factor < 1 or n_feats % 4:
            raise ValueError("EFDN: upscaling_factor must be >= 1 and n_feats a multiple of 4")
        form = _EDBBForm(training_form, mid_channels, with_13, with_idt)  # checks them
        self.scale = upscaling_factor
        self.training_form = training_form
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.cells = nn.ModuleList(_EFDB(n_feats, form) for _ in range(4))
        self.local_fuse = nn.ModuleList(nn.Conv2d(2 * n_feats, n_feats, 1) for _ in range(3))
        self.tail = pixelshuffle_upsampler(n_feats, upscaling_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_min_size(x, MIN_SIZE)  # else the ESA's pooling would be empty
        out0 = self.head(x)
        out1 = self.cells[0](out0)
        out2 = self.cells[1](out1)
        out3 = self.cells[2](self.local_fuse[0](torch.cat([out1, out2], dim=1)))
        out4 = self.cells[3](self.local_fuse[1](torch.cat([out2, out3], dim=1)))
        out = self.local_fuse[2](torch.cat([out2, out4], dim=1)) + out0
        y = self.tail(out).clamp(0, 1)
        return y[..., : h * self.scale, : w * self.scale]


@torch.no_grad()
def reparameterise(model: EFDN) -> EFDN:
    """The deployed form of a training-form EFDN: every EDBB's branches summed into its
    ``rep_conv`` (the same function up to float rounding). A deployed model is copied."""
    like = next(model.parameters())
    fused = EFDN(n_feats=model.head.out_channels, upscaling_factor=model.scale)
    fused = fused.to(device=like.device, dtype=like.dtype)
    return fold_branches(model, fused, _EDBB, "rep_conv")


def detect(sd: StateDict) -> Detected | None:
    """EFDN: ``cells.N.conv2.rep_conv`` EDBBs, ``cells.N.conv1.conv1x1``, ``local_fuse`` and a
    ``tail``; the training form adds the EDBB branches (``conv1x1_sbx.k0`` and the others)."""
    needed = ("head.weight", "cells.0.conv2.rep_conv.weight", "local_fuse.0.weight")
    more = ("tail.0.weight", "cells.0.att.conv_max.weight", "cells.0.conv1.conv1x1.weight")
    if not base.has_keys(sd, *needed, *more):
        return None
    if base.count_indices(sd, r"cells\.(\d+)\.") != 4:
        return None
    scale = base.pixelshuffle_scale(sd["tail.0.weight"].shape[0])
    if scale is None:
        return None
    n_feats = sd["head.weight"].shape[0]
    config: dict[str, object] = {"n_feats": n_feats}
    if "cells.0.conv2.conv1x1_sbx.k0" in sd:
        config["training_form"] = True
        mid = sd["cells.0.conv2.conv1x1_3x3.k0"].shape[0]
        if mid != n_feats:
            config["mid_channels"] = mid
    return Detected("efdn", config, scale)


ARCH = ArchDescriptor(name="efdn", build=EFDN, detect=detect, scales=(2, 3, 4))
