"""SPAN: Swift Parameter-free Attention Network (NTIRE 2024 efficient-SR winner), and DSCF.

Paper: C. Wan, H. Yu, Z. Li, Y. Chen, Y. Zou, Y. Liu, X. Yin, K. Zuo, "Swift Parameter-free
Attention Network for Efficient Super-Resolution", CVPR 2024 Workshops (NTIRE 2024 efficient SR
challenge, first place). DSCF / DSCLoRA (NTIRE 2025 winner) is a SPAN with 26 channels
distilled from a larger SPAN with LoRA; at inference it is exactly this network.

Sec. 3 (Fig. 2): the input minus the DIV2K mean, times 255 (the output is not scaled back: the
network learned to emit [0, 1]); a 3x3 conv to ``feature_channels``; six SPABs, each three 3x3
convs (SiLU between them) whose output ``o`` gives the parameter-free attention
``(o + x) * (sigmoid(o) - 0.5)`` (Eq. 3-4); a 3x3 conv of the last block's output; a 1x1 conv
of the concatenation [first features, that conv, block 1's output, block 6's first conv
(after its SiLU)]; a 3x3 conv + PixelShuffle.

Every 3x3 conv except the upsampler's is a ``Conv3XC`` (Sec. 3.3): in training, a 1x1 skip
plus a 1x1 -> 3x3 (no padding; the input is zero-padded first) -> 1x1 chain with twice the
channels inside; for inference the branches collapse into one 3x3 conv ``eval_conv``. The
public challenge checkpoints keep only ``eval_conv`` (the inference form, built with
``training_form=False``); training checkpoints (and spandrel's SPAN) hold the branches as well
(``training_form=True``), and :func:`reparameterise` turns those into the inference form.

Sub-module names follow the official checkpoints (``conv_1``, ``block_{i}.c{1,2,3}_r``,
``conv_cat``, ``conv_2``, ``upsampler.0``, each ``Conv3XC``'s ``eval_conv`` / ``sk`` /
``conv.{0,1,2}``; ``no_norm``: a marker buffer of checkpoints trained without the mean shift).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict, fold_branches

__all__ = ["ARCH", "SPAB", "SPAN", "Conv3XC", "reparameterise"]

#: The DIV2K RGB mean the official code subtracts (``rgb_mean``).
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class Conv3XC(nn.Module):
    """A 3x3 convolution, optionally with its training-time branches (Sec. 3.3).

    Args:
        c_in: input channels.
        c_out: output channels.
        kernel_size: the inference kernel (3; ESPAN's first conv is 9x9, inference only).
        training_form: keep the branches (``sk``: 1x1; ``conv``: 1x1 -> 3x3 -> 1x1 with
            ``gain`` times the channels inside) and run through them; ``eval_conv`` is then
            their fused copy, refreshed by :meth:`fuse_`.
        gain: channel multiplier inside the training chain (2 in SPAN).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        *,
        kernel_size: int = 3,
        training_form: bool = False,
        gain: int = 2,
    ) -> None:
        super().__init__()
        if training_form and kernel_size != 3:
            raise ValueError("Conv3XC: the training form exists for 3x3 kernels only")
        self.training_form = training_form
        if training_form:
            self.sk = nn.Conv2d(c_in, c_out, 1)
            self.conv = nn.Sequential(
                nn.Conv2d(c_in, c_in * gain, 1),
                nn.Conv2d(c_in * gain, c_out * gain, 3),  # no padding: the input is padded
                nn.Conv2d(c_out * gain, c_out, 1),
            )
        self.eval_conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training_form:
            return self.eval_conv(x)
        return self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)

    @torch.no_grad()
    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The one 3x3 kernel and bias equal to the training branches (or ``eval_conv``'s).

        The chain is linear: kernel ``W3 @ W2 @ W1`` per tap. The zero padding is applied
        before the first 1x1 conv, so its bias reaches every tap of the 3x3 conv: bias
        ``W3 (sum_taps W2 . b1 + b2) + b3``. The 1x1 skip is the centre tap.
        """
        if not self.training_form:
            return self.eval_conv.weight.detach().clone(), self.eval_conv.bias.detach().clone()
        c1, c2, c3 = self.conv
        w1, w3 = c1.weight[:, :, 0, 0], c3.weight[:, :, 0, 0]
        weight = torch.einsum("om,mnhw,ni->oihw", w3, c2.weight, w1)
        bias = w3 @ (c2.weight.sum((2, 3)) @ c1.bias + c2.bias) + c3.bias
        weight = weight + F.pad(self.sk.weight, (1, 1, 1, 1))
        return weight.contiguous(), bias + self.sk.bias

    @torch.no_grad()
    def fuse_(self) -> None:
        """Write the fused branches into ``eval_conv`` (the training form keeps it in sync)."""
        weight, bias = self.fused()
        self.eval_conv.weight.copy_(weight)
        self.eval_conv.bias.copy_(bias)


class SPAB(nn.Module):
    """Swift parameter-free attention block (Sec. 3.2, Fig. 2).

    Args:
        c_in: input channels; ``channels``: the block's width (= output channels).
        attention: the parameter-free attention ``(o + x) * (sigmoid(o) - 0.5)``; False for
            a block that changes the width (SPAN-F's first block), which returns ``o``.
        training_form, gain, kernel_size: see :class:`Conv3XC`.

    ``forward`` returns the block's output and its first conv's activated output: the
    official code applies ``SiLU(inplace=True)`` to that tensor, so what SPAN concatenates
    from block 6 is ``SiLU(c1_r(x))``, not the raw conv output.
    """

    def __init__(
        self,
        c_in: int,
        channels: int,
        *,
        attention: bool = True,
        training_form: bool = False,
        gain: int = 2,
    ) -> None:
        super().__init__()
        if attention and c_in != channels:
            raise ValueError("SPAB: the attention adds the input, so c_in must equal channels")
        self.attention = attention
        opts = {"training_form": training_form, "gain": gain}
        self.c1_r = Conv3XC(c_in, channels, **opts)
        self.c2_r = Conv3XC(channels, channels, **opts)
        self.c3_r = Conv3XC(channels, channels, **opts)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out1 = F.silu(self.c1_r(x))
        out3 = self.c3_r(F.silu(self.c2_r(out1)))
        if not self.attention:
            return out3, out1
        return (out3 + x) * (torch.sigmoid(out3) - 0.5), out1  # Eq. 3-4


class SPAN(nn.Module):
    """The SPAN network (and DSCF, the same network with 26 channels).

    Args:
        feature_channels: width (48 in the paper; 28 in the NTIRE 2024 entry, 26 in DSCF).
        upscaling_factor: output scale.
        norm: subtract the DIV2K mean and scale by 255 at the input (the official default);
            False for checkpoints trained without it (they carry a ``no_norm`` buffer).
        training_form: keep the re-parameterisable branches (see :class:`Conv3XC`).
        gain: channel multiplier of the training branches (2).
    """

    #: Its forward exports to ONNX exactly with dynamic shapes, at any size.
    onnx_size_multiple = 1

    def __init__(
        self,
        *,
        feature_channels: int = 48,
        upscaling_factor: int = 4,
        norm: bool = True,
        training_form: bool = False,
        gain: int = 2,
    ) -> None:
        super().__init__()
        if upscaling_factor < 1:
            raise ValueError(f"SPAN: upscaling_factor must be >= 1, got {upscaling_factor}")
        self.scale = upscaling_factor
        self.norm = norm
        self.training_form = training_form
        self.register_buffer("mean", torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1), persistent=False)
        if not norm:  # the marker the official code (and spandrel) stores
            self.register_buffer("no_norm", torch.zeros(1))
        c = feature_channels
        opts = {"training_form": training_form, "gain": gain}
        self.conv_1 = Conv3XC(3, c, **opts)
        for i in range(1, 7):
            self.add_module(f"block_{i}", SPAB(c, c, **opts))
        self.conv_cat = nn.Conv2d(4 * c, c, 1)
        self.conv_2 = Conv3XC(c, c, **opts)
        self.upsampler = nn.Sequential(
            nn.Conv2d(c, 3 * upscaling_factor**2, 3, padding=1), nn.PixelShuffle(upscaling_factor)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm:
            x = (x - self.mean.to(x.dtype)) * 255.0
        feat = self.conv_1(x)
        out_b1, _ = self.block_1(feat)
        out = out_b1
        for i in range(2, 6):
            out, _ = getattr(self, f"block_{i}")(out)
        out_b6, out_b6_c1 = self.block_6(out)
        out = self.conv_cat(torch.cat([feat, self.conv_2(out_b6), out_b1, out_b6_c1], dim=1))
        return self.upsampler(out)


@torch.no_grad()
def reparameterise(model: SPAN) -> SPAN:
    """The inference form of a training-form SPAN: every ``Conv3XC`` collapsed into its one
    3x3 conv (same function up to float rounding). An inference-form model is copied."""
    like = next(model.parameters())
    fused = SPAN(
        feature_channels=model.conv_cat.out_channels,
        upscaling_factor=model.scale,
        norm=model.norm,
    ).to(device=like.device, dtype=like.dtype)
    return fold_branches(model, fused, Conv3XC, "eval_conv")


def detect(sd: StateDict) -> Detected | None:
    """SPAN / DSCF: ``conv_1.eval_conv`` (3x3) + six SPABs + ``conv_cat`` + ``upsampler.0``.
    The training form adds ``conv_1.sk`` and the ``conv.{0,1,2}`` chains. Never SPAN-F (no
    ``conv_1``; ``conv_near``), ESPAN (``tea_conv_cat``) or RLFN (``block_1.c1_r.weight``)."""
    needed = ("conv_1.eval_conv.weight", "block_6.c3_r.eval_conv.weight", "conv_cat.weight")
    if not base.has_keys(sd, *needed, "conv_2.eval_conv.weight", "upsampler.0.weight"):
        return None
    if "block_7.c1_r.eval_conv.weight" in sd or sd["conv_1.eval_conv.weight"].shape[-1] != 3:
        return None
    c, c_in = sd["conv_1.eval_conv.weight"].shape[:2]
    scale = base.pixelshuffle_scale(sd["upsampler.0.weight"].shape[0])
    if scale is None or c_in != 3 or sd["conv_cat.weight"].shape[1] != 4 * c:
        return None
    config: dict[str, object] = {"feature_channels": c}
    if "no_norm" in sd:
        config["norm"] = False
    if "conv_1.sk.weight" in sd:
        config["training_form"] = True
        gain = sd["conv_1.conv.0.weight"].shape[0] // c_in
        if gain != 2:
            config["gain"] = gain
    return Detected("span", config, scale)


ARCH = ArchDescriptor(name="span", build=SPAN, detect=detect, scales=(2, 3, 4), supports_fp16=False)
