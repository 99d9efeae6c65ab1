"""Interoperability with spandrel, the loader of chaiNNer and ComfyUI (a test-only dependency).

- every SAFMN weight file lightsr ships (and any file lightsr's export writes) loads in spandrel
  and gives lightsr's output;
- every checkpoint under ``shared/weights`` that spandrel recognises loads in lightsr with the
  same output; for the families both have (SAFMN, SPAN, SwinIR) state dicts in spandrel's
  layout load in lightsr, and lightsr's in spandrel's.

spandrel imports torchvision (for two architectures lightsr does not use). Where torchvision's
compiled operators do not match the installed torch (a CUDA torchvision wheel next to a CPU
torch: ``operator torchvision::nms does not exist``), the two functions spandrel imports from
it are replaced by stubs for the import; nothing here calls them.
"""

from __future__ import annotations

import enum
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from lightsr.inference.upscaler import load_model
from lightsr.models.catalog import MODELS, bundled_weights_path, is_bundled
from lightsr.models.checkpoint import detect_arch, load_checkpoint, save_safetensors
from lightsr.models.registry import build_model

from conftest import need_shared

#: The files under shared/weights that spandrel 0.4.2 recognises (all others: unsupported;
#: the NTIRE SPAN-family files hold only the fused ``eval_conv`` weights, while spandrel's
#: SPAN detector requires the training branches ``conv_1.sk``).
SPANDREL_SUPPORTED = {"safmn/SAFMN_DF2K_x2.pth": ("SAFMN", 2)}


def _stub_torchvision() -> None:
    for name in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[name]

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("torchvision is not usable with this torch")

    tv = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    functional.rotate = unavailable  # type: ignore[attr-defined]
    functional.normalize = unavailable  # type: ignore[attr-defined]
    tv.transforms = transforms  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    sys.modules.update(
        {
            "torchvision": tv,
            "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional,
        }
    )


@pytest.fixture(scope="module")
def spandrel() -> Any:
    if importlib.util.find_spec("spandrel") is None:
        pytest.skip("spandrel is not installed (a dev dependency)")
    try:
        import torchvision  # noqa: F401
    except (ImportError, OSError, RuntimeError):
        saved = {k: v for k, v in sys.modules.items() if k.startswith("torchvision")}
        _stub_torchvision()
        try:
            import spandrel as module
        finally:
            for k in [k for k in sys.modules if k.startswith("torchvision")]:
                del sys.modules[k]
            sys.modules.update(saved)
        return module
    import spandrel as module

    return module


def _image(h: int, w: int) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * w))


def _same(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    assert a.shape == b.shape
    err = float((a - b).abs().max())
    assert err <= tol * max(1.0, float(b.abs().max())), err


def _random(model: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model.eval()


BUNDLED_SAFMN = sorted(
    n for n, s in MODELS.items() if s.arch == "safmn" and is_bundled(s) and s.scale > 1
)
#: lightsr's same-size restoration SAFMNs (safmn-denoise, safmn-jpeg): the input is added to the
#: network's output (a global residual), which spandrel's SAFMN does not know.
BUNDLED_SAFMN_X1 = sorted(
    n for n, s in MODELS.items() if s.arch == "safmn" and is_bundled(s) and s.scale == 1
)


def test_lightsr_bundles_safmn_weights() -> None:
    assert {"safmn-x2", "safmn-x3", "safmn-x4"} <= set(BUNDLED_SAFMN)


@pytest.mark.parametrize("name", BUNDLED_SAFMN)
def test_bundled_safmn_loads_in_spandrel_with_the_same_output(spandrel: Any, name: str) -> None:
    path = bundled_weights_path(MODELS[name].weights or "")
    desc = spandrel.ModelLoader().load_from_file(str(path))
    assert (desc.architecture.id, desc.scale) == ("SAFMN", MODELS[name].scale)
    assert desc.size_requirements.multiple_of == 8
    ours = load_model(name, device="cpu", fast=False).model
    x = _image(24, 32)  # a multiple of 8: spandrel's caller pads, as lightsr's
    with torch.no_grad():
        _same(desc.model.eval()(x), ours(x))


@pytest.mark.parametrize("name", BUNDLED_SAFMN_X1)
def test_bundled_restoration_safmn_in_spandrel_lacks_only_the_residual(
    spandrel: Any, name: str
) -> None:
    """spandrel loads safmn-denoise/safmn-jpeg as a SAFMN x1 and runs the network without the
    input added back: its output plus the input is lightsr's (docs/interop.md)."""
    path = bundled_weights_path(MODELS[name].weights or "")
    desc = spandrel.ModelLoader().load_from_file(str(path))
    assert (desc.architecture.id, desc.scale) == ("SAFMN", 1)
    ours = load_model(name, device="cpu", fast=False).model
    x = _image(24, 32)
    with torch.no_grad():
        theirs = desc.model.eval()(x)
        _same(theirs + x, ours(x))
        assert (theirs - ours(x)).abs().max() > 0.1


def test_lightsr_export_writes_what_spandrel_recognises(spandrel: Any, tmp_path: Path) -> None:
    """What ``lightsr train``'s export and ``save_safetensors`` write for SAFMN (a
    ``.safetensors`` with the official tensor names) is a file chaiNNer/ComfyUI load."""
    model = _random(build_model("safmn-x3"))
    path = save_safetensors(model, tmp_path / "trained.safetensors")
    desc = spandrel.ModelLoader().load_from_file(str(path))
    assert (desc.architecture.id, desc.scale) == ("SAFMN", 3)
    x = _image(16, 24)
    with torch.no_grad():
        _same(desc.model.eval()(x), model(x))


def _weight_files() -> list[str]:
    root = need_shared("weights")
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.pth"))


def test_every_shared_checkpoint_spandrel_supports_loads_in_lightsr(spandrel: Any) -> None:
    root = need_shared("weights")
    supported = {}
    for rel in _weight_files():
        try:
            desc = spandrel.ModelLoader().load_from_file(str(root / rel))
        except spandrel.UnsupportedModelError:
            continue
        supported[rel] = (desc.architecture.id, desc.scale)
        ours, found = load_checkpoint(root / rel)  # strict
        assert found.scale == desc.scale
        x = _image(24, 32)
        with torch.no_grad():
            _same(desc.model.eval()(x), ours(x))
    assert supported == SPANDREL_SUPPORTED


def test_span_training_checkpoints_load_both_ways(spandrel: Any, tmp_path: Path) -> None:
    """A SPAN training checkpoint (branches + ``eval_conv``, spandrel's and the official
    layout) loads in lightsr and in spandrel with the same output; its re-parameterised
    (inference) form is lightsr-only, as spandrel's detector requires the branches."""
    from lightsr.models.archs.span import SPAN, reparameterise

    ours = _random(SPAN(feature_channels=12, upscaling_factor=2, training_form=True))
    path = tmp_path / "span_train.pth"
    torch.save(ours.state_dict(), path)
    desc = spandrel.ModelLoader().load_from_file(str(path))
    assert (desc.architecture.id, desc.scale) == ("SPAN", 2)
    again, found = load_checkpoint(path)
    assert found.config == {"feature_channels": 12, "training_form": True}
    x = _image(13, 11)
    with torch.no_grad():
        want = desc.model.eval()(x)
        _same(again(x), want)
        _same(reparameterise(again)(x), want, tol=1e-4)
    # spandrel's own model, saved as spandrel would: lightsr reads it
    found = detect_arch(desc.model.state_dict())
    assert found is not None and found.arch == "span" and found.scale == 2
    fused = tmp_path / "span_fused.pth"
    torch.save(reparameterise(again).state_dict(), fused)
    with pytest.raises(spandrel.UnsupportedModelError):
        spandrel.ModelLoader().load_from_file(str(fused))


def test_swinir_loads_both_ways(spandrel: Any, tmp_path: Path) -> None:
    """SwinIR's full state dict (with the ``relative_position_index`` buffers) loads in both
    with the same output. lightsr's ``.safetensors`` leave those derived buffers out (1.3 MB
    for SwinIR-light), and spandrel's SwinIR detector requires them: such files do not load
    in spandrel (docs/interop.md)."""
    model = _random(build_model("swinir-light-x2"))
    desc = spandrel.ModelLoader().load_from_state_dict(dict(model.state_dict()))
    assert (desc.architecture.id, desc.scale) == ("SwinIR", 2)
    again, found = load_checkpoint(_saved(desc.model.state_dict(), tmp_path / "swinir.pth"))
    assert found.arch == "swinir"
    x = _image(16, 24)
    with torch.no_grad():
        want = desc.model.eval()(x)
        _same(model(x), want)
        _same(again(x), want)
    slim = save_safetensors(model, tmp_path / "swinir.safetensors")
    with pytest.raises(spandrel.UnsupportedModelError):
        spandrel.ModelLoader().load_from_file(str(slim))


def _saved(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(dict(state), path)
    return path
