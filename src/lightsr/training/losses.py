"""Training losses of SAFMN: pixel L1 and the FFT loss, as the official code defines them.

SAFMN trains with ``L = L1(SR, HR) + 0.05 * FFT(SR, HR)`` (paper Sec. 4.1, Eq. 7). The FFT loss
follows the official repository (``basicsr/losses/losses.py``, class ``FFTLoss``, in
github.com/sunny2109/SAFMN):

    pred_fft = torch.fft.rfft2(pred)          # last two dims, norm="backward" (unnormalised)
    target_fft = torch.fft.rfft2(target)
    pred_fft = torch.stack([pred_fft.real, pred_fft.imag], dim=-1)
    target_fft = torch.stack([target_fft.real, target_fft.imag], dim=-1)
    loss = L1Loss(reduction="mean")(pred_fft, target_fft)

Note the *real* FFT: ``rfft2`` keeps ``W // 2 + 1`` frequency columns, so the mean runs over
``B * C * H * (W // 2 + 1) * 2`` values. Other BasicSR forks (and the "FFT loss" of several
deblurring papers) use the full ``fft2``, whose mean over ``W`` columns also counts the
conjugate-symmetric half and gives a different value (and a different effective weight); we
follow the official SAFMN code. The transform is unnormalised, so for noise-like errors the FFT
loss is about ``sqrt(H * W)`` times the pixel L1; the recipe's 0.05 weight is tuned to that.

Both losses are computed in float32 (autocast outputs are cast up first): ``rfft2`` has no
bfloat16 kernel on the CPU and half-precision spectra of 256x256 patches lose accuracy.

Real-world training (Real-ESRGAN, Wang et al. 2021) adds two optional terms here:

- :class:`PerceptualLoss`: L1 between VGG19 features of SR and HR (Johnson et al. 2016), as
  Real-ESRGAN's recipe sets it: features *before* the ReLU of conv1_2, conv2_2, conv3_4,
  conv4_4 and conv5_4 with weights 0.1, 0.1, 1, 1, 1, inputs in [0, 1] normalised with the
  ImageNet mean and std. Pretrained VGG weights cannot be downloaded here, so the user supplies
  them: a state dict with torchvision's key names (``features.N.weight`` / ``features.N.bias``,
  as ``torchvision.models.vgg19(weights="IMAGENET1K_V1").state_dict()`` saves them; extra keys
  such as ``classifier.*`` are ignored). :class:`VGG19Features` is lightsr's own copy of the
  convolutional part, with the same indices so those keys load.
- :func:`distill_loss`: L1 between the student's output and a frozen teacher's output on the
  same LR input (knowledge distillation from a larger model).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.errors import LightSRError

__all__ = [
    "PERCEPTUAL_LAYERS",
    "PerceptualLoss",
    "VGG19Features",
    "distill_loss",
    "fft_loss",
    "l1_loss",
    "l2_loss",
    "load_perceptual",
    "sr_loss",
]


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements (float32)."""
    return F.l1_loss(pred.float(), target.float())


def l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements (float32): the loss whose minimum is PSNR's
    maximum; efficient-SR entries to the NTIRE challenges fine-tune with it last."""
    return F.mse_loss(pred.float(), target.float())


def fft_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The official SAFMN FFT loss: mean L1 between the real and imaginary parts of
    ``torch.fft.rfft2`` of ``pred`` and ``target`` (``(..., H, W)`` tensors, float32)."""
    p = torch.view_as_real(torch.fft.rfft2(pred.float()))  # (..., H, W // 2 + 1, 2)
    t = torch.view_as_real(torch.fft.rfft2(target.float()))
    return F.l1_loss(p, t)


def sr_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    l1: float = 1.0,
    fft: float = 0.05,
    l2: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``l1 * L1 + fft * FFT + l2 * MSE``; returns the total and the unweighted parts
    (detached).

    A part whose weight is 0 is not computed.
    """
    parts: dict[str, torch.Tensor] = {}
    total = pred.new_zeros((), dtype=torch.float32)
    if l1:
        parts["l1"] = l1_loss(pred, target)
        total = total + l1 * parts["l1"]
    if fft:
        parts["fft"] = fft_loss(pred, target)
        total = total + fft * parts["fft"]
    if l2:
        parts["l2"] = l2_loss(pred, target)
        total = total + l2 * parts["l2"]
    return total, {k: v.detach() for k, v in parts.items()}


def distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Knowledge distillation: mean L1 between the student's and the (detached) teacher's
    outputs for the same LR input (float32)."""
    return F.l1_loss(student.float(), teacher.detach().float())


# --------------------------------------------------------------------------------------------
# Perceptual loss (VGG19 features)

#: VGG19's convolutional layers (configuration "E" of Simonyan & Zisserman): output channels,
#: "M" for a 2x2 max-pool. Five blocks of 2, 2, 4, 4, 4 convolutions.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M")
_VGG19 += (512, 512, 512, 512)

#: Real-ESRGAN's perceptual layers and weights; the index is the conv's position in
#: torchvision's ``vgg19().features`` (the feature is taken before its ReLU).
PERCEPTUAL_LAYERS: dict[str, tuple[int, float]] = {
    "conv1_2": (2, 0.1),
    "conv2_2": (7, 0.1),
    "conv3_4": (16, 1.0),
    "conv4_4": (25, 1.0),
    "conv5_4": (34, 1.0),
}

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """VGG19's convolutional layers up to conv5_4, indexed as torchvision's ``features``
    (``features.0`` = conv1_1, ``features.34`` = conv5_4), returning the pre-ReLU outputs of the
    requested layers. Inputs are ImageNet-normalised tensors ``(B, 3, H, W)``.

    Args:
        layers: ``features`` indices of convolutions whose outputs to return, in order.
    """

    def __init__(self, *, layers: tuple[int, ...]) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        cin = 3
        for v in _VGG19:
            if v == "M":
                mods.append(nn.MaxPool2d(2, 2))
            else:
                mods += [nn.Conv2d(cin, int(v), 3, 1, 1), nn.ReLU(inplace=False)]
                cin = int(v)
        self.layers = tuple(sorted(layers))
        self.features = nn.Sequential(*mods[: self.layers[-1] + 1])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The pre-ReLU features of ``layers``, shallowest first."""
        out = []
        for i, mod in enumerate(self.features):
            x = mod(x)
            if i in self.layers:
                out.append(x)
        return out


class PerceptualLoss(nn.Module):
    """``sum_k w_k * L1(phi_k(SR), phi_k(HR))`` over :data:`PERCEPTUAL_LAYERS` (Real-ESRGAN's
    ``PerceptualLoss`` with ``vgg19``, ``use_input_norm``, pre-ReLU features, L1 criterion).

    The VGG is frozen (eval mode, no gradients for its weights); gradients flow to the SR image.
    Features may be computed under autocast; the L1 is float32.

    Args:
        weights: a VGG19 state dict with torchvision key names (see the module docstring).
    """

    def __init__(self, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        idx = tuple(i for i, _ in PERCEPTUAL_LAYERS.values())
        self.layer_weights = tuple(w for _, w in PERCEPTUAL_LAYERS.values())
        self.vgg = VGG19Features(layers=idx)
        own = self.vgg.state_dict()
        missing = [k for k in own if k not in weights]
        wrong = [k for k in own if k in weights and tuple(weights[k].shape) != own[k].shape]
        if missing or wrong:
            what = f"missing {', '.join(missing[:4])}" if missing else f"shape of {wrong[0]}"
            raise ValueError(f"not a VGG19 state dict with torchvision keys ({what})")
        self.vgg.load_state_dict({k: weights[k] for k in own})
        self.vgg.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted feature L1 of ``pred`` against ``target`` (``(B, 3, H, W)`` in [0, 1])."""
        with torch.no_grad():
            want = self.vgg((target.to(self.mean.dtype) - self.mean) / self.std)
        got = self.vgg((pred.to(self.mean.dtype) - self.mean) / self.std)
        total = pred.new_zeros((), dtype=torch.float32)
        for w, g, t in zip(self.layer_weights, got, want, strict=True):
            total = total + w * F.l1_loss(g.float(), t.float())
        return total


def load_perceptual(path: str | os.PathLike[str]) -> PerceptualLoss:
    """A :class:`PerceptualLoss` with the VGG19 weights of ``path`` (``.pth``/``.pt`` state
    dict, optionally under a ``state_dict`` key, or ``.safetensors``).

    Raises:
        LightSRError: a missing or unreadable file, or one without VGG19 feature weights; the
            message names ``loss.perceptual_weights``.
    """
    p = Path(path)
    flag = "loss.perceptual_weights"
    if not p.is_file():
        raise LightSRError(f"{flag}: {p} does not exist; give a VGG19 state dict file")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(p, map_location="cpu", weights_only=True)
            if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
                sd = sd["state_dict"]
        if not isinstance(sd, dict):
            raise ValueError("not a state dict")
        return PerceptualLoss(sd)
    except Exception as exc:  # torch.load raises many types for bad files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise LightSRError(
            f"{flag}: {p} is not a VGG19 state dict with torchvision keys features.N.weight/bias "
            f"({first})"
        ) from exc
