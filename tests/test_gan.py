"""Real-world stage 2 (issue 19): Real-ESRGAN's U-Net discriminator with spectral normalisation,
the GAN losses, the perceptual-loss hook (VGG19 weights supplied by the user), distillation from
a teacher, and ``configs/real_safmn_x4_gan.yaml`` end to end (train, exact resume, export,
upscale) on T91 from ``../shared``.

Discriminator size rule: height and width must be multiples of 8 (three stride-2 halvings undone
by three bilinear doublings with skip additions); other sizes are refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.inference.io import read_image, write_image
from lightsr.training.config import ConfigError, load_config
from lightsr.training.gan import UNetDiscriminatorSN, discriminator_loss, generator_loss
from lightsr.training.loop import find_checkpoint, load_training_state
from lightsr.training.losses import PERCEPTUAL_LAYERS, distill_loss, load_perceptual

from conftest import need_shared

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "real_safmn_x4_gan.yaml"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops are slower with more threads on a busy machine (as tests/test_train.py)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- discriminator ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(8, 8), (16, 40), (24, 56), (72, 32)])
def test_discriminator_gives_one_logit_per_pixel(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    d = UNetDiscriminatorSN(num_feat=8)
    x = torch.rand(2, 3, *size)
    out = d(x)
    assert out.shape == (2, 1, *size) and torch.isfinite(out).all()
    out.mean().backward()  # gradients reach the first layer and the input path
    assert d.conv0.weight.grad is not None and d.conv1.weight_orig.grad is not None


@pytest.mark.parametrize("size", [(12, 16), (16, 20), (7, 8)])
def test_discriminator_refuses_sizes_that_are_not_multiples_of_8(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="not a multiple of 8"):
        UNetDiscriminatorSN(num_feat=4)(torch.rand(1, 3, *size))


def test_discriminator_has_spectral_norm_and_real_esrgans_size() -> None:
    d = UNetDiscriminatorSN()  # num_feat 64, as Real-ESRGAN's net_d (RealESRGAN_x4plus_netD.pth)
    sd = d.state_dict()
    assert sum(p.numel() for p in d.parameters()) == 4_376_897
    sn = [f"conv{i}" for i in range(1, 9)]
    for name in sn:  # weight_orig / u / v: torch.nn.utils.spectral_norm, no bias
        assert {f"{name}.weight_orig", f"{name}.weight_u", f"{name}.weight_v"} <= sd.keys()
        assert f"{name}.bias" not in sd
    for name in ("conv0", "conv9"):
        assert f"{name}.weight" in sd and f"{name}.bias" in sd and f"{name}.weight_u" not in sd
    # after a few training-mode forwards the power iteration has converged: each normalised
    # weight has largest singular value 1
    small = UNetDiscriminatorSN(num_feat=8)
    with torch.no_grad():
        for _ in range(40):
            small(torch.rand(1, 3, 16, 16))
    for name in sn:
        w = getattr(small, name).weight
        sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)
        assert abs(float(sigma) - 1.0) < 0.02, (name, float(sigma))


def test_generator_term_leaves_no_gradient_in_the_discriminator() -> None:
    """train_step builds the generator's adversarial graph with the discriminator frozen, then
    unfreezes it for its own loss before the generator's backward: that backward must reach the
    SR image only, or the discriminator's update would include the generator's objective."""
    d = UNetDiscriminatorSN(num_feat=4)
    sr = torch.rand(1, 3, 16, 16, requires_grad=True)
    d.requires_grad_(False)
    g_term = generator_loss(d(sr), "vanilla")
    d.requires_grad_(True)
    d_term = discriminator_loss(d(torch.rand(1, 3, 16, 16)), d(sr.detach()), "vanilla")
    g_term.backward()
    assert sr.grad is not None and all(p.grad is None for p in d.parameters())
    d_term.backward()
    assert all(p.grad is not None for p in d.parameters())


# --- losses -------------------------------------------------------------------------------


def test_gan_losses_hand_computed() -> None:
    real = torch.tensor([0.0, 2.0])
    fake = torch.tensor([0.0, -1.0])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731  softplus: BCE(x, 0) = sp(x), BCE(x, 1) = sp(-x)
    d_vanilla = (sp(0) + sp(-2)) / 2 + (sp(0) + sp(-1)) / 2
    assert float(discriminator_loss(real, fake, "vanilla")) == pytest.approx(d_vanilla, rel=1e-6)
    assert float(generator_loss(fake, "vanilla")) == pytest.approx((sp(0) + sp(1)) / 2, rel=1e-6)
    assert float(discriminator_loss(real, fake, "lsgan")) == pytest.approx((1 + 1) / 2 + 1 / 2)
    assert float(generator_loss(fake, "lsgan")) == pytest.approx((1 + 4) / 2)
    assert float(discriminator_loss(real, fake, "hinge")) == pytest.approx(0.5 + 0.5)
    assert float(generator_loss(fake, "hinge")) == pytest.approx(0.5)
    # computed in float32 from bfloat16 logits
    assert discriminator_loss(real.bfloat16(), fake.bfloat16(), "vanilla").dtype == torch.float32
    with pytest.raises(ValueError, match="unknown GAN type"):
        generator_loss(fake, "wgan")  # type: ignore[arg-type]


def test_distill_is_l1_to_the_teacher() -> None:
    a, b = torch.rand(2, 3, 8, 8, requires_grad=True), torch.rand(2, 3, 8, 8)
    loss = distill_loss(a, b)
    assert float(loss.detach()) == pytest.approx(float((a - b).abs().mean().detach()), rel=1e-6)
    loss.backward()
    assert a.grad is not None and torch.allclose(a.grad.abs(), torch.full_like(a, 1 / a.numel()))


_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M"]
_VGG19 += [512, 512, 512, 512, "M"]


def _random_vgg19(path: Path) -> dict[str, torch.Tensor]:
    """A VGG19 state dict with torchvision's key names (features + classifier), random."""
    g = torch.Generator().manual_seed(1)
    sd: dict[str, torch.Tensor] = {}
    cin, i = 3, 0
    for v in _VGG19:
        if v == "M":
            i += 1
            continue
        std = math.sqrt(2.0 / (9 * cin))
        sd[f"features.{i}.weight"] = torch.randn(int(v), cin, 3, 3, generator=g) * std
        sd[f"features.{i}.bias"] = torch.randn(int(v), generator=g) * 0.01
        cin, i = int(v), i + 2  # conv, relu
    sd["classifier.0.weight"] = torch.zeros(4, 8)  # ignored, as the real file's classifier
    torch.save(sd, path)
    return sd


def _reference_perceptual(x: torch.Tensor, y: torch.Tensor, sd: dict) -> torch.Tensor:
    """Real-ESRGAN's definition written out with functional ops: ImageNet normalisation,
    pre-ReLU features of conv1_2, conv2_2, conv3_4, conv4_4, conv5_4, weighted L1."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    weights = {2: 0.1, 7: 0.1, 16: 1.0, 25: 1.0, 34: 1.0}

    def feats(t: torch.Tensor) -> dict[int, torch.Tensor]:
        t, out, i = (t - mean) / std, {}, 0
        for v in _VGG19:
            if v == "M":
                t, i = F.max_pool2d(t, 2), i + 1
                continue
            t = F.conv2d(t, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1)
            if i in weights:
                out[i] = t
            if i == 34:
                return out
            t, i = F.relu(t), i + 2
        return out

    fx, fy = feats(x), feats(y)
    return sum(w * (fx[i] - fy[i]).abs().mean() for i, w in weights.items())  # type: ignore[return-value]


def test_perceptual_hook_with_user_supplied_vgg19(tmp_path: Path) -> None:
    assert [i for i, _ in PERCEPTUAL_LAYERS.values()] == [2, 7, 16, 25, 34]
    sd = _random_vgg19(tmp_path / "vgg19.pth")
    loss_fn = load_perceptual(tmp_path / "vgg19.pth")
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    y = torch.rand(2, 3, 32, 32)
    loss = loss_fn(x, y)
    ref = _reference_perceptual(x.detach(), y, sd)
    value = float(loss.detach())
    assert value == pytest.approx(float(ref), rel=1e-5) and value > 0
    assert float(loss_fn(y, y)) == 0.0
    loss.backward()  # the image gets gradients, the frozen VGG none
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss_fn.parameters())
    # a file that is not VGG19 weights, or none at all: one line naming the flag
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    for bad in (tmp_path / "bad.pth", tmp_path / "missing.pth"):
        with pytest.raises(LightSRError, match=r"^loss\.perceptual_weights: ") as exc:
            load_perceptual(bad)
        assert "\n" not in str(exc.value)


# --- config errors ------------------------------------------------------------------------


def test_config_errors_name_the_flag(capsys: pytest.CaptureFixture) -> None:
    cases = {
        "gan.type=wgan": r"gan\.type: expected one of vanilla, lsgan, hinge, found 'wgan'",
        "loss.perceptual=1": r"loss\.perceptual: 1\.0 needs VGG19 weights.*perceptual_weights",
        "loss.distill=0.5": r"loss\.distill: 0\.5 needs a teacher.*distill_teacher",
        "gan.d_lr=0": r"gan\.d_lr: expected > 0",
        "gan.weight=-1": r"gan\.weight: expected >= 0",
    }
    for item, pattern in cases.items():
        with pytest.raises(ConfigError, match=pattern):
            load_config(RECIPE, [item])
        assert main(["train", str(RECIPE), "--dry-run", "--set", item]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and item.split("=")[0] in err
    with pytest.raises(ConfigError, match=r"gan\.weight: .*multiple of 8.*2 x model\.scale 2 = 4"):
        load_config(RECIPE, ["model.scale=2", "data.patch_size=2"])


# --- the recipe end to end ----------------------------------------------------------------


def _tiny(out: Path, name: str, iters: int, *more: str) -> list[str]:
    t91 = need_shared("datasets", "T91", "HR")
    sets = [
        f"name={name}", f"output_dir={out}", f"data.hr_dirs=[{t91}]", "data.patch_size=8",
        "data.batch_size=2", "data.workers=0", "data.cache=false", "val.datasets=[]",
        "model.init=safmn-x4", "gan.d_num_feat=16", f"train.iters={iters}",
        "train.compile=false", "train.checkpoint_every=1", "train.log_every=1",
        "train.tensorboard=false", "train.threads=1", *more,
    ]  # fmt: skip
    return [x for item in sets for x in ("--set", item)]


def test_recipe_trains_resumes_exactly_exports_and_upscales(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert main(["train", str(RECIPE), "-q", *_tiny(runs, "full", 3)]) == 0
    assert main(["train", str(RECIPE), "-q", *_tiny(runs, "cut", 2)]) == 0
    cut = runs / "cut"
    assert main(["train", str(RECIPE), "--resume", str(cut), "-q", *_tiny(runs, "cut", 3)]) == 0
    a = load_training_state(find_checkpoint(runs / "full"))
    b = load_training_state(find_checkpoint(cut))
    assert a["iteration"] == b["iteration"] == 3
    for part in ("model", "ema", "disc"):  # the discriminator (SN's u, v included) resumes too
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs after resume"
    assert "conv1.weight_u" in a["disc"] and a["d_optimizer"]["state"]
    for i, s in a["d_optimizer"]["state"].items():
        assert torch.equal(s["exp_avg"], b["d_optimizer"]["state"][i]["exp_avg"])
    recs = [json.loads(line) for line in (cut / "metrics.jsonl").read_text().splitlines()]
    last = recs[-1]
    assert {"total", "l1", "g_gan"} <= last["loss"].keys() and last["iter"] == 3
    assert set(last["gan"]) == {"d_loss", "d_real", "d_fake"}
    assert 0 < last["gan"]["d_loss"] < 5 and 0 < last["loss"]["g_gan"] < 5
    weights = tmp_path / "stage2.safetensors"
    assert main(["export-weights", str(cut), "-o", str(weights)]) == 0
    img = tmp_path / "photo.png"
    write_image(img, np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8))
    out = tmp_path / "photo_x4.png"
    assert main(["upscale", str(img), "--weights", str(weights), "-o", str(out), "-q"]) == 0
    assert read_image(out).shape == (48, 80, 3)


def test_perceptual_and_distill_terms_in_the_loop(tmp_path: Path) -> None:
    """One iteration with every term on: the teacher (bundled safmn-x4) and random VGG19."""
    _random_vgg19(tmp_path / "vgg19.pth")
    more = [
        "loss.perceptual=1", f"loss.perceptual_weights={tmp_path / 'vgg19.pth'}",
        "loss.distill=1", "loss.distill_teacher=safmn-x4", "model.args={dim: 8, n_blocks: 1}",
    ]  # fmt: skip
    runs = tmp_path / "runs"
    assert main(["train", str(RECIPE), "-q", *_tiny(runs, "all", 1, *more)]) == 0
    rec = json.loads((runs / "all" / "metrics.jsonl").read_text().splitlines()[-1])
    loss = rec["loss"]
    assert loss["perceptual"] > 0 and loss["distill"] > 0
    expected = loss["l1"] + loss["perceptual"] + loss["distill"] + 0.1 * loss["g_gan"]
    assert loss["total"] == pytest.approx(expected, rel=1e-5)


def test_teacher_must_match_the_scale(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sets = _tiny(tmp_path / "runs", "t", 1, "loss.distill=1", "loss.distill_teacher=safmn-x2")
    assert main(["train", str(RECIPE), "-q", *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: loss.distill_teacher: ") and "\n" not in err


def test_recipe_trains_another_architecture(tmp_path: Path) -> None:
    """``--set model.name=ups-s`` (with its own initial weights): one step with the GAN on."""
    sets = _tiny(tmp_path / "runs", "ups", 1, "model.name=ups-s", "model.init=ups-s-x4")
    assert main(["train", str(RECIPE), "-q", *sets, "--set", "data.patch_size=16"]) == 0
    state = load_training_state(find_checkpoint(tmp_path / "runs" / "ups"))
    assert state["arch"] == "ups" and "conv9.weight" in state["disc"]
