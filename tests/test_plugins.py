"""Architectures as plug-ins: one registered from this module alone is detected, loaded and run
like a built-in one; detection has no order (two matches are an error); nothing leaks out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lightsr
from lightsr.errors import CheckpointError
from lightsr.models.base import (
    ArchDescriptor,
    Detected,
    SRModel,
    StateDict,
    pixelshuffle_scale,
)
from lightsr.models.checkpoint import load_checkpoint, save_safetensors
from lightsr.models.detect import detect_all, detect_arch
from lightsr.models.registry import (
    ARCHS,
    arch_descriptors,
    build_arch,
    build_model,
    get_arch,
    register_arch,
    size_multiple,
    unregister_arch,
)

# --------------------------------------------------------------------------------------------
# A toy architecture, declared the way an architecture file declares one


class ToyNet(nn.Module):
    """conv -> ReLU -> conv -> PixelShuffle, plus a nearest-neighbour skip."""

    def __init__(self, *, channels: int = 4, upscaling_factor: int = 2) -> None:
        super().__init__()
        self.scale = upscaling_factor
        self.toy_plugin_head = nn.Conv2d(3, channels, 3, padding=1)
        self.toy_plugin_tail = nn.Conv2d(channels, 3 * upscaling_factor**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(upscaling_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        body = self.shuffle(self.toy_plugin_tail(F.relu(self.toy_plugin_head(x))))
        return body + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def detect_toy(sd: StateDict) -> Detected | None:
    if "toy_plugin_head.weight" not in sd:  # a key no other architecture has
        return None
    scale = pixelshuffle_scale(sd["toy_plugin_tail.weight"].shape[0])
    if scale is None:
        return None
    return Detected("toy_plugin", {"channels": sd["toy_plugin_head.weight"].shape[0]}, scale)


TOY = ArchDescriptor(
    name="toy_plugin", build=ToyNet, detect=detect_toy, scales=(2, 3), size_multiple=4
)

BUILTIN = set(arch_descriptors())


@pytest.fixture
def toy() -> Iterator[ArchDescriptor]:
    register_arch(TOY)
    try:
        yield TOY
    finally:
        unregister_arch(TOY.name)


def _toy(seed: int = 0, **kwargs: int) -> ToyNet:
    torch.manual_seed(seed)
    return ToyNet(**kwargs).eval()


# --------------------------------------------------------------------------------------------


def test_registered_toy_is_detected_and_built(toy: ArchDescriptor) -> None:
    assert get_arch("toy_plugin") is toy and ARCHS["toy_plugin"] is ToyNet
    found = detect_arch(_toy(channels=5, upscaling_factor=3).state_dict())
    assert found == Detected("toy_plugin", {"channels": 5}, 3)
    assert isinstance(build_arch("toy_plugin", scale=2, channels=6), ToyNet)


def test_toy_loads_from_pth_and_safetensors(toy: ArchDescriptor, tmp_path: Path) -> None:
    net = _toy(1, channels=5, upscaling_factor=3)
    torch.save({"params": net.state_dict()}, tmp_path / "toy.pth")
    model, found = load_checkpoint(tmp_path / "toy.pth")  # strict inside
    assert isinstance(model, ToyNet) and (found.arch, found.scale) == ("toy_plugin", 3)
    x = torch.rand(1, 3, 8, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x))
    out = save_safetensors(model, tmp_path / "toy.safetensors")  # detected, then stored
    again, found = load_checkpoint(out)
    assert (found.arch, found.config, found.scale) == ("toy_plugin", {"channels": 5}, 3)
    with torch.no_grad():
        torch.testing.assert_close(again(x), net(x))


def test_toy_upscales_through_load_model(toy: ArchDescriptor, tmp_path: Path) -> None:
    net = _toy(2, upscaling_factor=2)
    torch.save(net.state_dict(), tmp_path / "toy_x2.pth")
    up = lightsr.load_model(tmp_path / "toy_x2.pth", device="cpu")
    assert (up.scale, up.arch) == (2, "toy_plugin")
    assert size_multiple(up.model) == 4 and up.size_multiple == 4  # from the descriptor
    image = np.random.default_rng(0).random((12, 8, 3), dtype=np.float32)
    out = up.upscale(image)
    with torch.no_grad():
        ref = net(torch.from_numpy(image.transpose(2, 0, 1))[None])[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(out, np.clip(ref, 0, 1), atol=1e-5)
    odd = up.upscale(np.zeros((9, 7, 3), np.uint8))  # padded to multiples of 4, then cropped
    assert odd.shape == (18, 14, 3) and odd.dtype == np.uint8


def test_two_matching_detectors_are_an_error_naming_both(
    toy: ArchDescriptor, tmp_path: Path
) -> None:
    twin = ArchDescriptor(
        name="toy_twin",
        build=ToyNet,
        detect=lambda sd: Detected("toy_twin", {}, 2) if "toy_plugin_head.weight" in sd else None,
    )
    sd = _toy().state_dict()
    register_arch(twin)
    try:
        assert sorted(d.arch for d in detect_all(sd)) == ["toy_plugin", "toy_twin"]
        with pytest.raises(CheckpointError, match="toy_plugin x2 and toy_twin x2"):
            detect_arch(sd)
        torch.save(sd, tmp_path / "both.pth")
        with pytest.raises(CheckpointError, match=r"both\.pth: ambiguous"):
            load_checkpoint(tmp_path / "both.pth")
    finally:
        unregister_arch("toy_twin")
    assert detect_arch(sd).arch == "toy_plugin"  # one left: no ambiguity


def test_registry_rules(toy: ArchDescriptor) -> None:
    assert register_arch(toy) is toy  # the same descriptor again: nothing happens
    with pytest.raises(ValueError, match="'safmn' is already registered"):
        register_arch(ArchDescriptor(name="safmn", build=ToyNet, detect=None))
    with pytest.raises(ValueError, match="lower case"):
        ArchDescriptor(name="Toy-Net", build=ToyNet, detect=None)
    liar = ArchDescriptor(name="toy_liar", build=ToyNet, detect=lambda sd: Detected("x", {}, 2))
    register_arch(liar)
    try:
        with pytest.raises(RuntimeError, match=r"toy_liar.*answered 'x'"):
            detect_arch({"a": torch.zeros(1)})
    finally:
        unregister_arch("toy_liar")
    with pytest.raises(KeyError, match="not registered"):
        unregister_arch("toy_liar")


def test_cleanup_leaves_the_builtin_registry() -> None:
    assert set(arch_descriptors()) == BUILTIN and "toy_plugin" not in ARCHS
    assert detect_arch(_toy().state_dict()) is None
    with pytest.raises(KeyError, match="unknown architecture 'toy_plugin'"):
        build_arch("toy_plugin", scale=2)


def test_models_follow_the_protocol() -> None:
    assert isinstance(_toy(), SRModel)
    for name in ("safmn-x2", "ups-s-x2", "imdn-x2", "carn-m-x3", "fsrcnn-x4"):
        assert isinstance(build_model(name), SRModel), name
    assert not isinstance(nn.Identity(), SRModel)  # no scale
