"""Checkpoints: safe loading of every layout, detection from shapes, safetensors metadata; files
that are not checkpoints; ``lightsr models``."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from lightsr.errors import CheckpointError
from lightsr.models.catalog import MODELS, is_bundled
from lightsr.models.checkpoint import (
    detect_arch,
    load_checkpoint,
    read_state_dict,
    save_safetensors,
    sniff_format,
)
from lightsr.models.detect import detect_all
from lightsr.models.registry import arch_descriptors, build_model

from conftest import REPO, need_shared


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


# --------------------------------------------------------------------------------------------
# Files that are not checkpoints; the format comes from the bytes, not the suffix


def test_non_checkpoint_says_what_it_is_not(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# lightsr\n\nnot a checkpoint at all\n")
    with pytest.raises(CheckpointError, match=r"README\.md: not a checkpoint \(neither"):
        read_state_dict(readme)
    assert sniff_format(readme) is None


def test_inspect_readme_subprocess() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "lightsr.cli", "inspect", "README.md"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "README.md: not a checkpoint" in err and "pickled" not in err


def test_format_is_sniffed_not_taken_from_the_suffix(tmp_path: Path) -> None:
    st = save_safetensors(build_model("safmn-x2"), tmp_path / "m.safetensors")
    as_bin = tmp_path / "m.bin"
    as_bin.write_bytes(st.read_bytes())
    assert sniff_format(as_bin) == "safetensors"
    _, meta = read_state_dict(as_bin)
    assert meta["arch"] == "safmn"
    torch.save(_sd(), tmp_path / "z.safetensors")  # a torch zip under the wrong suffix
    assert sniff_format(tmp_path / "z.safetensors") == "zip"
    assert load_checkpoint(tmp_path / "z.safetensors")[1].arch == "safmn"
    (tmp_path / "p.pth").write_bytes(pickle.dumps({"a": 1}))
    assert sniff_format(tmp_path / "p.pth") == "pickle"


# --------------------------------------------------------------------------------------------
# Detection: every detector runs, exactly one answers


@pytest.mark.parametrize(
    "name", [n for n, s in MODELS.items() if not s.config.keys() - {"dim", "n_blocks", "ffn_scale"}
             or s.arch != "safmn"]
)  # fmt: skip
def test_each_named_model_matches_exactly_one_detector(name: str) -> None:
    """The paper's SAFMN sizes and every other named model: one detector only (the SAFMN
    ablations change module options that shapes cannot show; their files carry metadata)."""
    found = detect_all(build_model(name).state_dict())
    assert [d.arch for d in found] == [MODELS[name].arch]


def test_detectors_live_with_their_architectures() -> None:
    for name, descriptor in arch_descriptors().items():
        assert descriptor.detect is not None, name
        assert descriptor.detect.__module__ == descriptor.build.__module__, name


# --------------------------------------------------------------------------------------------
# lightsr models: grouped, bundled first, narrow, no torch


def _models_text() -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "lightsr.cli", "models"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_models_table_is_grouped_bundled_first_and_narrow() -> None:
    lines = _models_text()
    assert max(len(line) for line in lines) <= 100  # piped: at most 100 columns
    rows = [ln.split()[0] for ln in lines if ln.startswith("  ") and ln.split()[0] in MODELS]
    assert sorted(rows) == sorted(MODELS)  # every model once
    archs = [MODELS[n].arch for n in rows]
    runs = [a for i, a in enumerate(archs) if i == 0 or archs[i - 1] != a]
    assert len(runs) == len(set(runs))  # one block per architecture
    bundled = [is_bundled(MODELS[n]) for n in rows]
    assert bundled[:3] == [True, True, True] and rows[:3] == ["safmn-x2", "safmn-x3", "safmn-x4"]
    for arch in set(archs):  # within a block, bundled models come first
        flags = [b for n, b in zip(rows, bundled, strict=True) if MODELS[n].arch == arch]
        assert flags == sorted(flags, reverse=True), arch
    with_bundled = [a for a in runs if any(is_bundled(s) for s in MODELS.values() if s.arch == a)]
    assert runs[: len(with_bundled)] == with_bundled  # blocks with bundled weights first
    assert any(ln.startswith("safmn (") for ln in lines)


def test_models_json_keeps_every_field(capsys) -> None:
    from lightsr.cli import main

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows if r["name"] in MODELS].__len__() == len(MODELS)
    for r in rows:
        spec = MODELS[r["name"]]
        assert r["arch"] == spec.arch and r["scale"] == spec.scale
        assert r["config"] == spec.config and r["paper"] == spec.paper
        assert r["description"] == spec.description and r["weights_file"] == spec.weights
        assert r["params"] == spec.params and r["weights"] in ("bundled", "none")


def test_models_imports_no_torch() -> None:
    code = (
        "import sys, io, contextlib\n"
        "from lightsr.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['models']) == 0 and main(['models', '--json']) == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "import lightsr.models.catalog as c; assert c.MODELS['safmn-x4'].params == 239_520\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr


def test_safetensors_whose_header_length_starts_with_0x80_is_not_a_pickle(tmp_path) -> None:
    """A safetensors header of length 0x..80 bytes starts the file with b"\\x80", the pickle
    opcode: the format test must look for the safetensors header first (found by an export)."""
    import json
    import struct

    import torch

    from lightsr.models.checkpoint import read_state_dict, sniff_format

    tensor = torch.arange(6, dtype=torch.float32)
    text = json.dumps({"w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}})
    text += " " * ((0x180 - len(text)) % 256)  # trailing spaces are allowed in the header
    assert len(text) & 0xFF == 0x80
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text.encode() + tensor.numpy().tobytes())
    assert sniff_format(path) == "safetensors"
    state, _ = read_state_dict(path)
    assert torch.equal(state["w"], tensor)
