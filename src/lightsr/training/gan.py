"""Adversarial training pieces of Real-ESRGAN: the U-Net discriminator with spectral
normalisation and the GAN losses.

Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data",
ICCVW 2021, Sec. 3.3 ("U-Net discriminator with spectral normalization"). The discriminator
gives one logit per pixel (a realness map the size of its input) instead of one per image, so it
judges local textures; spectral normalisation (Miyato et al., ICLR 2018) keeps it stable against
the harder, degraded inputs. The layers follow the paper's Fig. 6 and its public
``UNetDiscriminatorSN`` (module names ``conv0`` ... ``conv9`` as in its checkpoints, so a
Real-ESRGAN ``net_d`` state dict loads with ``strict=True``):

    conv0   3 -> F, 3x3                          (no SN), leaky ReLU 0.2
    conv1-3 F -> 2F -> 4F -> 8F, 4x4 stride 2     (SN, no bias), leaky ReLU      H -> H/8
    conv4-6 8F -> 4F -> 2F -> F, 3x3 after a bilinear x2 upsample, + the encoder feature of
            the same size (U-Net skip)           (SN, no bias), leaky ReLU      H/8 -> H
    conv7-8 F -> F, 3x3                          (SN, no bias), leaky ReLU
    conv9   F -> 1, 3x3                          (no SN): the per-pixel logit

Size rule: the input's height and width must be multiples of 8 (three stride-2 halvings are
undone by three doublings and the skips add tensors of equal size); with a scale-4 model any LR
patch side works, with scale 2 the LR side must be a multiple of 4.

Losses as BasicSR's ``GANLoss`` (Real-ESRGAN uses ``vanilla``: binary cross-entropy on logits,
real label 1, fake label 0, generator weight 0.1): :func:`discriminator_loss` and
:func:`generator_loss`, plus ``lsgan`` (mean squared error to the labels) and ``hinge``
(``relu(1 - real) + relu(1 + fake)`` for the discriminator, ``-fake`` for the generator).
All are means over every logit, computed in float32.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

__all__ = [
    "GAN_TYPES",
    "UNetDiscriminatorSN",
    "discriminator_loss",
    "generator_loss",
]

GanType = Literal["vanilla", "lsgan", "hinge"]
#: The adversarial losses :func:`discriminator_loss` and :func:`generator_loss` know.
GAN_TYPES: tuple[str, ...] = ("vanilla", "lsgan", "hinge")


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral normalisation (see the module docstring).

    Args:
        in_channels: image channels (3 for RGB).
        num_feat: channels ``F`` of the first and last layers (the bottleneck has ``8F``).
        skip_connection: add the encoder features to the decoder's (the U-Net skips).
    """

    def __init__(self, *, in_channels: int = 3, num_feat: int = 64, skip_connection: bool = True):
        super().__init__()
        f = num_feat
        self.skip_connection = skip_connection

        def sn_conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Module:
            return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, 1, bias=False))

        self.conv0 = nn.Conv2d(in_channels, f, 3, 1, 1)
        self.conv1 = sn_conv(f, 2 * f, 4, 2)  # H/2
        self.conv2 = sn_conv(2 * f, 4 * f, 4, 2)  # H/4
        self.conv3 = sn_conv(4 * f, 8 * f, 4, 2)  # H/8
        self.conv4 = sn_conv(8 * f, 4 * f, 3, 1)  # after x2: H/4
        self.conv5 = sn_conv(4 * f, 2 * f, 3, 1)  # H/2
        self.conv6 = sn_conv(2 * f, f, 3, 1)  # H
        self.conv7 = sn_conv(f, f, 3, 1)
        self.conv8 = sn_conv(f, f, 3, 1)
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` images (H, W multiples of 8) -> ``(B, 1, H, W)`` realness logits."""
        h, w = x.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"UNetDiscriminatorSN: input {h}x{w} is not a multiple of 8")
        x0 = _act(self.conv0(x))
        x1 = _act(self.conv1(x0))
        x2 = _act(self.conv2(x1))
        x3 = _act(self.conv3(x2))
        x4 = _act(self.conv4(_up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = _act(self.conv5(_up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = _act(self.conv6(_up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = _act(self.conv7(x6))
        out = _act(self.conv8(out))
        return self.conv9(out)


def _act(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with slope 0.2, as every layer of the discriminator but the last."""
    return F.leaky_relu(x, 0.2)


def _up(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling (``align_corners=False``), the decoder's step."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, kind: GanType) -> torch.Tensor:
    """The discriminator's loss on its logits for real and for (detached) fake images:
    ``vanilla``: ``BCE(real, 1) + BCE(fake, 0)``; ``lsgan``: ``MSE(real, 1) + MSE(fake, 0)``;
    ``hinge``: ``mean(relu(1 - real)) + mean(relu(1 + fake))``. Float32, unweighted (BasicSR
    applies no weight to the discriminator's loss)."""
    real, fake = real.float(), fake.float()
    if kind == "vanilla":
        bce = F.binary_cross_entropy_with_logits
        return bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    if kind == "lsgan":
        return F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake))
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    raise ValueError(f"unknown GAN type {kind!r}; expected one of {', '.join(GAN_TYPES)}")


def generator_loss(fake: torch.Tensor, kind: GanType) -> torch.Tensor:
    """The generator's adversarial loss on the discriminator's logits for its outputs
    (unweighted; the caller multiplies by ``gan.weight``): ``vanilla``: ``BCE(fake, 1)``;
    ``lsgan``: ``MSE(fake, 1)``; ``hinge``: ``-mean(fake)``. Float32."""
    fake = fake.float()
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "lsgan":
        return F.mse_loss(fake, torch.ones_like(fake))
    if kind == "hinge":
        return -fake.mean()
    raise ValueError(f"unknown GAN type {kind!r}; expected one of {', '.join(GAN_TYPES)}")
