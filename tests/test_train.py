"""Training: config errors and resolution, data pipeline, schedule, losses, the loop end to end,
exact resume, the resume check against the checkpoint's config, 2-process DDP equivalence,
non-finite stop and atomic checkpoints.

Everything runs on the CPU with a tiny SAFMN (dim 8, 1 block) on synthetic images made in
tmp_path, one intra-op thread (tiny ops are slower with more threads on a busy machine).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lightsr.cli import main
from lightsr.evaluation.resize import imresize, modcrop
from lightsr.inference.io import read_image, write_image
from lightsr.training.config import (
    ConfigError,
    ScheduleConfig,
    config_diff,
    config_from_dict,
    config_to_dict,
    load_config,
)
from lightsr.training.data import DataError, PatchDataset, StreamSampler, lr_patch, scan_images
from lightsr.training.loop import (
    ResumeMismatchError,
    TrainingError,
    check_resume,
    ema_decay_at,
    export_weights,
    find_checkpoint,
    load_training_state,
    lr_at,
    save_atomic,
    train,
)
from lightsr.training.losses import fft_loss, sr_loss

REPO = Path(__file__).resolve().parents[1]


def _image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Blocky colour image with noise: some structure for the network to learn."""
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float64)
    img = np.kron(base, np.ones((8, 8, 1)))[:h, :w] + rng.normal(0, 8, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for i in range(6):
        write_image(root / "train" / f"img{i}.png", _image(rng, 40 + 4 * i, 36 + 4 * i))
    write_image(root / "train" / "gray.png", _image(rng, 40, 40)[:, :, 0])  # -> RGB
    for i in range(2):
        write_image(root / "val" / f"v{i}.png", _image(rng, 32, 40))
    return root


def tiny_config(data: Path, out: Path, *sets: str) -> list[str]:
    """Write a tiny recipe; returns the override list to add to it."""
    (out / "tiny.yaml").write_text(
        f"""
name: tiny
output_dir: {out / "runs"}
model: {{name: safmn, scale: 2, args: {{dim: 8, n_blocks: 1}}}}
data: {{hr_dirs: [{data / "train"}], patch_size: 8, batch_size: 4, workers: 0}}
val: {{datasets: [{data / "val"}], every: 3, images: 1}}
train: {{iters: 6, log_every: 2, checkpoint_every: 3, threads: 1, tensorboard: false}}
""",
        encoding="utf-8",
    )
    return list(sets)


def cfg_of(data: Path, out: Path, *sets: str):
    tiny_config(data, out)
    return load_config(out / "tiny.yaml", list(sets))


def assert_states_equal(a: dict, b: dict) -> None:
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs"
    oa, ob = a["optimizer"]["state"], b["optimizer"]["state"]
    for i in oa:
        for k in oa[i]:
            assert torch.equal(oa[i][k], ob[i][k]), f"optimizer state {i}.{k} differs"


# --------------------------------------------------------------------------------------------
# Config


def test_config_errors_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim: {lrr: 0.1}\n")
    with pytest.raises(ConfigError, match=r"^optim\.lrr: unknown key; did you mean 'lr'\?"):
        load_config(cfg)
    with pytest.raises(ConfigError, match=r"^optim\.lr: expected a number, found 'fast'$"):
        load_config(None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match=r"^data\.batch_size: expected an integer, found 2\.5"):
        load_config(None, ["data.batch_size=2.5"])
    with pytest.raises(ConfigError, match=r"^train\.precision: expected one of fp32, bf16, fp16"):
        load_config(None, ["train.precision=fp8"])
    with pytest.raises(ConfigError, match=r"^schedule\.periods: expected a sum equal to"):
        load_config(None, ["schedule.periods=[10, 20]"])
    with pytest.raises(ConfigError, match=r"^data\.hr_dirs: expected a list"):
        load_config(None, ["data.hr_dirs=folder"])
    # YAML 1.1 reads 1e-3 as a string: number fields accept it
    assert load_config(None, ["optim.lr=2e-4"]).optim.lr == 2e-4
    # through the CLI: one line, exit code 2, no traceback
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: optim.lrr: unknown key")
    assert main(["train", str(cfg), "--set", "optim={lr: 1e-3}", "--set", "foo.bar=1"]) == 2
    assert capsys.readouterr().err.startswith("error: foo: unknown key")


def test_dry_run_prints_resolved_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = REPO / "configs" / "quick_safmn_x2.yaml"
    assert main(["train", str(recipe), "--dry-run", "--set", "optim.lr=5e-4"]) == 0
    text = capsys.readouterr().out
    assert "lr: 0.0005" in text and "name: quick_safmn_x2" in text
    for name in ("x2", "x3", "x4", "l_x2", "l_x3", "l_x4"):
        cfg = load_config(REPO / "configs" / f"safmn_{name}.yaml")
        assert cfg.model.scale == int(name[-1])
        assert cfg.loss.fft == 0.05 and cfg.train.ema_decay == 0.999
        assert cfg.data.batch_size == (48 if name.startswith("l_") else 64)


def test_load_config_resolves_paths_once(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIGHTSR_SHARED", str(data))
    monkeypatch.setenv("TINY_DATA", str(data))
    monkeypatch.delenv("LIGHTSR_DATA", raising=False)
    recipe = tmp_path / "vars.yaml"
    recipe.write_text(
        f"""
name: vars
output_dir: {tmp_path / "runs"}
model: {{name: safmn, scale: 2, args: {{dim: 8, n_blocks: 1}}}}
data: {{hr_dirs: ['${{LIGHTSR_SHARED}}/train'], patch_size: 8, batch_size: 4, workers: 0}}
val: {{datasets: ['$TINY_DATA/val', Set5], every: 2, images: 1}}
train: {{iters: 2, log_every: 2, checkpoint_every: 2, threads: 1, tensorboard: false}}
""",
        encoding="utf-8",
    )
    cfg = load_config(recipe)
    assert cfg.data.hr_dirs == [str(data.resolve() / "train")]
    assert Path(cfg.data.hr_dirs[0]).is_absolute()
    assert cfg.val.datasets == [f"{data}/val", "Set5"]  # a benchmark name stays a name
    assert cfg.val.data_root == str(data.resolve() / "datasets")  # default filled, absolute
    assert config_diff(config_from_dict(config_to_dict(cfg)), cfg) == {}  # idempotent
    # nothing after loading expands a path: the loop runs with expand_path made to fail
    import lightsr.training.config as config_mod
    import lightsr.training.loop as loop_mod

    def no_more(value: str, key: str) -> str:
        raise AssertionError(f"expand_path({value!r}, {key!r}) called after loading")

    monkeypatch.setattr(config_mod, "expand_path", no_more)
    assert not hasattr(loop_mod, "expand_path")
    cfg.val.datasets = cfg.val.datasets[:1]
    result = train(cfg, quiet=True)
    assert result.iteration == 2 and set(result.last_val) == {"val"}
    assert "${" not in (result.run_dir / "config.yaml").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Data, schedule, losses


def test_lr_patch_equals_whole_image_resize() -> None:
    rng = np.random.default_rng(1)
    for s in (2, 3, 4):
        hr = modcrop(_image(rng, 70, 61), s)
        full = imresize(hr, 1 / s)
        lh, lw = full.shape[:2]
        for top, left in ((0, 0), (lh - 8, lw - 8), (3, 5), (lh // 2, 1)):
            assert np.array_equal(
                lr_patch(hr, top, left, 8, s), full[top : top + 8, left : left + 8]
            )


def test_ranks_split_the_global_batch() -> None:
    one = iter(StreamSampler(5, batch_size=4, seed=3))
    ranks = [iter(StreamSampler(5, batch_size=2, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    for _ in range(4):  # crosses epoch boundaries
        assert next(one) == next(ranks[0]) + next(ranks[1])
    resumed = iter(StreamSampler(5, batch_size=4, seed=3, start=8))
    fresh = iter(StreamSampler(5, batch_size=4, seed=3))
    next(fresh), next(fresh)
    assert next(resumed) == next(fresh)


def test_scan_skips_small_and_stops_on_corrupt(data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "hr"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes((data / "train" / "img0.png").read_bytes())
    write_image(folder / "tiny.png", np.zeros((12, 12, 3), np.uint8))
    warnings: list[str] = []
    recs = scan_images([folder], scale=2, patch_size=8, log=warnings.append)
    assert [r.hr.name for r in recs] == ["a.png", "b.png"]
    assert len(warnings) == 1 and "tiny.png" in warnings[0] and "smaller" in warnings[0]
    (folder / "bad.png").write_bytes((folder / "a.png").read_bytes()[:300])
    with pytest.raises(DataError, match=r"bad\.png.*data\.skip_corrupt=true"):
        scan_images([folder], scale=2, patch_size=8, log=warnings.append)
    warnings.clear()
    recs = scan_images([folder], scale=2, patch_size=8, skip_corrupt=True, log=warnings.append)
    assert len(recs) == 2 and "corrupt" in warnings[0] and "bad.png" in warnings[0]
    ds = PatchDataset(recs, scale=2, patch_size=8, seed=0, cache=True)
    lr, hr = ds[(1, 17)]
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 16, 16)
    assert torch.equal(ds[(1, 17)][0], lr) and not torch.equal(ds[(1, 18)][0], lr)


def test_lr_schedule() -> None:
    cos = ScheduleConfig(name="cosine", min_lr=1e-5)
    assert lr_at(1, 1e-3, cos, 100) == pytest.approx(1e-3, rel=1e-3)
    assert lr_at(50, 1e-3, cos, 100) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)
    assert lr_at(100, 1e-3, cos, 100) == pytest.approx(1e-5)
    restarts = ScheduleConfig(periods=[40, 60], restart_weights=[1.0, 0.5], min_lr=0.0)
    assert lr_at(40, 1.0, restarts, 100) == pytest.approx(0.0)
    assert lr_at(41, 1.0, restarts, 100) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi / 60)))
    warm = ScheduleConfig(name="constant", warmup_iters=10)
    assert lr_at(5, 2.0, warm, 100) == 1.0 and lr_at(11, 2.0, warm, 100) == 2.0
    steps = ScheduleConfig(name="multistep", milestones=[10, 20], gamma=0.5)
    assert [lr_at(i, 1.0, steps, 30) for i in (9, 10, 20)] == [1.0, 0.5, 0.25]
    assert ema_decay_at(500, 0.999, False) == 0.999
    assert ema_decay_at(0, 0.999, True) == 0.1 and ema_decay_at(10**5, 0.999, True) == 0.999


def test_fft_loss_is_the_official_rfft2_definition() -> None:
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 16, 12), torch.rand(2, 3, 16, 12)
    pa, pb = torch.fft.rfft2(a), torch.fft.rfft2(b)  # official SAFMN FFTLoss, written out
    ref = torch.nn.L1Loss()(
        torch.stack([pa.real, pa.imag], dim=-1), torch.stack([pb.real, pb.imag], dim=-1)
    )
    assert torch.equal(fft_loss(a, b), ref)
    fa, fb = torch.fft.fft2(a), torch.fft.fft2(b)  # the fft2 variant of other forks differs
    full = torch.nn.L1Loss()(torch.view_as_real(fa), torch.view_as_real(fb))
    assert abs(float(full - ref)) > 1e-3


def test_l2_term_is_the_mean_squared_error() -> None:
    torch.manual_seed(1)
    a, b = torch.rand(2, 3, 9, 7), torch.rand(2, 3, 9, 7)
    total, parts = sr_loss(a, b, l1=0, fft=0, l2=1)
    assert total == pytest.approx(float(((a - b) ** 2).mean()), rel=1e-6)
    assert set(parts) == {"l2"}
    mixed, parts = sr_loss(a, b, l1=1, fft=0.05, l2=2)
    expect = parts["l1"] + 0.05 * parts["fft"] + 2 * parts["l2"]
    assert mixed == pytest.approx(float(expect), rel=1e-6)


def test_l2_fine_tuning_run(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``loss.l1=0 loss.fft=0 loss.l2=1``: the MSE is recorded and is the total; the log line
    shows only the terms that are on."""
    tiny_config(data, tmp_path)
    sets = ["loss.l1=0", "loss.fft=0", "loss.l2=1", "val.datasets=[]"]
    args = ["train", str(tmp_path / "tiny.yaml"), *(x for s in sets for x in ("--set", s))]
    assert main(args) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("iter "))
    assert " (l2 0." in line and "l1" not in line and "fft" not in line
    recs = [json.loads(x) for x in (tmp_path / "runs" / "tiny" / "metrics.jsonl").open()]
    loss = next(r["loss"] for r in recs if "loss" in r)
    assert loss["l2"] > 0 and loss["total"] == pytest.approx(loss["l2"], rel=1e-6)
    assert loss["l1"] == 0 and loss["fft"] == 0  # off: recorded as 0


# --------------------------------------------------------------------------------------------
# The loop


def test_end_to_end_cli(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tiny_config(data, tmp_path)
    recipe = str(tmp_path / "tiny.yaml")
    assert main(["train", recipe, "--set", "train.tensorboard=true"]) == 0
    run = tmp_path / "runs" / "tiny"
    out = capsys.readouterr().out
    assert "val        3" in out and "it/s" in out and "eta" in out
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["best.pt", "iter_00000003.pt", "iter_00000006.pt"]
    assert list((run / "tb").iterdir()), "no TensorBoard events"
    assert (run / "config.yaml").is_file()
    # a second fresh run into the same directory is refused; resume continues it
    assert main(["train", recipe]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--set", "train.iters=9"]) == 0
    state = load_training_state(find_checkpoint(run))
    assert state["iteration"] == 9 and state["data"]["position"] == 9 * 4
    assert len(list((run / "checkpoints").glob("iter_*.pt"))) == 3  # keep_last
    # export the EMA weights and upscale with them
    weights = tmp_path / "tiny.safetensors"
    assert main(["export-weights", str(run), "-o", str(weights)]) == 0
    assert main(["inspect", str(weights)]) == 0
    src = data / "val" / "v0.png"
    dst = tmp_path / "up.png"
    assert main(["upscale", str(src), "-o", str(dst), "--weights", str(weights), "-q"]) == 0
    assert read_image(dst).shape == (64, 80, 3)


def test_resume_is_bit_exact(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = train(cfg_of(data, tmp_path, "name=full", "val.every=2"), quiet=True)
    # the same run, interrupted right after its iteration-3 checkpoint, with a data worker
    import lightsr.training.loop as train_mod

    real_save = train_mod.save_atomic

    def save_then_die(obj: dict, path: Path) -> None:
        real_save(obj, path)
        if path.name == "iter_00000003.pt":
            raise KeyboardInterrupt

    cut = cfg_of(data, tmp_path, "name=cut", "val.every=2", "data.workers=1")
    monkeypatch.setattr(train_mod, "save_atomic", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(cut, quiet=True)
    monkeypatch.setattr(train_mod, "save_atomic", real_save)
    resumed = train(cut, resume=tmp_path / "runs" / "cut", quiet=True)
    assert resumed.iteration == full.iteration == 6
    a = load_training_state(find_checkpoint(full.run_dir))
    b = load_training_state(find_checkpoint(resumed.run_dir))
    assert_states_equal(a, b)
    assert a["best"] == b["best"] and resumed.last_val == full.last_val


def test_resume_checks_the_recipe_against_the_checkpoint(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("LIGHTSR_SHARED", str(data))
    tiny_config(data, tmp_path)
    recipe = tmp_path / "tiny.yaml"
    text = recipe.read_text(encoding="utf-8").replace("iters: 6", "iters: 3")
    # written through ${LIGHTSR_SHARED}: stored resolved, compared resolved
    recipe.write_text(text.replace(str(data / "train"), "'${LIGHTSR_SHARED}/train'"), "utf-8")
    assert main(["train", str(recipe), "-q"]) == 0
    run = tmp_path / "runs" / "tiny"
    capsys.readouterr()
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    stored_yaml = (run / "config.yaml").read_text(encoding="utf-8")
    # the same values, the path written out: no difference; only the named key changes
    changed = tmp_path / "changed.yaml"
    changed.write_text(text + "optim: {lr: 2e-3}\n", encoding="utf-8")
    assert main(["train", str(changed), "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {run}: the recipe differs from the config stored in iter_00000003.pt: "
        "optim.lr: 0.001 -> 0.002; pass --set key=value for each to accept the change "
        "(--set optim.lr=0.002)\n"
    )
    # refused before anything is written
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ckpts
    assert (run / "config.yaml").read_text(encoding="utf-8") == stored_yaml
    # --set must name every differing key (naming unchanged keys is fine)
    args = ["train", str(changed), "--resume", str(run), "--set", "train.iters=4"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "optim.lr: 0.001 -> 0.002; train.iters: 3 -> 4;" in err
    assert "(--set optim.lr=0.002 --set train.iters=4)" in err
    assert main([*args, "--set", "optim.lr=2e-3", "--set", "seed=10"]) == 0
    out = capsys.readouterr().out
    assert (
        "changed on resume (named by --set): optim.lr: 0.001 -> 0.002; train.iters: 3 -> 4" in out
    )
    state = load_training_state(find_checkpoint(run))
    assert state["iteration"] == 4 and state["config"]["optim"]["lr"] == 0.002
    assert state["scheduler"]["lr"] == pytest.approx(lr_at(4, 2e-3, ScheduleConfig(), 4))
    # the run's own config.yaml now holds the accepted values: a plain resume needs no --set
    assert main(["train", "--resume", str(run), "-q", "--set", "train.iters=5"]) == 0
    assert load_training_state(find_checkpoint(run))["iteration"] == 5
    # a stored config from before resolution (unexpanded paths) compares by resolved value
    old = load_training_state(find_checkpoint(run))
    old["config"]["data"]["hr_dirs"] = ["${LIGHTSR_SHARED}/train"]
    old["config"]["val"]["data_root"] = None
    cfg = load_config(run / "config.yaml")
    assert check_resume(old, cfg, (), run / "checkpoints" / "x.pt") == {}
    cfg.schedule.min_lr = 0.0
    with pytest.raises(ResumeMismatchError, match=r"schedule\.min_lr: 1\.0e-05 -> 0\.0;"):
        check_resume(old, cfg, ("optim",), run / "checkpoints" / "x.pt")
    assert check_resume(old, cfg, ("schedule",), run / "checkpoints" / "x.pt") == {
        "schedule.min_lr": (1e-5, 0.0)
    }


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightsr.training.losses as losses

    real = losses.sr_loss
    calls = {"n": 0}

    def nan_at_5(pred: torch.Tensor, target: torch.Tensor, **kw: float):
        calls["n"] += 1
        loss, parts = real(pred, target, **kw)
        return (loss * float("nan"), parts) if calls["n"] == 5 else (loss, parts)

    monkeypatch.setattr(losses, "sr_loss", nan_at_5)
    cfg = cfg_of(data, tmp_path, "name=nan", "val.datasets=[]")
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at iteration 5") as exc:
        train(cfg, quiet=True)
    assert "iter_00000003.pt" in str(exc.value) and "\n" not in str(exc.value)
    ckpts = sorted(p.name for p in (tmp_path / "runs" / "nan" / "checkpoints").iterdir())
    assert ckpts == ["iter_00000003.pt"]
    state = load_training_state(tmp_path / "runs" / "nan" / "checkpoints" / ckpts[0])
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_checkpoint_writes_are_atomic(tmp_path: Path) -> None:
    path = tmp_path / "iter_00000001.pt"
    save_atomic({"a": torch.ones(3)}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        save_atomic({"a": torch.zeros(3), "b": Boom()}, path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial or temporary file
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))


def test_export_refuses_a_non_run(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="not a run directory"):
        export_weights(tmp_path, tmp_path / "x.safetensors")


def test_ddp_two_processes_equal_one_process(data: Path, tmp_path: Path) -> None:
    sets = ["val.datasets=[]", "train.iters=3", "train.checkpoint_every=3"]
    single = train(cfg_of(data, tmp_path, "name=single", *sets), quiet=True)
    tiny_config(data, tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "lightsr.cli", "train", str(tmp_path / "tiny.yaml"), "-q"]
    for s in [*sets, "name=ddp", "data.batch_size=2"]:  # 2 x 2 = the single run's batch of 4
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_training_state(find_checkpoint(single.run_dir))
    b = load_training_state(find_checkpoint(tmp_path / "runs" / "ddp"))
    assert b["world_size"] == 2 and len(b["rng"]) == 2 and b["data"]["global_batch"] == 4
    for part in ("model", "ema"):
        for k, v in a[part].items():
            torch.testing.assert_close(b[part][k], v, rtol=1e-5, atol=1e-6, msg=f"{part}.{k}")


def test_init_copies_the_matching_body_for_fine_tuning(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tiny_config(data, tmp_path)
    recipe = str(tmp_path / "tiny.yaml")
    assert main(["train", recipe, "--set", "train.iters=3"]) == 0
    x2_run = tmp_path / "runs" / "tiny"
    x2 = load_training_state(find_checkpoint(x2_run, "best"))["ema"]
    sets = ["--set", "name=tiny_x3", "--set", "model.scale=3", "--set", "data.patch_size=8"]
    init = ["--set", f"model.init={x2_run}", "--set", "train.iters=1", "--set", "optim.lr=1e-7"]
    init += ["--set", "schedule.name=constant"]
    assert main(["train", recipe, *sets, *init]) == 0
    assert "kept random: to_img.0.bias, to_img.0.weight" in capsys.readouterr().out
    # the x3 run starts from the x2 EMA body: after one Adam step of 1e-7 it is still there
    state = load_training_state(find_checkpoint(tmp_path / "runs" / "tiny_x3"))
    body = [k for k in x2 if not k.startswith("to_img")]
    assert body and all(torch.allclose(state["model"][k], x2[k], atol=1e-6) for k in body), (
        "the x3 body did not start from the x2 EMA"
    )
    assert state["model"]["to_img.0.weight"].shape != x2["to_img.0.weight"].shape
    # a source with nothing in common is a one-line error naming the key
    other = tmp_path / "other.safetensors"
    from lightsr.models.checkpoint import save_safetensors

    save_safetensors({"x": torch.zeros(1)}, other, arch="safmn", config={}, scale=2)
    assert main(["train", recipe, "--set", "name=t3", "--set", f"model.init={other}"]) == 2
    assert "model.init" in capsys.readouterr().err


# --- real-world training: high-order degradations on the fly -------------------------------


def test_high_order_patches_are_seeded_degradations(data: Path) -> None:
    from lightsr.training.data import PatchDataset, scan_images

    records = scan_images([data / "train"], scale=4, patch_size=8)
    kw = {"scale": 4, "patch_size": 8, "seed": 3, "degradation": "high-order"}
    a = PatchDataset(records, **kw)
    b = PatchDataset(records, **kw, usm_target=True)
    plain = PatchDataset(records, scale=4, patch_size=8, seed=3)
    lr, hr = a[(1, 7)]
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 32, 32)
    assert torch.equal(lr, a[(1, 7)][0])  # same sample key: the same degradation
    assert not torch.equal(lr, a[(1, 8)][0])
    assert torch.equal(hr, plain[(1, 7)][1])  # same window and flips as the bicubic pipeline
    assert not torch.equal(lr, plain[(1, 7)][0])
    assert torch.equal((lr * 255).round() / 255, lr)  # 8-bit levels, like a decoded photo
    assert torch.equal(b[(1, 7)][0], lr) and not torch.equal(b[(1, 7)][1], hr)  # sharpened target
    # USM exactly once on each side: the target is the HR sharpened once (not twice), and the
    # LR is the degradation of the plain HR patch, which the pipeline sharpens once itself
    from lightsr.degrade import degrade_image, usm_sharp

    assert torch.equal(b[(1, 7)][1], usm_sharp(hr))
    assert not torch.equal(b[(1, 7)][1], usm_sharp(usm_sharp(hr)))
    hr_u8 = (hr * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    lr_u8 = degrade_image(hr_u8, 4, 3, index=7)  # sharpen_input: USM before the first blur
    assert torch.equal(lr, torch.from_numpy(lr_u8).permute(2, 0, 1) / 255)


def test_high_order_recipe_trains_resumes_exports_and_upscales(data: Path, tmp_path: Path) -> None:
    """Two iterations of the real-world recipe's data settings end to end."""
    sets = [
        "data.degradation=high-order", "data.usm_target=true", "data.patch_size=8",
        "model.scale=4", "train.iters=2", "train.checkpoint_every=1", "val.datasets=[]",
        "data.degrade={jpeg_range: [60, 95]}",
    ]  # fmt: skip
    tiny_config(data, tmp_path)
    assert main(["train", str(tmp_path / "tiny.yaml"), "-q", *_sets(sets)]) == 0
    run = tmp_path / "runs" / "tiny"
    more = [*_sets(sets), "--set", "train.iters=3"]
    assert main(["train", str(tmp_path / "tiny.yaml"), "--resume", str(run), "-q", *more]) == 0
    weights = tmp_path / "real.safetensors"
    assert main(["export-weights", str(run), "-o", str(weights)]) == 0
    img = tmp_path / "photo.png"
    write_image(img, np.full((12, 16, 3), 128, np.uint8))
    out = tmp_path / "photo_x4.png"
    assert main(["upscale", str(img), "--weights", str(weights), "-o", str(out), "-q"]) == 0
    assert read_image(out).shape == (48, 64, 3)


def _sets(items: list[str]) -> list[str]:
    return [x for item in items for x in ("--set", item)]


def test_bad_degradation_settings_are_one_line_errors(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.degradation: expected bicubic or high-order"):
        cfg_of(data, tmp_path, "data.degradation=jpeg")
    with pytest.raises(ConfigError, match=r"data\.degrade: .*unknown degradation parameter 'nope'"):
        cfg_of(data, tmp_path, "data.degradation=high-order", "data.degrade={nope: 1}")


def test_model_init_takes_a_named_model_with_bundled_weights() -> None:
    from lightsr.models.registry import build_model
    from lightsr.training.loop import init_weights

    model = build_model("safmn-x4")
    line = init_weights(model, "safmn-x4")
    assert line.startswith("initialised ") and "kept random" not in line
    assert "safmn_x4.safetensors" in line


def test_model_grow_deepens_model_init(data: Path, tmp_path: Path, capsys) -> None:
    from lightsr.models.archs.safmn import SAFMN
    from lightsr.models.checkpoint import save_safetensors
    from lightsr.training.loop import init_weights

    def source(n_blocks: int) -> tuple[SAFMN, Path]:
        torch.manual_seed(n_blocks)
        model = SAFMN(dim=8, n_blocks=n_blocks, upscaling_factor=2)  # the tiny recipe's shapes
        path = tmp_path / f"src{n_blocks}.safetensors"
        save_safetensors(model.state_dict(), path, arch="safmn", config={"dim": 8}, scale=2)
        return model, path

    one, one_path = source(1)
    tiny_config(data, tmp_path)
    recipe = str(tmp_path / "tiny.yaml")
    sets = ["model.args={dim: 8, n_blocks: 3}", f"model.init={one_path}", "model.grow=true"]
    sets += ["train.iters=1", "optim.lr=1e-9", "schedule.name=constant"]
    assert main(["train", recipe, *_sets(sets)]) == 0
    assert "grown from 1 to 3 blocks" in capsys.readouterr().out
    state = load_training_state(find_checkpoint(tmp_path / "runs" / "tiny", "latest"))
    for k, v in one.feats[0].state_dict().items():  # block 0 is the source's
        assert torch.allclose(state["model"][f"feats.0.{k}"], v, atol=1e-6)
    for j in (1, 2):  # blocks 1 and 2 start as identities (one step of 1e-9 moves little)
        assert state["model"][f"feats.{j}.safm.aggr.weight"].abs().max() < 1e-6
        assert state["model"][f"feats.{j}.ccm.ccm.2.weight"].abs().max() < 1e-6
    # misuse: grow without init; counts that do not divide; a model that is not a SAFMN
    with pytest.raises(ConfigError, match=r"model\.grow: .*set model\.init"):
        cfg_of(data, tmp_path, "model.grow=true")
    _, three_path = source(3)
    bad = ["name=bad", f"model.init={three_path}", "model.grow=true"]
    assert main(["train", recipe, *_sets([*bad, "model.args={dim: 8, n_blocks: 4}"])]) == 2
    err = capsys.readouterr().err
    assert "model.grow:" in err and "multiple" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(TrainingError, match=r"model\.grow: only SAFMN models grow"):
        init_weights(torch.nn.Conv2d(3, 3, 3), one_path, grow=True)
