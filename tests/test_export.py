"""ONNX export: dynamic shapes, parity with PyTorch at awkward sizes, the onnxruntime backend."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest
import torch

from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.inference.io import read_image, write_image
from lightsr.inference.onnx import OnnxRuntimeModel, export_onnx, load_onnx, parse_static
from lightsr.inference.upscaler import Upscaler, load_model
from lightsr.models.archs.safmn import SAFMN

from conftest import need_shared

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def weights() -> Path:
    return need_shared("weights", "safmn", "SAFMN_DF2K_x2.pth")


def real_crop(h: int, w: int) -> np.ndarray:
    """An h x w float32 crop of a real photo (Set5 baby, HR)."""
    img = read_image(need_shared("datasets", "Set5", "HR", "baby.png"))
    return img[100 : 100 + h, 50 : 50 + w].astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "safmn_x2.onnx"
    result = export_onnx(weights(), path)
    assert result.dynamic and result.scale == 2 and result.opset == 17
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    return path


@pytest.fixture(scope="module")
def plain() -> Upscaler:
    return load_model(weights(), device="cpu", fast=False)


def test_graph_is_valid_with_dynamic_axes(exported: Path) -> None:
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["lightsr_scale"] == "2" and meta["lightsr_size_multiple"] == "8"
    ops = {n.op_type for n in model.graph.node}
    assert "MaxPool" in ops and "Resize" in ops and "LayerNormalization" in ops


@pytest.mark.parametrize(("h", "w"), [(37, 53), (181, 317), (8, 8), (1, 5), (64, 40)])
def test_onnxruntime_matches_pytorch(exported: Path, plain: Upscaler, h: int, w: int) -> None:
    ort = load_onnx(exported)
    img = real_crop(h, w)
    got, want = ort.upscale(img), plain.upscale(img)
    assert got.shape == want.shape == (2 * h, 2 * w, 3)
    assert np.abs(got - want).max() <= 1e-4


def test_dynamic_batch(exported: Path, plain: Upscaler) -> None:
    net = OnnxRuntimeModel(exported)
    x = torch.from_numpy(real_crop(24, 32)).permute(2, 0, 1)
    xb = torch.stack([x, x.flip(-1)])  # (2, 3, 24, 32)
    with torch.no_grad():
        want = plain.model(xb)
    assert (net(xb) - want).abs().max() <= 1e-4


def test_opset_13_decomposes_layer_norm(tmp_path: Path, plain: Upscaler) -> None:
    res = export_onnx(weights(), tmp_path / "m13.onnx", opset=13)
    assert res.max_abs_diff is not None and res.max_abs_diff <= 1e-4
    ops = {n.op_type for n in onnx.load(str(res.path)).graph.node}
    assert "LayerNormalization" not in ops
    img = real_crop(37, 53)
    assert np.abs(load_onnx(res.path).upscale(img) - plain.upscale(img)).max() <= 1e-4


def test_static_export(tmp_path: Path, plain: Upscaler) -> None:
    assert parse_static("96x64") == (64, 96)
    res = export_onnx(weights(), tmp_path / "static.onnx", static=(64, 96))
    dims = onnx.load(str(res.path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 64, 96]
    ort = load_onnx(res.path)
    exact = real_crop(64, 96)
    assert np.abs(ort.upscale(exact) - plain.upscale(exact)).max() <= 1e-4
    # Other sizes run too: padded up to the graph's size, or tiled into windows of it.
    for h, w in [(37, 53), (150, 130)]:
        assert ort.upscale(real_crop(h, w)).shape == (2 * h, 2 * w, 3)


def test_fp16_export(tmp_path: Path, plain: Upscaler) -> None:
    res = export_onnx(weights(), tmp_path / "fp16.onnx", fp16=True)
    model = onnx.load(str(res.path))
    conv_weights = [i for i in model.graph.initializer if len(i.dims) == 4]
    assert conv_weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in conv_weights)
    if res.max_abs_diff is None:
        pytest.skip("this onnxruntime cannot run float16 graphs on the CPU")
    img = real_crop(48, 64)
    a, b = load_onnx(res.path).upscale(img), plain.upscale(img)
    assert 10 * np.log10(1 / np.mean((a - b) ** 2)) >= 45


def test_cli_export_then_upscale_with_onnxruntime(tmp_path: Path, plain: Upscaler) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", str(weights()), "-o", str(out)]) == 0
    src = tmp_path / "in.png"
    img = (real_crop(37, 53) * 255 + 0.5).astype(np.uint8)
    write_image(src, img)
    dst = tmp_path / "out.png"
    args = ["upscale", str(src), "-o", str(dst), "--backend", "onnxruntime", "--onnx", str(out)]
    assert main([*args, "-q"]) == 0
    got = read_image(dst)
    assert got.shape == (74, 106, 3)
    assert np.abs(got.astype(int) - plain.upscale(img).astype(int)).max() <= 1
    tiled = tmp_path / "tiled.png"
    assert main([*args[:3], str(tiled), *args[4:], "--tile", "16", "-q"]) == 0
    assert np.abs(read_image(tiled).astype(int) - got.astype(int)).max() <= 1


def test_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(weights()), "-o", str(tmp_path / "x.onnx"), "--static", "30x40"])
    assert "multiples of 8" in capsys.readouterr().err
    assert main(["upscale", "whatever.png", "--backend", "onnxruntime"]) == 2
    assert "--onnx FILE" in capsys.readouterr().err
    assert main(["upscale", "whatever.png", "--onnx", "m.onnx"]) == 2
    assert "--backend onnxruntime" in capsys.readouterr().err
    with pytest.raises(LightSRError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")
    with pytest.raises(LightSRError, match="paper's configuration"):
        export_onnx(SAFMN(upscaling_factor=2, pool="avg"), tmp_path / "a.onnx")
    with pytest.raises(LightSRError, match="opset"):
        export_onnx(SAFMN(upscaling_factor=2), tmp_path / "b.onnx", opset=9)


def test_missing_onnx_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_onnx(name: str, *args: object, **kwargs: object) -> object:
        if name == "onnx":
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(LightSRError, match=r"pip install 'lightsr\[onnx\]'"):
        export_onnx(weights(), tmp_path / "m.onnx")
