"""Restoration beyond SR (lightsr.restoration): seeded degradations, scale-1 networks, training
per task end to end, ``lightsr restore`` batches and ``lightsr eval --task``.

Everything runs on the CPU with tiny networks on images made in tmp_path; the benchmark checks
read CBSD68 and Middlebury from ``../shared`` (two images, or a crop for CBM3D).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.inference.io import read_image, write_image
from lightsr.models.detect import detect_arch
from lightsr.models.registry import build_arch
from lightsr.restoration.tasks import (
    TaskSpec,
    add_gaussian_noise,
    depth_lr,
    image_rng,
    jpeg_bytes,
    jpeg_roundtrip,
    synthetic_depth,
)
from lightsr.training.config import ConfigError, load_config

from conftest import need_shared

# The IJG (libjpeg) base tables of the JPEG standard, Annex K, in row order.
LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
CHROMA = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *[99] * 32,
]  # fmt: skip
TINY = {
    "safmn": {"dim": 8, "n_blocks": 1},
    "swinir": {"embed_dim": 12, "depths": (1,), "num_heads": 2, "window_size": 4},
    "ups": {"embed_dim": 12, "depths": (1,), "num_heads": 2, "window_size": 4, "proj_dim": 8},
}


def _ijg_table(base: list[int], quality: int) -> list[int]:
    """libjpeg's ``jpeg_quality_scaling`` applied to a base table (baseline: capped at 255)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(255, max(1, (b * scale + 50) // 100)) for b in base]


def _photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth colour image with edges (blocks of gradients): JPEG and noise both visible."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], axis=2)
    blocks = np.kron(rng.integers(0, 80, (h // 8 + 1, w // 8 + 1, 3)), np.ones((8, 8, 1)))
    return np.clip(img + blocks[:h, :w], 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Degradations


def test_noise_is_seeded_and_has_the_asked_sigma() -> None:
    clean = np.full((256, 256, 3), 0.5, np.float32)
    a = add_gaussian_noise(clean, 25, image_rng(0, "img"))
    b = add_gaussian_noise(clean, 25, image_rng(0, "img"))
    c = add_gaussian_noise(clean, 25, image_rng(0, "other"))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    for sigma in (15, 25, 50):
        noise = add_gaussian_noise(clean, sigma, image_rng(1, "x")) - clean
        est = float(noise.std() * 255.0)
        assert abs(est - sigma) < 0.01 * sigma, (sigma, est)  # 196608 samples: ~0.2% spread
        assert abs(float(noise.mean()) * 255.0) < 4 * sigma / np.sqrt(noise.size)  # 4 s.e.
    # not clipped: a black image gets negative values, as in the papers' protocol
    assert add_gaussian_noise(np.zeros((8, 8, 3), np.float32), 25, image_rng(0, "z")).min() < 0


def test_blind_tasks_draw_levels_in_range_reproducibly() -> None:
    task = TaskSpec("denoise", sigma=(5, 50))
    draws = [task.draw_sigma(np.random.default_rng(i)) for i in range(200)]
    assert 5 <= min(draws) < 10 and 45 < max(draws) <= 50
    assert draws == [task.draw_sigma(np.random.default_rng(i)) for i in range(200)]
    q = TaskSpec("jpeg", quality=(10, 12))
    assert {q.draw_quality(np.random.default_rng(i)) for i in range(100)} == {10, 11, 12}
    assert TaskSpec("denoise", sigma=(0, 55)).for_validation().level == "sigma 25"
    assert TaskSpec("jpeg", quality=(30, 40)).for_validation().level == "q 30"
    with pytest.raises(LightSRError, match=r"^sigma \[30, 20\]: expected 0 <= low <= high"):
        TaskSpec("denoise", sigma=(30, 20))
    with pytest.raises(LightSRError, match=r"^quality \[0, 20\]: expected integers 1 <= low"):
        TaskSpec("jpeg", quality=(0, 20))


@pytest.mark.parametrize("quality", [10, 20, 30, 40])
def test_jpeg_quantisation_tables_match_the_quality(quality: int) -> None:
    img = _photo(np.random.default_rng(0), 48, 64)
    with Image.open(io.BytesIO(jpeg_bytes(img, quality))) as im:
        tables = im.quantization
        assert im.layer[1][1:3] == (1, 1) and im.layer[0][1:3] == (2, 2)  # 4:2:0
    assert list(tables[0]) == _ijg_table(LUMA, quality)
    assert list(tables[1]) == _ijg_table(CHROMA, quality)
    out = jpeg_roundtrip(img, quality)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out, jpeg_roundtrip(img, quality))  # deterministic
    err = np.abs(out.astype(int) - img.astype(int)).mean()
    assert 0.3 < err < 12, err  # really compressed, still the same image


def test_depth_degradation_and_synthetic_maps() -> None:
    a = synthetic_depth(np.random.default_rng(3), 96, 128)
    assert np.array_equal(a, synthetic_depth(np.random.default_rng(3), 96, 128))
    assert not np.array_equal(a, synthetic_depth(np.random.default_rng(4), 96, 128))
    assert a.dtype == np.float32 and a.min() == 0.0 and a.max() == pytest.approx(1.0)
    # piecewise smooth: mostly tiny steps between neighbours, and a few real edges
    steps = np.abs(np.diff(a, axis=1))
    assert np.mean(steps < 0.01) > 0.9 and np.mean(steps > 0.05) > 0.002
    lr = depth_lr(a.astype(np.float64) * 255.0, 4)
    assert lr.shape == (24, 32) and lr.dtype == np.float64
    assert not np.allclose(lr, np.round(lr))  # kept in floating point, not rounded
    with pytest.raises(LightSRError, match="multiples of 8"):
        depth_lr(a[:95], 8)


def test_tasks_and_package_import_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lightsr.restoration, lightsr.restoration.tasks, lightsr.cli.restore;"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------------------------
# Scale-1 networks


@pytest.mark.parametrize("arch", sorted(TINY))
def test_scale1_networks_keep_the_size_and_add_the_input(arch: str) -> None:
    from lightsr.inference.upscaler import Upscaler
    from lightsr.restoration.api import Restorer

    torch.manual_seed(0)
    net = build_arch(arch, scale=1, **TINY[arch]).eval()
    found = detect_arch(net.state_dict())
    assert (found.arch, found.scale) == (arch, 1)
    up = Upscaler(net, scale=1, name=arch, arch=arch, config={}, device="cpu")  # fast if SAFMN
    restorer = Restorer(up, "denoise")
    assert restorer.upscaler.fast == (arch == "safmn")  # SAFMN's fast path adds the residual
    img = _photo(np.random.default_rng(1), 37, 53)
    out = restorer.restore(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    if arch == "safmn":  # the fast path equals the plain network
        plain = Upscaler(net, scale=1, name=arch, arch=arch, config={}, device="cpu", fast=False)
        x = img.astype(np.float32) / 255.0
        assert np.abs(up.upscale(x) - plain.upscale(x)).max() <= 1e-5
    gray = restorer.restore(img[:, :, 0])
    assert gray.shape == (37, 53)
    # the global residual: with the last conv zeroed the network is the identity
    last = net.to_img[0] if arch == "safmn" else net.conv_last
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    up = Upscaler(net, scale=1, name=arch, arch=arch, config={}, device="cpu")  # new weights
    assert np.array_equal(Restorer(up, "jpeg").restore(img), img)


def test_restorer_refuses_sr_models() -> None:
    from lightsr.inference.upscaler import Upscaler
    from lightsr.restoration.api import Restorer

    net = build_arch("safmn", scale=2, dim=8, n_blocks=1)
    up = Upscaler(net, scale=2, name="sr", arch="safmn", config={}, device="cpu")
    with pytest.raises(LightSRError, match="x2 is a super-resolution model; restore needs"):
        Restorer(up, "denoise")


# --------------------------------------------------------------------------------------------
# Config and training, per task


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("restoration")
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(root / "train" / f"t{i}.png", _photo(rng, 40 + 8 * i, 48))
    for i in range(2):
        write_image(root / "val" / f"v{i}.png", _photo(rng, 32, 40))
        depth = synthetic_depth(np.random.default_rng(10 + i), 64, 64)
        write_image(root / "depth" / f"d{i}.png", (depth * 65535 + 0.5).astype(np.uint16))
    return root


def _recipe(data: Path, out: Path, task: str, scale: int) -> Path:
    val = data / ("depth" if task == "depth" else "val")
    extra = (
        "synthetic_maps: 4, synthetic_size: 64"
        if task == "depth"
        else f"hr_dirs: [{data / 'train'}]"
    )
    path = out / f"{task}.yaml"
    path.write_text(
        f"""
name: {task}_run
output_dir: {out / "runs"}
model: {{name: safmn, scale: {scale}, args: {{dim: 8, n_blocks: 1}}}}
data: {{task: {task}, {extra}, patch_size: 8, batch_size: 2, workers: 0}}
val: {{datasets: [{val}], every: 2, images: 1}}
train: {{iters: 2, log_every: 1, checkpoint_every: 2, threads: 1, tensorboard: false}}
""",
        encoding="utf-8",
    )
    return path


def test_config_checks_the_task(tmp_path: Path, data: Path) -> None:
    recipe = _recipe(data, tmp_path, "denoise", 1)
    cfg = load_config(recipe)
    assert (cfg.data.task, cfg.data.noise_sigma) == ("denoise", (0.0, 55.0))
    with pytest.raises(ConfigError, match=r"^model\.scale: data\.task denoise keeps the size"):
        load_config(recipe, ["model.scale=2"])
    with pytest.raises(ConfigError, match=r"^data\.noise_sigma: sigma \[40.0, 20.0\]"):
        load_config(recipe, ["data.noise_sigma=[40, 20]"])
    with pytest.raises(ConfigError, match=r"^data\.task: expected one of sr, denoise, jpeg"):
        load_config(recipe, ["data.task=deblur"])
    with pytest.raises(ConfigError, match=r"^model\.scale: 1 is for data\.task denoise or jpeg"):
        load_config(recipe, ["data.task=sr"])
    with pytest.raises(ConfigError, match=r"^data\.synthetic_size: 64 is smaller than a HR"):
        load_config(_recipe(data, tmp_path, "depth", 8), ["data.patch_size=16"])


def test_patch_dataset_degrades_per_task(data: Path) -> None:
    from lightsr.training.data import PatchDataset, scan_images, synthetic_records

    records = scan_images([data / "train"], scale=1, patch_size=16, log=lambda _: None)
    noisy = PatchDataset(records, scale=1, patch_size=16, task=TaskSpec("denoise", (25, 25)))
    x, y = noisy[(0, 5)]
    x2, _ = noisy[(0, 5)]
    assert x.shape == y.shape == (3, 16, 16) and torch.equal(x, x2)  # seeded by the position
    assert abs(float((x - y).std()) * 255 - 25) < 3
    jpeg = PatchDataset(records, scale=1, patch_size=16, task=TaskSpec("jpeg", quality=(10, 10)))
    x, y = jpeg[(1, 3)]
    assert torch.equal(x, torch.round(x * 255) / 255) and 0 < float((x - y).abs().mean()) < 0.1
    depth = PatchDataset(
        synthetic_records(3, 64), scale=4, patch_size=8, seed=7, task=TaskSpec("depth")
    )
    x, y = depth[(2, 0)]
    assert x.shape == (3, 8, 8) and y.shape == (3, 32, 32)
    assert torch.equal(x[0], x[2]) and torch.equal(x, depth[(2, 0)][0])


@pytest.mark.parametrize(("task", "scale"), [("denoise", 1), ("jpeg", 1), ("depth", 4)])
def test_two_iterations_per_task_then_export_and_use(
    tmp_path: Path, data: Path, task: str, scale: int, capsys: pytest.CaptureFixture
) -> None:
    from lightsr.training.loop import export_weights, train

    result = train(load_config(_recipe(data, tmp_path, task, scale)), quiet=True)
    val = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").open()]
    assert [r["val"] for r in val if "val" in r]  # validated with the task's protocol
    weights = export_weights(result.run_dir, tmp_path / f"{task}.safetensors")
    found = detect_arch(_state(weights))
    assert (found.arch, found.scale) == ("safmn", scale)
    if task == "depth":
        code = main(["eval", "--task", "depth", "--scale", "4", "--weights", str(weights),
                     "--datasets", str(data / "depth"), "-q", "--json"])  # fmt: skip
        assert code == 0
        rec = json.loads(capsys.readouterr().out)[0]
        assert rec["task"] == "depth" and rec["images"] == 2 and rec["rmse"] > 0
        out = tmp_path / "up.png"
        assert main(["upscale", str(data / "depth" / "d0.png"), "--weights", str(weights),
                     "-o", str(out), "-q"]) == 0  # fmt: skip
        up = read_image(out)
        assert up.shape == (256, 256) and up.dtype == np.uint16  # one channel, 16 bits kept
        return
    level = ["--sigma", "25"] if task == "denoise" else ["--quality", "20"]
    code = main(["eval", "--task", task, *level, "--weights", str(weights),
                 "--datasets", str(data / "val"), "-q", "--json"])  # fmt: skip
    assert code == 0
    rec = json.loads(capsys.readouterr().out)[0]
    assert rec["images"] == 2 and 5 < rec["psnr"] < 60
    code = main(["eval", "--task", task, *level, "--weights", str(weights), "--self-ensemble",
                 "--datasets", str(data / "val"), "-q", "--json"])  # fmt: skip
    assert code == 0
    plus = json.loads(capsys.readouterr().out)[0]
    assert plus["model"] == rec["model"] + "+" and plus["psnr"] != rec["psnr"]
    src = data / "val" / "v0.png"
    dst = tmp_path / "restored.png"
    assert main(["restore", "--task", task, str(src), "--model", str(weights), "-o", str(dst),
                 "-q"]) == 0  # fmt: skip
    assert read_image(dst).shape == read_image(src).shape


def _state(path: Path) -> dict:
    from lightsr.models.checkpoint import read_state_dict

    return read_state_dict(path)[0]


# --------------------------------------------------------------------------------------------
# lightsr restore: batch behaviour as upscale


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lightsr.models.checkpoint import save_safetensors

    torch.manual_seed(0)
    net = build_arch("safmn", scale=1, dim=8, n_blocks=1)
    path = tmp_path_factory.mktemp("w") / "dn.safetensors"
    save_safetensors(net.state_dict(), path)
    return path


def test_restore_batch_goes_on_after_a_bad_file(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    write_image(tmp_path / "a.png", _photo(rng, 24, 30))
    (tmp_path / "b.png").write_bytes(b"not an image")
    write_image(tmp_path / "c.jpg", _photo(rng, 17, 21))
    files = [str(tmp_path / n) for n in ("a.png", "b.png", "c.jpg")]
    code = main(["restore", "--task", "jpeg", *files, "--model", str(weights), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "b.png" in err and "2 done, 0 skipped, 1 failed" in err
    assert read_image(tmp_path / "a_jpeg.png").shape == (24, 30, 3)
    assert read_image(tmp_path / "c_jpeg.png").shape == (17, 21, 3)  # PNG: no JPEG again
    # a second run over the folder leaves the outputs out and skips what exists
    code = main(["restore", "--task", "jpeg", str(tmp_path), "--model", str(weights),
                 "--skip-existing", "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "skipped 2 earlier outputs" in err and "0 done, 2 skipped" in err
    # on a terminal, the progress bar names the task (it said "upscale x1")
    import lightsr.cli.upscale as upscale_cli

    monkeypatch.setattr(upscale_cli, "progress_modes", lambda quiet: (True, False))
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws on the captured stderr
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    assert main(["restore", "--task", "jpeg", files[0], "--model", str(weights),
                 "-o", str(tmp_path / "bar.png")]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "restore jpeg" in err and "upscale" not in err


def test_restore_usage_errors_exit_2(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture
) -> None:
    img = tmp_path / "a.png"
    write_image(img, _photo(np.random.default_rng(0), 16, 16))
    with pytest.raises(SystemExit) as exc:
        main(["restore", str(img), "--model", str(weights)])  # --task is required
    assert exc.value.code == 2
    sr = tmp_path / "sr.safetensors"
    from lightsr.models.checkpoint import save_safetensors

    save_safetensors(build_arch("safmn", scale=2, dim=8, n_blocks=1).state_dict(), sr)
    capsys.readouterr()
    assert main(["restore", "--task", "denoise", str(img), "--model", str(sr), "-q"]) == 2
    assert "x2 is a super-resolution model" in capsys.readouterr().err
    out = tmp_path / "bundled.png"  # no --model: the bundled safmn-denoise
    assert main(["restore", "--task", "denoise", str(img), "-o", str(out), "-q"]) == 0
    assert read_image(out).shape == (16, 16, 3)
    two = [str(img), str(img.with_name("b.png"))]
    assert main(["restore", "--task", "denoise", *two, "--model", str(weights),
                 "-o", str(tmp_path / "x.png"), "-q"]) == 2  # fmt: skip
    assert "is an image file name but" in capsys.readouterr().err


def test_python_api(tmp_path: Path, weights: Path) -> None:
    import lightsr as R  # the public names, loaded lazily

    img = _photo(np.random.default_rng(2), 20, 27)
    model = R.load_restorer(weights, task="denoise", device="cpu")
    out = model.restore(img)
    assert out.shape == img.shape and np.array_equal(out, R.restore(img, model))
    pil = model.restore(Image.fromarray(img))
    assert isinstance(pil, Image.Image) and pil.size == (27, 20)
    write_image(tmp_path / "p.png", img)
    summary = R.restore_files([tmp_path / "p.png"], model, task="denoise")
    assert [r.dst.name for r in summary.done] == ["p_denoise.png"]
    # a plain Upscaler (or a loader returning a path) becomes a Restorer; junk is refused
    up = R.load_model(weights, device="cpu")
    again = R.restore_files([tmp_path / "p.png"], up, task="denoise", output=tmp_path / "o")
    assert isinstance(again.model, R.Restorer) and len(again.done) == 1
    assert np.array_equal(read_image(again.done[0].dst), read_image(summary.done[0].dst))
    via = R.restore_files([tmp_path / "p.png"], lambda: weights, task="denoise",
                          output=tmp_path / "v")  # fmt: skip
    assert isinstance(via.model, R.Restorer) and len(via.done) == 1
    with pytest.raises(LightSRError, match="expected a Restorer, a checkpoint path or name"):
        R.restore_files([tmp_path / "p.png"], 3, task="denoise")


# --------------------------------------------------------------------------------------------
# lightsr eval --task with the anchors, on the shared benchmarks


def test_eval_identity_on_two_cbsd68_images(capsys: pytest.CaptureFixture) -> None:
    need_shared("datasets", "CBSD68", "HR")
    assert main(["eval", "--task", "denoise", "--sigma", "25", "--model", "identity",
                 "--limit", "2", "-q"]) == 0  # fmt: skip
    table = capsys.readouterr().out
    row = re.search(r"\| identity \| CBSD68 \| denoise sigma 25 \| ([\d.]+) \|", table)
    assert row and 20.0 < float(row.group(1)) < 21.5  # sigma 25 alone: 20.2 dB before clipping
    assert "| SwinIR | CBSD68 | denoise sigma 25 | 31.78 |" in table and "published" in table
    assert main(["eval", "--task", "jpeg", "--quality", "20", "--model", "identity",
                 "--limit", "2", "-q", "--json"]) == 0  # fmt: skip
    rec = json.loads(capsys.readouterr().out)[0]
    assert rec["level"] == "q 20" and 24 < rec["psnr"] < 32
    assert main(["eval", "--task", "jpeg", "--sigma", "25", "--model", "identity"]) == 2
    assert "--task jpeg needs --quality" in capsys.readouterr().err
    assert main(["eval", "--task", "jpeg", "--quality", "20", "--model", "identity",
                 "--self-ensemble"]) == 2  # fmt: skip
    assert "--self-ensemble has no meaning for --model identity" in capsys.readouterr().err


def test_eval_depth_bicubic_on_middlebury(capsys: pytest.CaptureFixture) -> None:
    need_shared("datasets", "Middlebury", "depth")
    from lightsr.restoration.evaluate import evaluate_task

    bicubic = evaluate_task("bicubic", "bicubic", ["Middlebury"], TaskSpec("depth"), scale=4,
                            limit=1)  # fmt: skip
    nearest = evaluate_task("identity", "identity", ["Middlebury"], TaskSpec("depth"), scale=4,
                            limit=1)  # fmt: skip
    assert bicubic[0].images == 1 and 0.5 < bicubic[0].rmse < nearest[0].rmse


def test_cbm3d_beats_the_noisy_input_on_a_crop(tmp_path: Path) -> None:
    pytest.importorskip("bm3d")
    hr = need_shared("datasets", "CBSD68", "HR")
    from lightsr.restoration.evaluate import evaluate_task

    crop = read_image(sorted(hr.glob("*.png"))[0])[100:164, 200:264]
    write_image(tmp_path / "crop" / "c.png", crop)
    task = TaskSpec("denoise", sigma=(25, 25))
    noisy = evaluate_task("identity", "identity", [str(tmp_path / "crop")], task)[0]
    cbm3d = evaluate_task("cbm3d", "cbm3d", [str(tmp_path / "crop")], task)[0]
    assert cbm3d.psnr > noisy.psnr + 5, (cbm3d.psnr, noisy.psnr)


def test_scale1_models_are_counted_and_exported(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(["bench", str(weights), "--runs", "1", "--warmup", "0", "--output-size",
                 "32x32", "--json"])  # fmt: skip
    assert code == 0
    rec = json.loads(capsys.readouterr().out)[0]
    assert rec["scale"] == 1 and rec["params"] == sum(
        p.numel() for p in build_arch("safmn", scale=1, dim=8, n_blocks=1).parameters()
    )
    onnx = tmp_path / "dn.onnx"
    assert main(["export", str(weights), "-o", str(onnx)]) == 0
    assert "(x1, opset 17" in capsys.readouterr().out and onnx.stat().st_size > 0
