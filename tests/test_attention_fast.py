"""The window-attention models' fast path (chunked inference, gathered window order, cached bias
and masks) against a straightforward per-window, per-head loop written here: outputs in eval and
inference mode, gradients in training, caches that follow the parameters, state dicts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import lightsr.models.archs.swinir as swinir_mod
from lightsr.models.archs.swinir import SwinIR, SwinLayer
from lightsr.models.archs.ups import UPS

TOL = 1e-5


def _regions(h: int, w: int, ws: int, s: int) -> torch.Tensor:
    """(H, W) region ids of the shifted-window mask (official regions)."""
    ids = torch.zeros(h, w, dtype=torch.long)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
        for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            ids[hs, wsl] = cnt
            cnt += 1
    return ids


def _head_weights(attn: torch.nn.Module, xw: torch.Tensor, shared, keep) -> list[torch.Tensor]:
    """Per head: the (N, N) weights of one window ``xw`` (N, C), written out directly."""
    heads, n = attn.num_heads, xw.shape[0]
    index = attn.relative_position_index.view(-1)
    bias = attn.relative_position_bias_table[index].view(n, n, heads)
    out = []
    if hasattr(attn, "qkv"):  # SwinIR: softmax(q k^T / sqrt(d) + B + mask)
        q, k, _ = attn.qkv(xw).chunk(3, dim=-1)
        d = q.shape[-1] // heads
        for i in range(heads):
            qi, ki = q[:, i * d : (i + 1) * d], k[:, i * d : (i + 1) * d]
            s = qi @ ki.T * d**-0.5 + bias[:, :, i] + torch.where(keep, 0.0, -100.0)
            out.append(s.softmax(-1))
        return out
    p = xw @ (attn.qk if attn.qk is not None else shared)
    d = p.shape[-1] // heads
    for i in range(heads):
        pi = p[:, i * d : (i + 1) * d]
        if attn.similarity.startswith("cosine"):
            pi = pi / pi.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            s = pi @ pi.T
        else:
            s = pi @ pi.T / math.sqrt(d)
        if attn.similarity == "cosine-softmax":
            s = s * attn.logit_scale[i].clamp(max=math.log(100.0)).exp()
        s = s + bias[:, :, i]
        if attn.similarity.endswith("softmax"):
            out.append(s.masked_fill(~keep, float("-inf")).softmax(-1))
        else:
            a = F.relu(s) * keep
            out.append(a / (a.sum(-1, keepdim=True) + attn.eps))
    return out


def reference_layer(layer: SwinLayer, x: torch.Tensor, h: int, w: int, shared) -> torch.Tensor:
    """One Swin layer, window by window and head by head (no partition helpers, no caches)."""
    b, _, c = x.shape
    ws, s, attn = layer.window_size, layer.shift_size, layer.attn
    heads = attn.num_heads
    y = layer.norm1(x).view(b, h, w, c)
    regions = _regions(h, w, ws, s) if s else torch.zeros(h, w, dtype=torch.long)
    if s:
        y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
    out = torch.zeros_like(y)
    for bi in range(b):
        for r in range(0, h, ws):
            for col in range(0, w, ws):
                xw = y[bi, r : r + ws, col : col + ws].reshape(-1, c)
                ids = regions[r : r + ws, col : col + ws].reshape(-1)
                keep = ids[:, None] == ids[None, :]
                weights = _head_weights(attn, xw, shared, keep)
                vals = attn.qkv(xw).chunk(3, -1)[2] if hasattr(attn, "qkv") else xw
                if getattr(attn, "v", None) is not None:
                    vals = attn.v(xw)
                dv = c // heads
                yw = torch.cat(
                    [a @ vals[:, i * dv : (i + 1) * dv] for i, a in enumerate(weights)], -1
                )
                out[bi, r : r + ws, col : col + ws] = attn.proj(yw).view(ws, ws, c)
    if s:
        out = torch.roll(out, shifts=(s, s), dims=(1, 2))
    x = x + out.reshape(b, h * w, c)
    return x + layer.mlp(layer.norm2(x))


def reference_model(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` (no stochastic depth) through :func:`reference_layer`."""
    h, w = x.shape[-2:]
    ws = model.window_size
    xp = F.pad(x, (0, -w % ws, 0, -h % ws), mode="reflect") if (h % ws or w % ws) else x
    hp, wp = xp.shape[-2:]
    feat = model.conv_first(xp - model.mean)
    tokens = model.patch_embed(feat)
    for group in model.layers:
        y = tokens
        for blk in group.residual_group.blocks:
            y = reference_layer(blk, y, hp, wp, model.shared_projection())
        y = group.conv(y.transpose(1, 2).reshape(y.shape[0], -1, hp, wp))
        tokens = y.flatten(2).transpose(1, 2) + tokens
    body = model.norm(tokens).transpose(1, 2).reshape(feat.shape)
    out = model.upsample(model.conv_after_body(body) + feat) + model.mean
    return out[..., : h * model.scale, : w * model.scale]


def _tiny(kind: str) -> torch.nn.Module:
    """Tiny configs: 3 heads, window 4 (shift 2), two groups of two layers, no stochastic depth;
    parameters perturbed so that biases and norms are not at their initial values."""
    torch.manual_seed(0)
    common = {"embed_dim": 12, "depths": (2, 2), "window_size": 4, "upscaling_factor": 2}
    common["drop_path_rate"] = 0.0
    if kind == "swinir":
        model = SwinIR(num_heads=3, **common)
    else:
        sim, _, extra = kind.partition(":")
        model = UPS(
            num_heads=3,
            proj_dim=6,
            similarity=sim,
            v_proj=extra == "v",
            shared_projection=extra != "own",
            **common,
        )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


KINDS = [
    "swinir",
    "cosine-relu",
    "cosine-relu:own",
    "cosine-softmax:v",
    "dot-relu",
    "dot-softmax",
]
SIZES = [(13, 19), (8, 12), (5, 7)]  # not window multiples (padded), multiples, one window row


@pytest.fixture(params=[1, 2], ids=["chunked", "threaded"])
def threads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Chunks of 2 windows (uneven splits of every image's windows): on this thread with one
    torch thread, on two worker threads with two."""
    monkeypatch.setattr(swinir_mod, "CHUNK_BYTES", 2 * 3 * 16 * 16 * 4)
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_inference_equals_per_window_reference(kind: str, size, threads: int) -> None:
    model = _tiny(kind).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        want = reference_model(model, x)
    with torch.inference_mode():
        got = model(x)
        again = model(x)  # from the caches
    assert (got - want).abs().max() <= TOL
    assert torch.equal(got, again)


@pytest.mark.parametrize("kind", KINDS)
def test_training_gradients_equal_per_window_reference(kind: str) -> None:
    model = _tiny(kind).train()
    x = torch.rand(2, 3, 9, 11, requires_grad=True)
    target = torch.rand(2, 3, 18, 22)
    grads = []
    for fn in (model, lambda t: reference_model(model, t)):
        model.zero_grad()
        x.grad = None
        loss = (fn(x) - target).square().mean()
        loss.backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()} | {"x": x.grad})
    got, want = grads
    assert got.keys() == want.keys()
    for k in want:
        assert torch.allclose(got[k], want[k], rtol=1e-4, atol=TOL), k


@pytest.mark.parametrize("kind", ["swinir", "cosine-relu"])
def test_caches_follow_parameter_changes(kind: str) -> None:
    model = _tiny(kind).eval()
    x = torch.rand(1, 3, 12, 12)
    with torch.inference_mode():
        model(x)  # fills the caches
    with torch.no_grad():  # an optimizer-like in-place update
        for layer in model.layers:
            for blk in layer.residual_group.blocks:
                blk.attn.relative_position_bias_table.mul_(3.0).add_(0.5)
        want = reference_model(model, x)
        assert (model(x) - want).abs().max() <= TOL
    other = _tiny(kind)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-1.0)
    model.load_state_dict(other.state_dict())
    with torch.inference_mode():
        got = model(x)
    with torch.no_grad():
        assert (got - reference_model(model, x)).abs().max() <= TOL


@pytest.mark.parametrize("kind", ["swinir", "cosine-relu"])
def test_state_dict_unchanged_and_training_after_inference(kind: str) -> None:
    model = _tiny(kind)
    keys = list(model.state_dict())
    with torch.inference_mode():
        model.eval()(torch.rand(1, 3, 12, 20))
    assert list(model.state_dict()) == keys  # no cache in the state dict
    model.train()
    y = model(torch.rand(1, 3, 12, 20))  # caches made under inference_mode, now with autograd
    y.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("kind", ["swinir", "cosine-relu"])
def test_threaded_chunks_equal_one_thread_bit_for_bit(kind: str, monkeypatch) -> None:
    """Two torch threads: worker threads share the chunks, each on one torch thread, so the
    result is the one-thread result exactly; torch's thread count is restored, and a chunk that
    fails raises in the caller."""
    monkeypatch.setattr(swinir_mod, "CHUNK_BYTES", 3 * 3 * 16 * 16 * 4)
    model = _tiny(kind).eval()
    x = torch.rand(2, 3, 21, 30)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.inference_mode():
            want = model(x)
        torch.set_num_threads(2)
        with torch.inference_mode():
            got = model(x)
        assert torch.get_num_threads() == 2
        with torch.no_grad():  # not inference mode: the workers follow the caller's modes
            plain = model(x)
        assert torch.equal(got, want) and torch.equal(plain, want)

        def boom(j: int) -> None:
            if j == 3:
                raise ValueError("chunk 3")

        with pytest.raises(ValueError, match="chunk 3"):
            swinir_mod.run_chunks(boom, 6)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
