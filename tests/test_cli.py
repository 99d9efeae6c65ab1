"""The lightsr command: upscale batches, errors as one line, models, inspect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lightsr.cli import main
from lightsr.inference.io import read_image, write_image

from conftest import need_shared


def weights() -> str:
    return str(need_shared("weights", "safmn", "SAFMN_DF2K_x2.pth"))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run(
        [sys.executable, "-m", "lightsr.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_golden_through_the_cli(tmp_path: Path) -> None:
    inputs = need_shared("golden", "inputs")
    proc = run_cli("upscale", str(inputs), "-o", str(tmp_path), "--weights", weights(), "-q")
    assert proc.returncode == 0, proc.stderr
    assert "3 done, 0 skipped, 0 failed" in proc.stderr
    for size in ("16x16", "32x32", "64x64"):
        out = read_image(tmp_path / f"{size}_x2.png")
        ref = read_image(need_shared("golden", "outputs", size, "SAFMN_DF2K_x2.png"))
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_batch_goes_on_past_bad_images(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    good = read_image(need_shared("golden", "inputs", "16x16.png"))
    write_image(src / "a_good.png", good)
    (src / "b_truncated.png").write_bytes((src / "a_good.png").read_bytes()[:200])
    (src / "c_text.png").write_text("hello, I am not an image")
    (src / "d_empty.jpg").write_bytes(b"")
    write_image(src / "e_huge.png", np.zeros((64, 64), np.uint8))
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    proc = run_cli(
        "upscale", str(src), "-o", str(tmp_path / "out"), "--weights", weights(),
        "--max-pixels", "1000", "-q",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "1 done, 0 skipped, 4 failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ("b_truncated.png", "c_text.png", "d_empty.jpg", "e_huge.png"):
        lines = [ln for ln in proc.stderr.splitlines() if name in ln]
        assert len(lines) == 1, proc.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_good_x2.png"]
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # inputs untouched


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["upscale", "x.png", "--tile", "0"], "tile: expected a whole number >= 1"),
        (["upscale", "x.png", "--tile-overlap", "-1"], "tile_overlap: expected"),
        (["upscale", "x.png", "--outscale", "0"], "outscale: expected a number > 0"),
        (["upscale", "x.png", "--precision", "fp8"], "--precision"),
        (
            ["upscale", "x.png", "--weights", "/nonexistent/w.pth"],
            "w.pth: checkpoint file not found",
        ),
        (["upscale", "x.png", "--model", "nope"], "unknown model"),
        (["inspect", "/nonexistent.pth"], "nonexistent.pth"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], needle: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        code = main(args)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_bad_checkpoint_subprocess(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    img = tmp_path / "i.png"
    write_image(img, np.zeros((8, 8, 3), np.uint8))
    proc = run_cli("upscale", str(img), "--weights", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "broken.pth" in proc.stderr


def test_never_overwrites_input_and_skip_existing(tmp_path: Path) -> None:
    img = tmp_path / "p.png"
    write_image(img, read_image(need_shared("golden", "inputs", "16x16.png")))
    original = img.read_bytes()
    assert main(["upscale", str(img), "--weights", weights(), "--suffix", "", "-q"]) == 1
    assert img.read_bytes() == original
    assert main(["upscale", str(img), "--weights", weights(), "-q"]) == 0
    out = tmp_path / "p_x2.png"
    assert read_image(out).shape == (32, 32, 3)
    stamp = out.stat().st_mtime_ns
    assert main(["upscale", str(img), "--weights", weights(), "--skip-existing", "-q"]) == 0
    assert out.stat().st_mtime_ns == stamp


def test_glob_outscale_ext_and_single_file_output(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        write_image(tmp_path / name, read_image(need_shared("golden", "inputs", "16x16.png")))
    code = main(
        ["upscale", str(tmp_path / "*.png"), "-o", str(tmp_path / "o"), "--weights", weights(),
         "--outscale", "3", "--ext", "jpg", "-q"]
    )  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a_x2.jpg", "b_x2.jpg"]
    assert read_image(tmp_path / "o" / "a_x2.jpg").shape == (48, 48, 3)
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "one.webp"),
                 "--weights", weights(), "-q"]) == 0  # fmt: skip
    assert read_image(tmp_path / "one.webp").shape == (32, 32, 3)


def test_models_and_inspect(capsys) -> None:
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["safmn-x4"]["params"] == 239_520
    assert main(["inspect", weights(), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arch"] == "safmn" and info["scale"] == 2 and info["params"] == 227_820


def _tiny(path: Path, size: tuple[int, int] = (12, 16)) -> Path:
    write_image(path, np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8))
    return path


def test_rerun_on_a_folder_piped_output_and_errors_once(tmp_path: Path) -> None:
    """Earlier outputs are left out (and said so), a file per line when stdout is not a
    terminal, each failure once on stderr."""
    d = tmp_path / "photos"
    _tiny(d / "a.png")
    _tiny(d / "a_x4.png")  # what an earlier run wrote
    _tiny(d / "b.jpg")
    (d / "c_bad.png").write_text("not an image")
    proc = run_cli("upscale", str(d), "--no-fast")  # bundled x4 model; stdout is a pipe
    assert proc.returncode == 1, proc.stderr
    assert "skipped 1 earlier output (*_x4.*); --include-outputs to process them" in proc.stderr
    assert "2 done, 0 skipped, 1 failed" in proc.stderr
    assert not (d / "a_x4_x4.png").exists()
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout
    assert lines[0].startswith(f"[1/3] {d / 'a.png'} -> {d / 'a_x4.png'} 64x48 ")
    assert lines[0].endswith(" s") and lines[1].startswith(f"[2/3] {d / 'b.jpg'} -> ")
    bad = [ln for ln in proc.stderr.splitlines() if "c_bad.png" in ln]
    assert len(bad) == 1 and bad[0].startswith("error: ") and "c_bad.png" not in proc.stdout


def test_include_outputs_and_quiet(tmp_path: Path, capsys) -> None:
    _tiny(tmp_path / "a.png")
    _tiny(tmp_path / "a_x4.png")
    assert main(["upscale", str(tmp_path), "-q"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "skipped 1 earlier output" in err and "1 done" in err  # -q: no lines
    assert not (tmp_path / "a_x4_x4.png").exists()
    assert main(["upscale", str(tmp_path), "--include-outputs", "-q"]) == 0
    assert "2 done" in capsys.readouterr().err and (tmp_path / "a_x4_x4.png").exists()


def test_image_name_output_for_several_inputs_is_a_usage_error(tmp_path: Path) -> None:
    _tiny(tmp_path / "five" / "a.png")
    _tiny(tmp_path / "five" / "b.png")
    proc = run_cli("upscale", str(tmp_path / "five"), "-o", str(tmp_path / "single.png"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "single.png is an image file name" in proc.stderr
    assert not (tmp_path / "single.png").exists()


def test_upscale_help_says_what_the_models_are_for(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["upscale", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "trained on clean (bicubic-downscaled) images" in text
    assert "amplify JPEG blocks and sensor noise" in text and "is planned" in text
    assert "--include-outputs" in text and "photo_x4.png when photo.png is an input too" in text


def test_eval_table_title_is_one_line(tmp_path: Path, capsys) -> None:
    _tiny(tmp_path / "hr" / "a.png", (24, 24))
    argv = ["eval", "--model", "bicubic-rgb", "--scale", "2", "--datasets", str(tmp_path / "hr")]
    assert main([*argv, "--degrade", "jpeg:40", "-q"]) == 0
    lines = [ln.strip() for ln in capsys.readouterr().out.splitlines()]
    assert lines[0] == "bicubic-rgb x2"
    assert any(ln.startswith("PSNR/SSIM on Y, border 2 px cropped") for ln in lines)
