"""lightsr.upscale_files: inputs, output names, earlier outputs, failures, progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lightsr
from lightsr.errors import LightSRError
from lightsr.inference.batch import BatchSummary, FileResult, upscale_files
from lightsr.inference.io import read_image, write_image


class Nearest:
    """A stand-in model (nearest-neighbour x4): the batch logic without a network."""

    scale = 4
    name, device, precision = "nearest", "cpu", "fp32"

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.calls = 0

    def upscale(self, img: np.ndarray, *, tile: int | None = None, tile_overlap: int = 32) -> Any:
        self.calls += 1
        if self.fail_on is not None and img.shape[1] == 17:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB\nmore details")
        return img.repeat(self.scale, 0).repeat(self.scale, 1)


def _img(path: Path, width: int = 16) -> Path:
    rng = np.random.default_rng(len(str(path)))
    write_image(path, rng.integers(0, 256, (12, width, 3), dtype=np.uint8))
    return path


def _names(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_folder_tree_is_mirrored_and_each_file_has_a_record(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _img(src / "a.png")
    _img(src / "sub" / "b.jpg")
    (src / "sub" / "c_bad.png").write_text("not an image")
    (src / "notes.txt").write_text("ignored: not an image extension")
    events: list[tuple[int, int, FileResult | None]] = []

    def progress(summary: BatchSummary, record: FileResult | None) -> None:
        events.append((len(summary.results), summary.total, record))

    summary = upscale_files(src, Nearest(), output=tmp_path / "out", progress=progress)
    assert _names(tmp_path / "out") == ["a_x4.png", "sub/b_x4.jpg"]
    assert [r.src.name for r in summary.done] == ["a.png", "b.jpg"]
    a = summary.done[0]
    assert a.dst == tmp_path / "out" / "a_x4.png"
    assert (a.input_size, a.output_size, a.error) == ((16, 12), (64, 48), None)
    assert a.seconds > 0
    [bad] = summary.failed
    assert bad.src.name == "c_bad.png" and "c_bad.png" in bad.error and "\n" not in bad.error
    assert summary.skipped == [] and summary.earlier_outputs == [] and summary.suffix == "_x4"
    assert events[0] == (0, 3, None)  # planned, then one call per file
    assert [(n, r.status) for n, _, r in events[1:]] == [(1, "done"), (2, "done"), (3, "failed")]


def test_a_second_run_does_not_take_its_outputs_as_inputs(tmp_path: Path) -> None:
    _img(tmp_path / "a.png")
    _img(tmp_path / "b.jpg")
    first = upscale_files(tmp_path, Nearest())
    assert len(first.done) == 2 and _names(tmp_path) == ["a.png", "a_x4.png", "b.jpg", "b_x4.jpg"]
    for run in (
        lambda **kw: upscale_files(tmp_path, Nearest(), **kw),  # the folder again
        lambda **kw: upscale_files(str(tmp_path / "*"), Nearest(), **kw),  # a glob
        lambda **kw: upscale_files(sorted(tmp_path.iterdir()), Nearest(), **kw),  # shell glob
    ):
        again = run(skip_existing=True)
        assert [p.name for p in again.earlier_outputs] == ["a_x4.png", "b_x4.jpg"]
        assert again.earlier_outputs_pattern == "*_x4.*"
        assert [r.status for r in again.results] == ["skipped", "skipped"]
        assert len(run().done) == 2
        assert _names(tmp_path) == ["a.png", "a_x4.png", "b.jpg", "b_x4.jpg"]
    # Another format than the source's, or a chain of outputs: still earlier outputs.
    _img(tmp_path / "a_x4.webp")
    _img(tmp_path / "a_x4_x4.png")
    assert len(upscale_files(tmp_path, Nearest()).earlier_outputs) == 4
    # Named without its source, an output is an input like any other.
    alone = upscale_files(tmp_path / "b_x4.jpg", Nearest())
    assert alone.earlier_outputs == [] and alone.done[0].dst.name == "b_x4_x4.jpg"
    forced = upscale_files(tmp_path, Nearest(), include_outputs=True)
    assert forced.earlier_outputs == [] and len(forced.done) == 7
    assert (tmp_path / "a_x4_x4_x4.png").exists()


def test_earlier_outputs_in_an_output_folder_inside_the_input(tmp_path: Path) -> None:
    _img(tmp_path / "a.png")
    _img(tmp_path / "sub" / "b.png")
    out = tmp_path / "up"
    assert len(upscale_files(tmp_path, Nearest(), output=out).done) == 2
    again = upscale_files(tmp_path, Nearest(), output=out)
    assert sorted(p.name for p in again.earlier_outputs) == ["a_x4.png", "b_x4.png"]
    assert _names(out) == ["a_x4.png", "sub/b_x4.png"]


def test_an_image_file_output_takes_one_input_image(tmp_path: Path) -> None:
    _img(tmp_path / "a.png")
    _img(tmp_path / "b.png")
    model = Nearest()
    for inputs in (tmp_path, [tmp_path / "a.png", tmp_path / "b.png"], str(tmp_path / "*.png")):
        with pytest.raises(LightSRError, match=r"single\.png is an image file name"):
            upscale_files(inputs, model, output=tmp_path / "single.png")
    assert model.calls == 0 and not (tmp_path / "single.png").exists()
    one = upscale_files(tmp_path / "a.png", model, output=tmp_path / "single.png")
    assert one.done[0].dst == tmp_path / "single.png"
    assert read_image(tmp_path / "single.png").shape == (48, 64, 3)


def test_usage_mistakes_raise_before_the_model_loads(tmp_path: Path) -> None:
    _img(tmp_path / "a.png")

    def loader() -> Nearest:
        raise AssertionError("the model must not load")

    for kwargs, needle in [
        ({"tile": 0}, "tile"),
        ({"tile_overlap": -1}, "tile_overlap"),
        ({"outscale": 0}, "outscale"),
        ({"ext": "gif"}, "ext: 'gif'"),
    ]:
        with pytest.raises(LightSRError, match=needle):
            upscale_files(tmp_path, loader, **kwargs)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LightSRError, match="no input images found"):
        upscale_files(tmp_path / "empty", loader)


def test_outscale_ext_overwrite_refusal_and_failures_go_on(tmp_path: Path) -> None:
    a = _img(tmp_path / "a.png")
    original = a.read_bytes()
    summary = upscale_files(a, Nearest(), suffix="")
    assert "overwrite the input" in summary.failed[0].error and a.read_bytes() == original
    s = upscale_files(a, Nearest(), outscale=2, ext="jpg", output=tmp_path / "o")
    assert s.done[0].output_size == (32, 24)
    assert read_image(tmp_path / "o" / "a_x4.jpg").shape == (24, 32, 3)
    wide = _img(tmp_path / "w.png", width=17)
    s = upscale_files([wide, a, tmp_path / "missing.png"], Nearest(fail_on="w"), output=tmp_path)
    assert [r.status for r in s.results] == ["failed", "done", "failed"]
    assert s.failed[0].error.startswith(f"{wide}: CUDA out of memory. Tried to allocate 2 GiB")
    assert s.failed[0].error.endswith("(try a smaller tile size)")
    assert "missing.png" in s.failed[1].error


def test_bundled_model_by_name_and_the_public_export(tmp_path: Path) -> None:
    assert lightsr.upscale_files is upscale_files
    _img(tmp_path / "a.png")
    summary = lightsr.upscale_files([tmp_path / "a.png"])  # the default model (bundled x4)
    assert summary.model.scale == 4 and summary.done[0].output_size == (64, 48)
    assert read_image(tmp_path / "a_x4.png").shape == (48, 64, 3)


def test_outputs_keep_the_inputs_icc_profile_and_exif(tmp_path: Path) -> None:
    """A phone photo (EXIF orientation 6, ICC profile) comes out upright with its profile."""
    from PIL import Image

    src = tmp_path / "phone.jpg"
    stored = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # stored sideways: displayed 8 wide, 12 high
    icc = b"lightsr test profile " * 50
    im.save(src, exif=exif.tobytes(), icc_profile=icc, quality=95)
    summary = lightsr.upscale_files([src], "safmn-x2", output=tmp_path / "out")
    assert not summary.failed
    with Image.open(summary.done[0].dst) as out:
        assert out.size == (16, 24)
        assert out.info.get("icc_profile") == icc
        assert out.getexif().get(0x0112) == 1
