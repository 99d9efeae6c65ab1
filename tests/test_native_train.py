"""Native SAFMN training (``lightsr.native.train_ops``): every backward against autograd in
float64, a short training run against the PyTorch path, and the fallbacks."""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models.archs.safmn import CCM, SAFM, SAFMN, ChannelLayerNorm
from lightsr.native import train_ops

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
TOL = 1e-4  # max |native - float64 reference| / max |reference|, per tensor


def need_kernels() -> None:
    """Skip (fail in CI, whose machine has g++ and AVX2) when the kernels cannot run here."""
    reason = train_ops.training_unavailable_reason()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"native training kernels unavailable in CI: {reason}")
        pytest.skip(f"native training kernels unavailable (need x86-64 with AVX2+FMA): {reason}")


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.detach().double() - ref.detach()).abs().max() / ref.detach().abs().max())


@pytest.mark.parametrize(
    ("n", "c", "e", "h", "w"),
    [(2, 36, 72, 13, 17), (1, 8, 16, 9, 9), (2, 16, 8, 8, 12), (1, 3, 36, 11, 6),
     (1, 36, 48, 16, 16)],
)  # fmt: skip
def test_conv3x3_forward_and_backward_match_autograd(n: int, c: int, e: int, h: int, w: int):
    need_kernels()
    torch.manual_seed(n * 1000 + c + e + h + w)
    x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
    weight = (torch.randn(e, c, 3, 3, dtype=torch.float64) / (3 * c**0.5)).requires_grad_()
    bias = torch.randn(e, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(n, e, h, w, dtype=torch.float64)
    ref = F.conv2d(x, weight, bias, padding=1)
    ref.backward(grad)
    x32, w32, b32 = (t.detach().float().requires_grad_() for t in (x, weight, bias))
    out = train_ops.conv3x3(x32, w32, b32)
    out.backward(grad.float())
    assert out.shape == ref.shape
    for got, want in [(out, ref), (x32.grad, x.grad), (w32.grad, weight.grad),
                      (b32.grad, bias.grad)]:  # fmt: skip
        assert got is not None and want is not None
        assert rel_err(got, want) <= TOL


def test_weight_grad_alone_matches_the_direct_sum() -> None:
    """The Winograd weight gradient of one pixel's gradient is the input patch around it."""
    need_kernels()
    x = torch.randn(1, 4, 8, 8)
    g = torch.zeros(1, 2, 8, 8)
    g[0, 1, 3, 5] = 1.0
    dw = train_ops.conv3x3_weight_grad(x, g)
    assert torch.allclose(dw[1], x[0, :, 2:5, 4:7], atol=1e-5)
    assert dw[0].abs().max() < 1e-6


@pytest.mark.parametrize(("rows", "c"), [(300, 36), (77, 8), (50, 16), (33, 13), (5, 72)])
def test_gelu_kernels_match_autograd(rows: int, c: int) -> None:
    """``gelu(z) * m`` forward and backward (with the bias sum), including far tails."""
    need_kernels()
    torch.manual_seed(rows + c)
    z = torch.randn(rows, c, dtype=torch.float64) * 3
    z[0, : min(c, 6)] = torch.tensor([-12.0, -5.0, -1e-3, 0.0, 4.0, 12.0])[: min(c, 6)]
    m = torch.randn(rows, c, dtype=torch.float64)
    grad = torch.randn(rows, c, dtype=torch.float64)
    z.requires_grad_()
    m.requires_grad_()
    out = F.gelu(z) * m
    out.backward(grad)
    z32, m32, g32 = (t.detach().float().contiguous() for t in (z, m, grad))
    act, got, slope = train_ops.gelu_forward(z32, m32, slope=True)
    assert got is not None and slope is not None
    assert rel_err(act, F.gelu(z.detach())) <= TOL
    assert rel_err(got, out) <= TOL
    dz, dm, dbias = train_ops.gelu_backward(g32, slope, m32, act)
    assert dm is not None and z.grad is not None and m.grad is not None
    assert rel_err(dz, z.grad) <= TOL
    assert rel_err(dm, m.grad) <= TOL
    assert rel_err(dbias, z.grad.sum(0)) <= TOL
    dz1, none, _ = train_ops.gelu_backward(g32, slope)  # without m: the GELU's own backward
    assert none is None
    assert rel_err(dz1, torch.ops.aten.gelu_backward(grad, z.detach())) <= TOL
    act2, none2, none3 = train_ops.gelu_forward(z32)  # without m and slope
    assert none2 is None and none3 is None and torch.equal(act2, act)
    # with a per-column bias added in the same pass: the GELU of z + bias, and its slope
    bias = torch.randn(c, dtype=torch.float64)
    zb = (z.detach() - bias).float()
    act3, got3, slope3 = train_ops.gelu_forward(zb, m32, slope=True, bias=bias.float())
    assert got3 is not None and slope3 is not None
    assert rel_err(act3, F.gelu(zb.double() + bias)) <= TOL
    assert rel_err(got3, F.gelu(zb.double() + bias) * m.detach()) <= TOL
    dz3, _, _ = train_ops.gelu_backward(g32, slope3, m32, act3)
    assert rel_err(dz3, z.grad) <= 10 * TOL  # z - bias + bias differs from z by rounding
    with pytest.raises(ValueError, match="bias"):
        train_ops.gelu_forward(zb, bias=torch.zeros(c + 1))


@pytest.mark.parametrize(
    ("n", "c", "h", "w"), [(2, 36, 5, 7), (1, 13, 3, 4), (1, 8, 2, 2), (2, 72, 3, 3)]
)
def test_add_layer_norm_kernels_match_autograd(n: int, c: int, h: int, w: int) -> None:
    """``y = x + r``, ``LN(y)`` forward, and the backward with the gradient y gets elsewhere."""
    need_kernels()
    torch.manual_seed(n + c + h + w)
    x, r = (torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True) for _ in range(2))
    weight = (torch.randn(c, dtype=torch.float64) * 0.3 + 1).requires_grad_()
    bias = torch.randn(c, dtype=torch.float64, requires_grad=True)
    gy, gn = (
        torch.randn(n, c, h, w, dtype=torch.float64),
        torch.randn(n, c, h, w, dtype=torch.float64),
    )
    y = x + r
    ref_n = F.layer_norm(y.permute(0, 2, 3, 1), (c,), weight, bias, 1e-6).permute(0, 3, 1, 2)
    torch.autograd.backward([y, ref_n], [gy, gn])
    cl = torch.channels_last
    x32, r32 = (t.detach().float().contiguous(memory_format=cl).requires_grad_() for t in (x, r))
    w32, b32 = (t.detach().float().requires_grad_() for t in (weight, bias))
    y32, n32 = train_ops.AddLayerNormFunction.apply(x32, r32, w32, b32, 1e-6)
    assert y32.is_contiguous(memory_format=cl) and n32.is_contiguous(memory_format=cl)
    torch.autograd.backward([y32, n32], [gy.float(), gn.float()])
    for got, want in [(y32, y), (n32, ref_n), (x32.grad, x.grad), (r32.grad, r.grad),
                      (w32.grad, weight.grad), (b32.grad, bias.grad)]:  # fmt: skip
        assert got is not None and want is not None
        assert rel_err(got, want) <= TOL
    # without the add (the body's first norm): the plain LayerNorm and its backward
    y64 = y.detach().requires_grad_()
    ref = F.layer_norm(y64.permute(0, 2, 3, 1), (c,), weight.detach(), bias.detach(), 1e-6)
    ref.permute(0, 3, 1, 2).backward(gn)
    y32 = y.detach().float().requires_grad_()  # NCHW-contiguous input: copied to rows
    n_only = train_ops.LayerNormFunction.apply(y32, w32.detach(), b32.detach(), 1e-6)
    n_only.backward(gn.float())
    assert rel_err(n_only, ref.permute(0, 3, 1, 2)) <= TOL
    assert y32.grad is not None and y64.grad is not None
    assert rel_err(y32.grad, y64.grad) <= TOL


@pytest.mark.parametrize(
    ("n", "c", "h", "w", "levels"),
    [(2, 36, 16, 24, 4), (1, 12, 8, 8, 4), (3, 64, 8, 16, 4), (2, 20, 12, 6, 2), (1, 5, 3, 3, 1)],
)
def test_split_pool_matches_chunk_and_max_pool(n: int, c: int, h: int, w: int, levels: int):
    """The SAFM's split and pooled levels, forward and backward, bit for bit against
    ``chunk`` and ``max_pool2d``, with ties in the windows (the first maximum takes the
    gradient), a NaN, and a level whose gradient is missing."""
    need_kernels()
    torch.manual_seed(c + h + levels)
    x = torch.randn(n, c, h, w)
    x[:, :, ::2] = x[:, :, ::2].round()  # ties: equal maxima in many windows
    x[0, -1, 0, 0] = float("nan")
    ref_x = x.clone().requires_grad_()
    chunks = ref_x.chunk(levels, 1)
    ref = [chunks[0]] + [F.max_pool2d(chunks[i], 2**i) for i in range(1, levels)]
    got_x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    got = train_ops.SplitPoolFunction.apply(got_x, levels)
    assert len(got) == levels
    for a, b in zip(got, ref, strict=True):
        assert a.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(a, b) or torch.allclose(a, b, equal_nan=True, rtol=0, atol=0)
    grads = [torch.randn_like(r) for r in ref]
    used = list(range(levels - 1)) if levels > 2 else list(range(levels))  # the last unused
    torch.autograd.backward([ref[i] for i in used], [grads[i] for i in used])
    torch.autograd.backward([got[i] for i in used], [grads[i] for i in used])
    assert got_x.grad is not None and ref_x.grad is not None
    assert torch.equal(got_x.grad, ref_x.grad)


@pytest.mark.parametrize(("h", "w"), [(16, 24), (13, 17)])
def test_the_fused_body_matches_autograd(h: int, w: int) -> None:
    """A whole SAFMN with the fused body (residual adds in the LayerNorms): output and every
    parameter's gradient against the float64 PyTorch model; at 13x17 the SAFMs run their
    PyTorch formulation inside the fused body (sizes not divisible by 8)."""
    need_kernels()
    torch.manual_seed(5)
    ref = _perturbed(SAFMN(dim=16, n_blocks=3, upscaling_factor=2))
    native = train_ops.native_training_model(copy.deepcopy(ref))
    assert type(native.feats).__name__ == "NativeBody"
    assert list(native.state_dict()) == list(ref.state_dict())
    ref = ref.double()
    x = torch.rand(2, 3, h, w, dtype=torch.float64)
    grad = torch.randn(2, 3, 2 * h, 2 * w, dtype=torch.float64)
    out = ref(x)
    out.backward(grad)
    got = native(x.float())
    got.backward(grad.float())
    assert rel_err(got, out) <= TOL
    params = dict(ref.named_parameters())
    for name, p in native.named_parameters():
        assert p.grad is not None, name
        assert rel_err(p.grad, params[name].grad) <= TOL, name


def _perturbed(module: nn.Module) -> nn.Module:
    """``module`` with random, non-trivial parameters (LayerNorm weights not all one)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return module


def _swapped(module: nn.Module) -> nn.Module:
    holder = nn.Module()
    holder.m = module
    for name, child in list(holder.named_children()):
        train_ops._swap(holder, name, child)
    return holder.m


@pytest.mark.parametrize(
    ("kind", "c", "h", "w"),
    [(kind, *size) for kind in ("safm", "ccm", "norm")
     for size in [(36, 16, 24), (16, 8, 8), (8, 24, 16)]]
    + [("ccm", 36, 13, 17), ("norm", 36, 13, 17), ("ccm", 16, 9, 9), ("norm", 8, 9, 9)],
)  # fmt: skip
def test_block_pieces_match_autograd(kind: str, c: int, h: int, w: int) -> None:
    """The SAFM (sizes divisible by 8: its native path), the CCM (any size: padded to the
    Winograd tiles) and the LayerNorm, forward, input and parameter gradients."""
    need_kernels()
    torch.manual_seed(c + h + w)
    make = {"safm": SAFM, "ccm": CCM, "norm": ChannelLayerNorm}[kind]
    ref = _perturbed(make(c))
    native = _swapped(copy.deepcopy(ref))
    assert type(native).__name__ == {"safm": "NativeSAFM", "ccm": "NativeCCM"}.get(
        kind, "NativeLayerNorm"
    )
    ref = ref.double()
    x = torch.randn(2, c, h, w, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, c, h, w, dtype=torch.float64)
    out = ref(x)
    out.backward(grad)
    x32 = x.detach().float().requires_grad_()
    got = native(x32)
    got.backward(grad.float())
    assert rel_err(got, out) <= TOL
    assert x32.grad is not None and x.grad is not None
    assert rel_err(x32.grad, x.grad) <= TOL
    params = dict(ref.named_parameters())
    for name, p in native.named_parameters():
        assert p.grad is not None, name
        assert rel_err(p.grad, params[name].grad) <= TOL, name


def _train(model: nn.Module, steps: int) -> list[float]:
    torch.manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(steps):
        lr = torch.rand(2, 3, 16, 16)
        hr = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
        loss = F.l1_loss(model(lr), hr)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def test_a_short_training_run_follows_the_pytorch_path() -> None:
    need_kernels()
    torch.manual_seed(0)
    plain = SAFMN(dim=16, n_blocks=2, upscaling_factor=2)
    native = train_ops.native_training_model(copy.deepcopy(plain))
    names = {type(m).__name__ for m in native.modules()}
    assert {"NativeConv3x3", "NativeLayerNorm", "NativeCCM", "NativeSAFM"} <= names
    assert list(native.state_dict()) == list(plain.state_dict())  # checkpoints unchanged
    # the same parameters in the same order (the loop's EMA update zips them)
    assert [n for n, _ in native.named_parameters()] == [n for n, _ in plain.named_parameters()]
    want, got = _train(plain, 5), _train(native, 5)
    assert want[-1] < want[0]  # it learns
    assert got == pytest.approx(want, rel=1e-4)
    for (name, p), q in zip(native.named_parameters(), plain.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-4), name


def test_the_model_is_unchanged_without_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_ops, "training_unavailable_reason", lambda: "no AVX2 (test)")
    assert not train_ops.native_training_available()
    model = SAFMN(dim=8, n_blocks=1, upscaling_factor=2)
    before = [type(m) for m in model.modules()]
    assert train_ops.native_training_model(model) is model
    assert [type(m) for m in model.modules()] == before


def test_other_dtypes_and_autocast_use_the_pytorch_formulation() -> None:
    need_kernels()
    torch.manual_seed(0)
    plain = SAFMN(dim=8, n_blocks=1, upscaling_factor=2)
    native = train_ops.native_training_model(copy.deepcopy(plain))
    double = train_ops.native_training_model(copy.deepcopy(plain).double())
    assert not any(type(m).__name__.startswith("Native") for m in double.modules())
    x = torch.rand(1, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(native(x), plain(x))  # the reference modules ran
    assert torch.allclose(native.double()(x.double()), plain.double()(x.double()), atol=1e-12)


def test_ablation_variants_keep_their_own_modules() -> None:
    need_kernels()
    model = SAFMN(dim=8, n_blocks=1, upscaling_factor=2, ccm="ccm-se", norm="bn")
    train_ops.native_training_model(model)
    block = model.feats[0]
    assert isinstance(block.ccm, CCM) and isinstance(block.norm1, nn.BatchNorm2d)
    assert type(block.safm).__name__ == "NativeSAFM"
    model(torch.rand(1, 3, 8, 8)).sum().backward()


def _tiny_recipe(tmp_path, *extra: str) -> list[str]:
    import numpy as np

    from lightsr.inference.io import write_image

    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(tmp_path / "hr" / f"{i}.png", rng.integers(0, 256, (40, 40, 3), np.uint8))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: n\noutput_dir: {tmp_path / 'runs'}\n"
        "model: {name: safmn, scale: 2, args: {dim: 8, n_blocks: 1}}\n"
        f"data: {{hr_dirs: [{tmp_path / 'hr'}], patch_size: 8, batch_size: 2, workers: 0}}\n"
        "val: {datasets: []}\n"
        "train: {iters: 2, log_every: 1, checkpoint_every: 2, threads: 1, tensorboard: false}\n",
        encoding="utf-8",
    )
    return ["train", str(recipe), *extra]


def test_lightsr_train_uses_the_kernels_by_default(tmp_path, capsys) -> None:
    """fp32 SAFMN training on a CPU with the kernels: the start line says so, compile is
    skipped (the kernels are opaque to it), and train.native=off keeps PyTorch's path."""
    from lightsr.cli import main

    need_kernels()
    assert main(_tiny_recipe(tmp_path, "--set", "train.compile=true")) == 0
    assert "native kernels (not compiled)" in capsys.readouterr().out
    assert main(_tiny_recipe(tmp_path, "--set", "train.native=off", "--set", "name=m")) == 0
    assert "native kernels" not in capsys.readouterr().out


def test_train_native_on_without_kernels_is_a_config_error(tmp_path, monkeypatch, capsys) -> None:
    from lightsr.cli import main

    monkeypatch.setattr(train_ops, "training_unavailable_reason", lambda: "no AVX2 (test)")
    assert main(_tiny_recipe(tmp_path, "--set", "train.native=on")) == 2
    err = capsys.readouterr().err
    assert "train.native: on" in err and "no AVX2 (test)" in err
    # auto falls back to PyTorch quietly
    assert main(_tiny_recipe(tmp_path, "--set", "name=m")) == 0
    assert "native kernels" not in capsys.readouterr().out
