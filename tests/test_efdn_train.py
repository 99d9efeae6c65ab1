"""EFDN's training form: the official EDBB branches, their fold into the deployed form, detection
of training checkpoints, and training with ``lightsr train``.

No training-form EFDN checkpoint is public, so the weights are random (every parameter, the edge
branches' ``scale`` and ``bias`` included). The official EDBB has no batch normalisation, so
there are no running statistics to randomise.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lightsr
from lightsr.cli import main
from lightsr.inference.io import write_image
from lightsr.models.archs.efdn import EFDN, reparameterise
from lightsr.models.checkpoint import detect_arch, load_checkpoint
from lightsr.training.loop import find_checkpoint, load_training_state

#: One EDBB's tensors in the official training layout (``models/unitv2.py``), n_feats 8,
#: ``depth_multiplier`` 1.
EDBB_KEYS = {
    "rep_conv.weight": (8, 8, 3, 3),
    "rep_conv.bias": (8,),
    "conv1x1.weight": (8, 8, 1, 1),
    "conv1x1.bias": (8,),
    "conv1x1_3x3.k0": (8, 8, 1, 1),
    "conv1x1_3x3.b0": (8,),
    "conv1x1_3x3.k1": (8, 8, 3, 3),
    "conv1x1_3x3.b1": (8,),
    **{
        f"conv1x1_{kind}.{name}": shape
        for kind in ("sbx", "sby", "lpl")
        for name, shape in (
            ("k0", (8, 8, 1, 1)),
            ("b0", (8,)),
            ("scale", (8, 1, 1, 1)),
            ("bias", (8,)),
            ("mask", (8, 1, 3, 3)),
        )
    },
    "act.weight": (8,),
}

#: The official masks (cross-correlation kernels, rows top to bottom).
MASKS = {
    "sbx": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "sby": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "lpl": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
}


def _random(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random, non-zero values in every parameter (the masks are buffers and stay)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model.eval()


def _run(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The output and the upsampler's output before EFDN's clamp to [0, 1] (which would hide
    differences wherever random weights push the output outside)."""
    seen: list[torch.Tensor] = []
    handle = model.tail.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.no_grad():
            y = model(x)
    finally:
        handle.remove()
    return y, seen[0]


def test_training_form_has_the_official_keys_shapes_and_filters() -> None:
    train = EFDN(n_feats=8, upscaling_factor=2, training_form=True)
    sd = train.state_dict()
    for cell in range(4):
        for conv in ("conv2", "conv3"):
            prefix = f"cells.{cell}.{conv}."
            got = {k[len(prefix) :]: tuple(v.shape) for k, v in sd.items() if k.startswith(prefix)}
            assert got == EDBB_KEYS, prefix
            for kind, mask in MASKS.items():
                want = torch.tensor(mask, dtype=torch.float32).expand(8, 1, 3, 3)
                assert torch.equal(sd[f"{prefix}conv1x1_{kind}.mask"], want)
    branch_keys = {k for k in sd if re.search(r"\.conv[23]\.conv1x1", k)}
    assert len(branch_keys) == 8 * (len(EDBB_KEYS) - 3)  # all but rep_conv and act
    deployed = EFDN(n_feats=8, upscaling_factor=2).state_dict()
    assert set(deployed) < set(sd) and branch_keys.isdisjoint(deployed)
    assert not any("mask" in name for name, _ in train.named_parameters())  # fixed filters
    scales = [p for n, p in train.named_parameters() if n.endswith("conv1x1_sbx.scale")]
    # the official init of the edge scales: randn * 1e-3
    assert len(scales) == 8 and all(float(p.detach().abs().max()) < 0.01 for p in scales)
    # the 1x1 -> 3x3 branch is outside the sum by default: frozen (no unused parameter for DDP)
    frozen = {n for n, p in train.named_parameters() if not p.requires_grad}
    assert frozen == {n for n in sd if ".conv1x1_3x3." in n}
    wide = EFDN(n_feats=8, upscaling_factor=2, training_form=True, with_13=True)
    assert all(p.requires_grad for p in wide.parameters())


def _official_seq(x: torch.Tensor, k0: torch.Tensor, b0: torch.Tensor, k1: torch.Tensor,
                  b1: torch.Tensor, groups: int = 1) -> torch.Tensor:  # fmt: skip
    """The official SeqConv3x3 formulation, written independently of lightsr's: the 1x1 conv
    on the unpadded input, its output framed by a one-pixel border filled with ``b0``, then an
    unpadded 3x3 conv."""
    y0 = F.conv2d(x, k0, b0)
    framed = b0.view(1, -1, 1, 1).expand(x.shape[0], -1, x.shape[2] + 2, x.shape[3] + 2).clone()
    framed[:, :, 1:-1, 1:-1] = y0
    return F.conv2d(framed, k1, b1, groups=groups)


@pytest.mark.parametrize("with_13,with_idt", [(False, False), (True, True)])
def test_edbb_matches_the_official_branch_formulas(with_13: bool, with_idt: bool) -> None:
    train = EFDN(
        n_feats=8, upscaling_factor=2, training_form=True, mid_channels=4, with_13=with_13,
        with_idt=with_idt,
    )  # fmt: skip
    edbb = _random(train).double().cells[1].conv3
    x = torch.randn(2, 8, 7, 10, dtype=torch.float64)
    want = edbb.rep_conv(x) + edbb.conv1x1(x)
    for kind in ("sbx", "sby", "lpl"):
        b = getattr(edbb, f"conv1x1_{kind}")
        want = want + _official_seq(x, b.k0, b.b0, b.scale * b.mask, b.bias, groups=8)
    if with_idt:
        want = want + x
    if with_13:
        b = edbb.conv1x1_3x3
        want = want + _official_seq(x, b.k0, b.b0, b.k1, b.b1)
    with torch.no_grad():
        got = edbb(x)
        want = edbb.act(want)
    assert torch.allclose(got, want, atol=1e-12, rtol=0), float((got - want).abs().max())


CONFIGS = [
    ({}, 4),
    ({"mid_channels": 12, "with_13": True, "with_idt": True}, 3),
]


@pytest.mark.parametrize("extra,scale", CONFIGS)
def test_reparameterise_is_exact_in_float64(extra: dict[str, object], scale: int) -> None:
    train = _random(EFDN(n_feats=8, upscaling_factor=scale, training_form=True, **extra))
    train = train.double()  # the check is on the algebra, not on float32 rounding
    fused = reparameterise(train)
    assert not fused.training_form and fused.state_dict().keys() == (
        EFDN(n_feats=8, upscaling_factor=scale).state_dict().keys()
    )
    again = EFDN(n_feats=8, upscaling_factor=scale).double()
    again.load_state_dict(fused.state_dict(), strict=True)
    found = detect_arch(fused.state_dict())
    assert found is not None and (found.arch, found.config, found.scale) == (
        "efdn", {"n_feats": 8}, scale)  # fmt: skip
    unfolded = EFDN(n_feats=8, upscaling_factor=scale).double().eval()
    unfolded.load_state_dict({k: v for k, v in train.state_dict().items()
                              if k in unfolded.state_dict()})  # fmt: skip
    for h, w in ((13, 11), (17, 19)):  # below MIN_SIZE (padded inside) and above, both odd
        x = torch.rand(1, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h))
        (want, want_pre), (got, got_pre) = _run(train, x), _run(again.eval(), x)
        assert got.shape == (1, 3, h * scale, w * scale)
        assert torch.allclose(got_pre, want_pre, atol=1e-10, rtol=0), (h, w)
        assert torch.allclose(got, want, atol=1e-10, rtol=0)
        # the fold is what makes them equal: rep_conv alone is 1e7 times further off
        assert float((_run(unfolded, x)[1] - want_pre).abs().max()) > 1e-3
    x = torch.rand(1, 3, 13, 11, dtype=torch.float64)  # float32, as a user folds: rounding only
    want_pre = _run(train, x)[1]
    err = (_run(reparameterise(train.float()), x.float())[1] - want_pre).abs().max()
    assert float(err) < 1e-4, float(err)


def test_detection_reads_the_training_form() -> None:
    sd = EFDN(n_feats=8, upscaling_factor=2, training_form=True).state_dict()
    found = detect_arch(sd)
    assert found is not None
    assert (found.arch, found.config, found.scale) == (
        "efdn", {"n_feats": 8, "training_form": True}, 2)  # fmt: skip
    wide = EFDN(n_feats=8, upscaling_factor=4, training_form=True, mid_channels=16).state_dict()
    assert detect_arch(wide).config == {  # type: ignore[union-attr]
        "n_feats": 8, "training_form": True, "mid_channels": 16}  # fmt: skip
    with pytest.raises(ValueError, match="training_form=True"):
        EFDN(n_feats=8, with_13=True)


def test_training_checkpoint_file_loads_through_the_normal_loader(tmp_path: Path) -> None:
    """A training-form ``.pth`` (the official key names) is detected, loads strictly through
    :func:`lightsr.load_model`, and upscales as its deployed fold does."""
    train = _random(EFDN(n_feats=8, upscaling_factor=2, training_form=True), seed=1)
    path = tmp_path / "efdn_train.pth"
    torch.save(train.state_dict(), path)
    model, found = load_checkpoint(path)  # strict inside
    assert found.config == {"n_feats": 8, "training_form": True} and found.scale == 2
    assert isinstance(model, EFDN) and model.training_form
    deployed = reparameterise(model)
    fused_path = tmp_path / "efdn_fused.pth"
    torch.save(deployed.state_dict(), fused_path)
    x = torch.rand(1, 3, 21, 17, generator=torch.Generator().manual_seed(2))
    up_train = lightsr.load_model(path, device="cpu", fast=False)
    up_fused = lightsr.load_model(fused_path, device="cpu", fast=False)
    assert up_fused.model is not None and not up_fused.model.training_form  # type: ignore[union-attr]
    got, want = up_fused.upscale(x), up_train.upscale(x)
    assert got.shape == (1, 3, 42, 34)
    assert float((got - want).abs().max()) < 1e-5
    with torch.no_grad():
        assert float((deployed(x) - model(x)).abs().max()) < 1e-5


def _image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float64)
    img = np.kron(base, np.ones((8, 8, 1)))[:h, :w] + rng.normal(0, 8, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_lightsr_train_trains_the_training_form(tmp_path: Path) -> None:
    """``model: {name: efdn, args: {training_form: true}}`` (the route SPAN's training form
    takes): every branch gets gradients, the exported weights keep the training form, and
    their fold runs as the deployed network."""
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(tmp_path / "train" / f"img{i}.png", _image(rng, 72, 76))
    write_image(tmp_path / "val" / "v0.png", _image(rng, 64, 68))
    recipe = tmp_path / "efdn.yaml"
    recipe.write_text(
        f"""
name: efdn_train
output_dir: {tmp_path / "runs"}
model: {{name: efdn, scale: 4, args: {{n_feats: 8, training_form: true}}}}
data: {{hr_dirs: [{tmp_path / "train"}], patch_size: 16, batch_size: 2, workers: 0}}
val: {{datasets: [{tmp_path / "val"}], every: 2, images: 1}}
train: {{iters: 2, log_every: 1, checkpoint_every: 2, threads: 1, tensorboard: false}}
""",
        encoding="utf-8",
    )
    assert main(["train", str(recipe), "-q"]) == 0
    run = tmp_path / "runs" / "efdn_train"
    state = load_training_state(find_checkpoint(run))
    assert "cells.3.conv3.conv1x1_lpl.mask" in state["model"]
    # the optimizer's state is indexed in the model's parameter order
    names = [n for n, _ in EFDN(n_feats=8, training_form=True).named_parameters()]
    moments = {names[i]: s["exp_avg"] for i, s in state["optimizer"]["state"].items()}
    edbb = [n for n in names if re.search(r"\.conv[23]\.(rep_conv|conv1x1|act)", n)]
    assert len(edbb) == 8 * 21  # rep_conv 2, conv1x1 2, 3 edge branches 4 each, 1x1-3x3 4, act 1
    for name in edbb:  # every branch learns; the 1x1 -> 3x3 one is outside the sum (frozen)
        if ".conv1x1_3x3." in name:
            assert name not in moments
        else:
            assert float(moments[name].abs().max()) > 0, name
    weights = tmp_path / "efdn_train.safetensors"
    assert main(["export-weights", str(run), "-o", str(weights)]) == 0
    model, found = load_checkpoint(weights)
    assert found.arch == "efdn" and found.config["training_form"] is True
    deployed = reparameterise(model)
    x = torch.rand(1, 3, 19, 23, generator=torch.Generator().manual_seed(3))
    _, want = _run(model, x)
    _, got = _run(deployed, x)
    assert float((got - want).abs().max()) < 1e-4
