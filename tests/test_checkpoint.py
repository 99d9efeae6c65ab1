"""Checkpoints: safe loading of every layout, detection from shapes, safetensors metadata."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from lightsr.errors import CheckpointError
from lightsr.models.checkpoint import (
    detect_arch,
    load_checkpoint,
    read_state_dict,
    save_safetensors,
)
from lightsr.models.registry import build_model

from conftest import need_shared


def official_x2() -> Path:
    return need_shared("weights", "safmn", "SAFMN_DF2K_x2.pth")


def test_official_checkpoint_loads_strictly_and_is_detected() -> None:
    model, found = load_checkpoint(official_x2())
    assert found.arch == "safmn"
    assert found.scale == 2
    assert found.config == {"dim": 36, "n_blocks": 8, "ffn_scale": 2.0}
    assert sum(p.numel() for p in model.parameters()) == 227_820


@pytest.mark.parametrize("name", ["safmn-x3", "safmn-l-x4", "safmn-l-x2"])
def test_detection_from_shapes(name: str) -> None:
    model = build_model(name)
    found = detect_arch(model.state_dict())
    assert found is not None
    assert found.scale == int(name[-1])
    assert found.config["dim"] == (128 if "-l-" in name else 36)
    assert found.config["n_blocks"] == (16 if "-l-" in name else 8)
    assert found.config["ffn_scale"] == 2.0


def _sd(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_model("safmn-x2").state_dict()


def test_params_ema_preferred_over_params(tmp_path: Path) -> None:
    ema, raw = _sd(1), _sd(2)
    torch.save({"params": raw, "params_ema": ema}, tmp_path / "b.pth")
    sd, _ = read_state_dict(tmp_path / "b.pth")
    torch.testing.assert_close(sd["to_feat.weight"], ema["to_feat.weight"])


@pytest.mark.parametrize("layout", ["bare", "module", "params", "state_dict", "compiled"])
def test_layouts(tmp_path: Path, layout: str) -> None:
    sd = _sd()
    obj: object = {
        "bare": sd,
        "module": {f"module.{k}": v for k, v in sd.items()},
        "params": {"params": sd},
        "state_dict": {"state_dict": sd, "epoch": 3},
        "compiled": {f"_orig_mod.{k}": v for k, v in sd.items()},
    }[layout]
    torch.save(obj, tmp_path / "c.pt")
    model, found = load_checkpoint(tmp_path / "c.pt")
    assert found.scale == 2
    torch.testing.assert_close(model.to_feat.weight, sd["to_feat.weight"])


def _retag_storages(src: Path, dst: Path, location: str) -> None:
    """Rewrite a torch.save zip so its storages claim to live on ``location`` (e.g. cuda:0)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("data.pkl"):
                new = location.encode()
                # protocol-2 BINUNICODE string "cpu" (memoised: appears once)
                old = b"X" + (3).to_bytes(4, "little") + b"cpu"
                data = data.replace(old, b"X" + len(new).to_bytes(4, "little") + new)
                assert location.encode() in data
            zout.writestr(item, data)


def test_gpu_saved_checkpoint_loads_on_cpu(tmp_path: Path) -> None:
    sd = _sd()
    torch.save({"params": sd}, tmp_path / "cpu.pth")
    _retag_storages(tmp_path / "cpu.pth", tmp_path / "gpu.pth", "cuda:0")
    if not torch.cuda.is_available():  # prove the file really asks for CUDA without remapping
        with pytest.raises(RuntimeError):
            torch.load(tmp_path / "gpu.pth", weights_only=True)
    model, _ = load_checkpoint(tmp_path / "gpu.pth")
    assert model.to_feat.weight.device.type == "cpu"
    torch.testing.assert_close(model.to_feat.weight, sd["to_feat.weight"])


def test_safetensors_round_trip_with_metadata(tmp_path: Path) -> None:
    model, _ = load_checkpoint(official_x2())
    out = save_safetensors(model, tmp_path / "m.safetensors", extra={"note": "test"})
    _, meta = read_state_dict(out)
    assert meta["arch"] == "safmn" and meta["scale"] == "2" and meta["note"] == "test"
    assert '"dim": 36' in meta["config"]
    again, found = load_checkpoint(out)
    assert found.scale == 2
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left nothing behind


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    torch.save({"params": _sd(), "hook": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"evil\.pth.*refuses"):
        read_state_dict(tmp_path / "evil.pth")


def test_plain_pickle_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.pth").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match=r"p\.pth"):
        read_state_dict(tmp_path / "p.pth")


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "missing"])
def test_bad_files_name_the_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.pth"
    if kind == "truncated":
        buf = io.BytesIO()
        torch.save({"params": _sd()}, buf)
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif kind == "garbage":
        path.write_bytes(b"\x00\x01not a checkpoint" * 50)
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=rf"{kind}\.pth"):
        load_checkpoint(path)


def test_truncated_safetensors(tmp_path: Path) -> None:
    good = save_safetensors(build_model("safmn-x2"), tmp_path / "g.safetensors")
    bad = tmp_path / "t.safetensors"
    bad.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"t\.safetensors.*truncated or corrupt"):
        load_checkpoint(bad)


def test_unknown_and_mismatched(tmp_path: Path) -> None:
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "u.pth")
    with pytest.raises(CheckpointError, match=r"u\.pth: unknown architecture"):
        load_checkpoint(tmp_path / "u.pth")
    sd = _sd()
    sd["feats.0.ccm.ccm.2.weight"] = torch.zeros(36, 70, 1, 1)
    torch.save(sd, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match=r"m\.pth: tensors do not match.*ccm"):
        load_checkpoint(tmp_path / "m.pth")
