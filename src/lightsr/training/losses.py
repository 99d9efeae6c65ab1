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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["fft_loss", "l1_loss", "sr_loss"]


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements (float32)."""
    return F.l1_loss(pred.float(), target.float())


def fft_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The official SAFMN FFT loss: mean L1 between the real and imaginary parts of
    ``torch.fft.rfft2`` of ``pred`` and ``target`` (``(..., H, W)`` tensors, float32)."""
    p = torch.view_as_real(torch.fft.rfft2(pred.float()))  # (..., H, W // 2 + 1, 2)
    t = torch.view_as_real(torch.fft.rfft2(target.float()))
    return F.l1_loss(p, t)


def sr_loss(
    pred: torch.Tensor, target: torch.Tensor, *, l1: float = 1.0, fft: float = 0.05
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``l1 * L1 + fft * FFT``; returns the total and the unweighted parts (detached).

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
    return total, {k: v.detach() for k, v in parts.items()}
