"""UPS: Unified Projection Sharing for lightweight single-image super-resolution.

Paper: K. Zhou, X. Lin, Z. Liu, X. Han, J. Lu, "Unified Projection Sharing for Lightweight
Single-Image Super-resolution and Beyond", NeurIPS 2024. The authors released no code; this
module implements lightsr's specification (``docs/ups.md`` of the project's shared notes):

- the SwinIR-light skeleton (:class:`lightsr.models.archs.swinir.SwinIRSkeleton`);
- one learnable matrix ``W_u`` (C x d, d = 128) owned by the model — a single parameter — defines
  the unified projection space used by every attention layer to compute similarities; each layer
  keeps its own norms, MLP, output projection and relative position bias;
- similarity = cosine + ReLU: tokens are projected, split into heads and normalised to unit
  length; ``S = Pn Pn^T + B_l``; masked pairs (shifted windows) are zeroed; ``A = ReLU(S)`` with
  each row divided by its sum (+ eps). A temperature would cancel under this normalisation, so
  there is none;
- no value projection by default: V is the normalised input split into heads (``v_proj=True``
  adds a per-layer Linear(C, C)).

Options reproduce the paper's ablations: ``similarity`` in {cosine-relu, cosine-softmax, dot-relu,
dot-softmax}; ``proj_dim`` (8...256); ``v_proj``; ``shared_projection=False`` gives each layer its
own projection matrix (the coupled, per-layer baseline). Decisions not fixed by the paper (heads,
the cosine-softmax temperature, UPS-S sizes) are lightsr's and documented where they are made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models.base import ArchDescriptor, Detected, StateDict

from .swinir import (
    FIRST_LAYER,
    SwinIRSkeleton,
    WindowAttentionBase,
    gathered_bias,
    relative_position_index,
    swin_skeleton_config,
    window_attention,
)

__all__ = ["ARCH", "SIMILARITIES", "UPS", "UPSAttention", "detect"]

SIMILARITIES = ("cosine-relu", "cosine-softmax", "dot-relu", "dot-softmax")


class UPSAttention(WindowAttentionBase):
    """Window attention whose similarity is computed in a projection space given at call time.

    Args:
        dim: channels C.
        window_size: window side (N = ws^2 tokens).
        num_heads: heads h; C and the projection dimension must be divisible by h.
        proj_dim: projection dimension d (used for the per-layer projection and checks).
        similarity: one of :data:`SIMILARITIES`.
        v_proj: add a per-layer value projection Linear(C, C).
        own_projection: hold a per-layer (C, d) projection instead of using the shared one.
        eps: added to the row sums of ReLU attention.
    """

    def __init__(
        self,
        dim: int,
        *,
        window_size: int,
        num_heads: int,
        proj_dim: int,
        similarity: str = "cosine-relu",
        v_proj: bool = False,
        own_projection: bool = False,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if similarity not in SIMILARITIES:
            raise ValueError(f"UPS: similarity must be one of {SIMILARITIES}, got {similarity!r}")
        if dim % num_heads or proj_dim % num_heads:
            raise ValueError(
                f"UPS: embed_dim={dim} and proj_dim={proj_dim} must be divisible by "
                f"num_heads={num_heads}"
            )
        self.num_heads = num_heads
        self.similarity = similarity
        self.eps = eps
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer(
            "relative_position_index", relative_position_index(window_size), persistent=False
        )
        self.v = nn.Linear(dim, dim) if v_proj else None
        self.proj = nn.Linear(dim, dim)
        self.qk = nn.Parameter(_init_projection(dim, proj_dim)) if own_projection else None
        if similarity == "cosine-softmax":
            # Cosine similarities lie in [-1, 1]: softmax needs a temperature (D: learnable per
            # head, initialised to 10, as Swin V2's scaled cosine attention).
            self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))

    def attention_map(
        self, x: torch.Tensor, mask: torch.Tensor | None, shared: torch.Tensor | None
    ) -> torch.Tensor:
        """(B*nW, N, C) tokens -> (B*nW, heads, N, N) attention weights (rows sum to 1 or 0).

        The weights themselves, batched (for analysis and tests); :meth:`forward` does not form
        them but applies them to the values window chunk by window chunk.
        """
        bw, n, _ = x.shape
        eye = torch.eye(n, dtype=x.dtype, device=x.device).expand(bw, self.num_heads, n, n)
        q, k = self._queries_keys(x, shared)
        mask = None if mask is None else self.prepare_mask(mask)
        return self._attend(q, k, eye, mask, batched=True)

    def _queries_keys(
        self, x: torch.Tensor, shared: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Q (scaled) and K = P, the tokens in the unified projection space: (bw, h, N, d/h)."""
        w_u = self.qk if self.qk is not None else shared
        if w_u is None:
            raise RuntimeError("UPSAttention needs the model's shared projection")
        bw, n, _ = x.shape
        p = (x @ w_u).view(bw, n, self.num_heads, -1).transpose(1, 2)  # the shared space
        if self.similarity.startswith("cosine"):
            p = F.normalize(p, dim=-1)  # Q = K = the unified projection
        else:
            p = p.contiguous()
        if self.similarity == "cosine-softmax":
            return p * self.logit_scale.clamp(max=math.log(100.0)).exp(), p
        if self.similarity.startswith("dot"):
            return p * p.shape[-1] ** -0.5, p
        return p, p

    def _attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        *,
        batched: bool = False,
    ) -> torch.Tensor:
        """Rows of the similarity (bias added, masked pairs excluded) applied to v; ``mask`` as
        :meth:`prepare_mask` returns it."""
        relu_eps = None if self.similarity.endswith("softmax") else self.eps
        bias = gathered_bias(self)
        return window_attention(q, k, v, bias, mask, relu_eps=relu_eps, batched=batched)

    def windows(
        self, x: torch.Tensor, mask: torch.Tensor | None, shared: torch.Tensor | None = None
    ) -> torch.Tensor:
        bw, n, c = x.shape
        q, k = self._queries_keys(x, shared)
        v = (self.v(x) if self.v is not None else x).view(bw, n, self.num_heads, -1)
        y = self._attend(q, k, v.transpose(1, 2).contiguous(), mask)  # (bw, heads, N, C/heads)
        return self.proj(y.transpose(1, 2).reshape(bw, n, c))


def _init_projection(dim: int, proj_dim: int) -> torch.Tensor:
    w = torch.empty(dim, proj_dim)
    nn.init.trunc_normal_(w, std=0.02)
    return w


class UPS(SwinIRSkeleton):
    """UPS: SwinIR-light skeleton whose attention layers share one projection space.

    Args:
        embed_dim: channels C (60 for ``ups``; 48 for lightsr's ``ups-s``).
        depths: layers per residual group ((6, 6, 6, 6); ``ups-s``: (4, 4, 4, 4)).
        num_heads: heads (D: 4).
        window_size: window side (8).
        mlp_ratio: MLP ratio (2.0).
        proj_dim: dimension d of the unified projection space (128; ``ups-s``: 64).
        similarity: cosine-relu (default), cosine-softmax, dot-relu or dot-softmax.
        v_proj: per-layer value projection (off by default: the paper finds it unnecessary).
        shared_projection: True: one (C, d) parameter ``shared_proj`` for all layers; False: a
            projection per layer (``attn.qk``), the per-layer baseline of the ablation.
        upscaling_factor: 2, 3 or 4; 1 builds the restoration form (no upsampler, the input
            image added to the output; see :class:`~lightsr.models.archs.swinir.SwinIRSkeleton`).
        img_size: training patch size (sizes the stored shifted-window masks).
        drop_path_rate: stochastic depth during training.
    """

    def __init__(
        self,
        *,
        embed_dim: int = 60,
        depths: Sequence[int] = (6, 6, 6, 6),
        num_heads: int = 4,
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        proj_dim: int = 128,
        similarity: str = "cosine-relu",
        v_proj: bool = False,
        shared_projection: bool = True,
        upscaling_factor: int = 4,
        img_size: int = 64,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__(
            embed_dim=embed_dim,
            depths=depths,
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            upscaling_factor=upscaling_factor,
            img_size=img_size,
            drop_path_rate=drop_path_rate,
            make_attention=lambda _: UPSAttention(
                embed_dim,
                window_size=window_size,
                num_heads=num_heads,
                proj_dim=proj_dim,
                similarity=similarity,
                v_proj=v_proj,
                own_projection=not shared_projection,
            ),
        )
        # The unified projection space: one parameter, used by all sum(depths) layers.
        self.shared_proj = (
            nn.Parameter(_init_projection(embed_dim, proj_dim)) if shared_projection else None
        )

    def shared_projection(self) -> torch.Tensor | None:
        return self.shared_proj


def detect(sd: StateDict) -> Detected | None:
    """UPS: the SwinIR skeleton whose attention has no ``qkv`` but one shared projection
    ``shared_proj`` (or, in the per-layer ablation, ``attn.qk`` in every layer)."""
    if FIRST_LAYER + "attn.qkv.weight" in sd:  # SwinIR
        return None
    shared = "shared_proj" in sd
    proj = sd["shared_proj"] if shared else sd.get(FIRST_LAYER + "attn.qk")
    found = swin_skeleton_config(sd) if proj is not None else None
    if found is None:
        return None
    config, scale = found
    config.update(
        proj_dim=proj.shape[1],
        shared_projection=shared,
        v_proj=FIRST_LAYER + "attn.v.weight" in sd,
        # Shapes cannot tell cosine-relu from dot-relu/dot-softmax; lightsr's own files carry the
        # exact config as metadata, which takes precedence (see load_checkpoint).
        similarity="cosine-softmax" if FIRST_LAYER + "attn.logit_scale" in sd else "cosine-relu",
    )
    return Detected("ups", config, scale)


#: size_multiple: the named models' window (8); an instance sets its own ``window_size``.
#: fp16 (autocast): checked on the bundled UPS-S x4 weights. ONNX export in float16 is a
#: different matter (see lightsr.inference.onnx).
ARCH = ArchDescriptor(name="ups", build=UPS, detect=detect, size_multiple=8)
