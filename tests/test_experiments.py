"""The UPS experiment commands (experiments/ups_experiments.py) run end to end at a tiny budget.

Two iterations on 16x16 patches and complexity counted on a small input: what is checked is the
plumbing (each variant trains, is exported, measured and tabulated with the right model, and a
finished run is reused rather than retrained), not the numbers.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from lightsr.inference.io import read_image, write_image

from conftest import REPO, need_shared, shared_root


@pytest.fixture
def experiments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    need_shared("datasets", "T91")
    need_shared("datasets", "Set5")
    monkeypatch.setenv("LIGHTSR_SHARED", str(shared_root()))
    spec = importlib.util.spec_from_file_location(
        "ups_experiments", REPO / "experiments" / "ups_experiments.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "RUNS", tmp_path / "runs")
    # complexity at a 64x64 input instead of 1280x720 output: the same params, a fraction of
    # the time (FLOP counts are pinned in test_bench.py and test_ups.py)
    count = mod.count_complexity
    monkeypatch.setattr(mod, "count_complexity", lambda model, size: count(model, (64, 64)))
    return mod


@pytest.fixture
def tiny_set(tmp_path: Path) -> str:
    """A two-image evaluation set (48x48 crops of Set5): short transformer evaluations."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    for name in ("baby.png", "bird.png"):
        img = read_image(need_shared("datasets", "Set5", "HR", name))
        write_image(tiny / name, img[:48, :48])
    return str(tiny)


TINY = [
    "--iters", "2",
    "--set", "data.batch_size=2",
    "--set", "data.patch_size=16",
    "--set", "data.cache=false",
    "--set", "data.hr_dirs=['${LIGHTSR_SHARED}/datasets/T91/HR']",
    "--set", "val.datasets=[]",
    "--set", "train.log_every=1000",
]  # fmt: skip


def _rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and not line.startswith("| model") and len(cells) > 2:
            rows[cells[0]] = cells[1:]
    return rows


def test_equal_budget_trains_measures_and_reuses(experiments, tiny_set, capsys) -> None:
    args = ["equal-budget", "--datasets", tiny_set, *TINY]
    assert experiments.main(args) == 0
    out = capsys.readouterr().out
    assert "Equal budget, x2: 2 iterations each" in out
    rows = _rows(out)
    assert set(rows) == {"swinir-light", "ups", "ups (per-layer projections)"}
    # params of the variants actually trained (the shared projection saves 176,640 at x2)
    assert rows["swinir-light"][0] == "910,152"
    assert rows["ups"][0] == "643,512"
    assert rows["ups (per-layer projections)"][0] == "820,152"
    for cells in rows.values():
        assert re.fullmatch(r"\d+\.\d\d/0\.\d{4}", cells[-1]), cells
    runs = experiments.RUNS / "equal_budget_x2"
    stamp = (runs / "ups.safetensors").stat().st_mtime_ns
    ckpts = sorted(p.name for p in (runs / "ups" / "checkpoints").iterdir())

    # a second call reuses the finished runs: same checkpoints, same table
    assert experiments.main(args) == 0
    assert _rows(capsys.readouterr().out) == rows
    assert sorted(p.name for p in (runs / "ups" / "checkpoints").iterdir()) == ckpts
    assert (runs / "ups.safetensors").stat().st_mtime_ns >= stamp


def test_robustness_table_for_exported_weights(experiments, capsys) -> None:
    need_shared("datasets", "Set14")
    assert experiments.main(["robustness", "--weights", "safmn-x4"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert set(rows) == {"bicubic", "safmn-x4"}
    for cells in rows.values():
        assert len(cells) == 4
        psnr = [float(c.split("/")[0]) for c in cells]
        # every degradation costs PSNR against clean input
        assert all(p < psnr[0] for p in psnr[1:]), cells


def test_ablation_value_projection(experiments, tiny_set, capsys) -> None:
    args = ["ablation", "--what", "v-proj", "--datasets", tiny_set, *TINY]
    assert experiments.main(args) == 0
    out = capsys.readouterr().out
    assert "UPS ablation (v-proj), x2: 2 iterations each" in out
    assert "| setting | params | tiny |" in out
    rows = {k: v for k, v in _rows(out).items() if k != "setting"}
    assert set(rows) == {"v_proj: false", "v_proj: true"}
    without, with_v = (int(rows[k][0].replace(",", "")) for k in ("v_proj: false", "v_proj: true"))
    assert without == 643_512 and with_v > without
