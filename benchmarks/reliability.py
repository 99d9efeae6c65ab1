"""Reliability under bad input and faults, measured; writes the tables of docs/reliability.md.

Parts (each can be run alone with ``--only``):

- ``corpus``: every case of ``benchmarks/make_corpus.py`` through the command line and through
  the API. A case runs in its own child process with a time limit; the outcome is ``ok``
  (exit 0, output readable), ``refused`` (non-zero exit with a one-line message on stderr, or a
  ``LightSRError`` from the API), or a failure: ``traceback``, ``hang`` (time limit),
  ``crash`` (killed by a signal), ``partial`` (a zero-byte or unreadable output file, or a
  temporary file left behind), ``unexpected`` (``ok`` where the case must be refused, or the
  reverse).
- ``kill-train``: a tiny training run (SAFMN dim 8, fp32, no compile, deterministic data, a
  checkpoint every iteration) killed with SIGKILL at random moments and resumed each time; every
  checkpoint on disk must load, and each completed run must end bit-identical (model, EMA,
  optimizer) to an uninterrupted one.
- ``kill-batch``: a batch upscale killed with SIGKILL at random moments and resumed with
  ``--skip-existing``: no zero-byte or partial outputs at any time, and the final outputs equal
  an uninterrupted batch's.
- ``writers``: two processes upscaling into the same output folder at the same time.
- ``memory``: an input too large for the memory a process may use (``RLIMIT_AS``), run without
  ``--tile``: it must be tiled automatically (or refused with the fix), never killed.

Children are forked from this process after the heavy imports, so a case costs its own work
and not a Python start-up; ``--subprocess N`` also runs N cases per group through a real
``python -m lightsr.cli`` subprocess, to show that the two agree. This process itself never
runs a torch operation before forking (torch's thread pools do not survive a fork).

    python benchmarks/reliability.py                    # everything; rewrites docs/reliability.md
    python benchmarks/reliability.py --quick --json r.json --no-doc   # the CI subset
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")  # libtiff warnings on damaged files

from make_corpus import Case, make_corpus

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "reliability.md"
BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"
FAILURES = ("traceback", "hang", "crash", "partial", "unexpected")


@dataclass
class Child:
    """What a forked child did."""

    rc: int | None  # exit code; None: killed on the time limit; < 0: killed by that signal
    stdout: str
    stderr: str
    seconds: float
    result: Any = None  # the JSON the child's function returned


def _heavy_imports() -> None:
    """Import what the children use, so that forking skips it; run no torch operation."""
    import cv2  # noqa: F401
    import PIL.Image  # noqa: F401
    import torch

    import lightsr.cli
    import lightsr.cli.train
    import lightsr.cli.upscale
    import lightsr.inference.batch
    import lightsr.inference.upscaler
    import lightsr.training.loop  # noqa: F401

    torch.set_num_threads(1)  # no intra-op pool in the parent: forks stay safe


@dataclass
class _Spawned:
    pid: int
    tmp: Path
    t0: float


def _spawn(fn: Callable[[], Any], fsize: int = 0) -> _Spawned:
    """Fork a child running ``fn`` (its own process group; stdout/stderr to files)."""
    tmp = Path(tempfile.mkdtemp(prefix="lightsr_rel_"))
    t0 = time.perf_counter()
    pid = os.fork()
    if pid:
        return _Spawned(pid, tmp, t0)
    code = 1  # the child
    try:
        os.setpgid(0, 0)
        os.dup2(os.open(tmp / "out", os.O_WRONLY | os.O_CREAT), 1)
        os.dup2(os.open(tmp / "err", os.O_WRONLY | os.O_CREAT), 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        if fsize:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        value = fn()
        code = value if isinstance(value, int) else 0
        if value is not None and not isinstance(value, int):
            (tmp / "res").write_text(json.dumps(value))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reap(child: _Spawned, *, timeout: float, kill_after: float | None = None) -> Child:
    """Wait for a child; SIGKILL it at ``kill_after`` (rc -9), or at ``timeout`` (a hang)."""
    rc: int | None = None
    deadline = child.t0 + (kill_after if kill_after is not None else timeout)
    while True:
        done, status = os.waitpid(child.pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            break
        if time.perf_counter() >= deadline:
            _kill_group(child.pid)
            _, status = os.waitpid(child.pid, 0)
            rc = None if kill_after is None else os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.005)
    seconds = time.perf_counter() - child.t0
    files = {n: child.tmp / n for n in ("out", "err", "res")}
    text = {n: f.read_text(errors="replace") if f.exists() else "" for n, f in files.items()}
    shutil.rmtree(child.tmp, ignore_errors=True)
    result = json.loads(text["res"]) if text["res"] else None
    return Child(rc, text["out"], text["err"], seconds, result)


def fork_run(
    fn: Callable[[], Any], *, timeout: float, fsize: int = 0, kill_after: float | None = None
) -> Child:
    """Run ``fn`` in a forked child: exit code from its return value when it is an int, else 0
    (other values come back as ``result``, JSON); an exception prints its traceback and exits
    1. ``fsize`` sets ``RLIMIT_FSIZE`` in the child; ``kill_after`` sends SIGKILL at that
    moment; ``timeout`` kills it as a hang (``rc`` None)."""
    return _reap(_spawn(fn, fsize), timeout=timeout, kill_after=kill_after)


def fork_many(fns: list[Callable[[], Any]], *, timeout: float) -> list[Child]:
    """Run functions in forked children at the same time (see :func:`fork_run`)."""
    children = [_spawn(fn) for fn in fns]
    return [_reap(c, timeout=timeout) for c in children]


def _kill_group(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


# --------------------------------------------------------------------------------------------
# The corpus


@dataclass
class Outcome:
    case: str
    category: str
    group: str
    via: str  # "cli", "api" or "subprocess"
    outcome: str
    rc: int | None
    seconds: float
    detail: str = ""
    expect: str = "either"


def _cli_argv(case: Case, corpus: Path, out: Path) -> list[str]:
    path = str(corpus / case.path)
    if case.category == "image":
        return ["upscale", path, "-o", str(out), "-q"]
    if case.category == "checkpoint":
        return ["upscale", str(corpus / "cli" / "in.png"), "--weights", path, "-o", str(out), "-q"]
    if case.category == "recipe":
        return ["train", path, "-q"]
    return [a.replace("{corpus}", str(corpus)).replace("{out}", str(out)) for a in case.argv]


def _api_call(case: Case, corpus: Path, out: Path) -> Callable[[], Any]:
    """The API equivalent of a case: returns "ok" or "refused: <message>"; anything else that
    escapes (a non-LightSRError exception) is a traceback."""

    def run() -> Any:
        import lightsr
        from lightsr.errors import LightSRError

        path = corpus / case.path
        try:
            if case.category == "image":
                summary = lightsr.upscale_files(path, output=out)
                return "ok" if not summary.failed else f"refused: {summary.failed[0].error}"
            if case.category == "checkpoint":
                model = lightsr.load_model(path, device="cpu")
                summary = lightsr.upscale_files(corpus / "cli" / "in.png", model, output=out)
                return "ok" if not summary.failed else f"refused: {summary.failed[0].error}"
            if case.category == "recipe":
                from lightsr.training.config import load_config
                from lightsr.training.loop import train

                train(load_config(path, [f"name=api_{path.stem}"]), quiet=True)
                return "ok"
            kwargs = {
                k: (v.replace("{corpus}", str(corpus)) if isinstance(v, str) else v)
                for k, v in (case.api or {}).items()
            }
            kwargs.setdefault("output", str(out))
            summary = lightsr.upscale_files(corpus / "cli" / "in.png", **kwargs)
            return "ok" if not summary.failed else f"refused: {summary.failed[0].error}"
        except LightSRError as exc:
            return f"refused: {exc}"

    return run


def _check_outputs(out: Path) -> str:
    """'' when every file under ``out`` is a complete image; else what is wrong."""
    if not out.exists():
        return ""
    from lightsr.errors import ImageError
    from lightsr.inference.io import read_image

    for f in sorted(out.rglob("*")):
        if not f.is_file():
            continue
        if f.name.startswith("."):
            return f"temporary file left: {f.name}"
        if f.stat().st_size == 0:
            return f"zero-byte output {f.name}"
        if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"):
            try:
                read_image(f)
            except ImageError as exc:
                return f"unreadable output {f.name}: {exc}"
    return ""


def _classify(case: Case, via: str, child: Child, out: Path) -> Outcome:
    rc = child.rc
    text = child.stderr + child.stdout
    detail = ""
    if rc is None:
        outcome = "hang"
    elif rc < 0:
        outcome, detail = "crash", f"signal {-rc}"
    elif "Traceback (most recent call last)" in text:
        outcome = "traceback"
        detail = [ln for ln in text.strip().splitlines() if ln.strip()][-1][:200]
    elif via == "api":
        res = str(child.result or "")
        outcome = "ok" if res == "ok" else "refused" if res.startswith("refused") else "traceback"
        detail = res[:200]
    elif rc == 0:
        outcome = "ok"
    else:
        errors = [ln for ln in child.stderr.splitlines() if ln.startswith(("error:", "lightsr"))]
        outcome = "refused" if errors else "traceback"
        detail = (errors or child.stderr.strip().splitlines() or ["(no message)"])[-1][:200]
    if outcome in ("ok", "refused"):
        problem = _check_outputs(out)
        if problem:
            outcome, detail = "partial", problem
        elif outcome == "ok" and case.category in ("image", "checkpoint") and not _any_file(out):
            outcome, detail = "partial", "exit 0 but no output"
    if outcome in ("ok", "refused") and case.expect not in ("either", outcome):
        detail = f"expected {case.expect}; {detail}"
        outcome = "unexpected"
    return Outcome(
        case.name, case.category, case.group, via, outcome, rc, child.seconds, detail, case.expect
    )


def _any_file(out: Path) -> bool:
    return out.exists() and any(f.is_file() for f in out.rglob("*"))


def run_corpus(
    work: Path, *, quick: bool, timeout: float, subprocess_per_group: int, jobs: int = 1
) -> list[Outcome]:
    """Every corpus case through the CLI and the API (and some through real subprocesses),
    ``jobs`` children at a time."""
    from lightsr.cli import main as cli_main

    corpus = work / "corpus"
    cases = make_corpus(corpus, quick=quick)
    if quick:  # at most QUICK_PER_GROUP cases of each group, spread over it
        groups: dict[str, list[Case]] = {}
        for c in cases:
            groups.setdefault(f"{c.category}/{c.group}", []).append(c)
        cases = [g[i] for g in groups.values() for i in _spread(len(g), QUICK_PER_GROUP)]
    todo: list[tuple[Case, str, Callable[[], Any], Path]] = []
    for i, case in enumerate(cases):
        for via in ("cli", "api") if case.category != "cli" or case.api else ("cli",):
            out = work / "out" / f"{i:04d}_{via}"
            argv = _cli_argv(case, corpus, out)
            fn = (
                (lambda argv=argv: cli_main(argv)) if via == "cli" else _api_call(case, corpus, out)
            )
            todo.append((case, via, fn, out))
    done = _run_parallel(todo, jobs=jobs, timeout=timeout)
    per_group: Counter[str] = Counter()
    for i, case in enumerate(cases):
        if per_group[case.group] < subprocess_per_group and not case.fsize:
            per_group[case.group] += 1
            out = work / "out" / f"{i:04d}_sub"
            argv = _cli_argv(case, corpus, out)
            done.append((case, "subprocess", _subprocess(argv, timeout), out))
    # outputs are checked here, after the last fork (decoding starts OpenCV's threads)
    return [_classify(case, via, child, out) for case, via, child, out in done]


def _run_parallel(
    todo: list[tuple[Case, str, Callable[[], Any], Path]], *, jobs: int, timeout: float
) -> list[tuple[Case, str, Child, Path]]:
    """Fork ``todo``'s functions, at most ``jobs`` alive at once; results in ``todo``'s order."""
    results: dict[int, tuple[Case, str, Child, Path]] = {}
    running: dict[int, _Spawned] = {}
    nxt = 0
    while nxt < len(todo) or running:
        while nxt < len(todo) and len(running) < jobs:
            case, _, fn, _ = todo[nxt]
            running[nxt] = _spawn(fn, case.fsize)
            nxt += 1
        for k, child in list(running.items()):
            if not _alive(child) or time.perf_counter() - child.t0 > timeout:
                case, via, _, out = todo[k]
                results[k] = (case, via, _reap(child, timeout=timeout), out)
                del running[k]
        time.sleep(0.01)
    return [results[k] for k in range(len(todo))]


def _alive(child: _Spawned) -> bool:
    """Whether the child has not exited yet (without reaping it)."""
    try:
        info = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return info is None


QUICK_PER_GROUP = 4


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all of them when ``n <= k``)."""
    return list(range(n)) if n <= k else sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _subprocess(argv: list[str], timeout: float) -> Child:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(
            [sys.executable, "-m", "lightsr.cli", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            errors="replace",
        )
        return Child(p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return Child(None, out, "", time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# Faults


@dataclass
class FaultReport:
    """The outcome of one fault-injection loop."""

    key: str  # kill-train, kill-batch, writers, memory
    name: str
    kills: int = 0  # SIGKILLs that hit a live process
    attempts: int = 0
    completed: int = 0  # runs that reached the end (each compared with the reference)
    identical: int = 0  # ... and were bit-identical to it
    corrupt: int = 0  # checkpoints or outputs that did not load / were incomplete at any time
    debris: int = 0  # hidden temporary files seen after a kill (never at a visible path)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and self.corrupt == 0 and self.identical == self.completed > 0


def _tiny_image(seed: int, h: int, w: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float64)
    img = np.kron(base, np.ones((8, 8, 1)))[:h, :w] + rng.normal(0, 8, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_png(path: Path, img: Any) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _train_recipe(work: Path, iters: int) -> Path:
    for i in range(6):
        _write_png(work / "data" / f"img{i}.png", _tiny_image(i, 40 + 4 * i, 36 + 4 * i))
    recipe = work / "tiny.yaml"
    recipe.write_text(
        f"name: tiny\noutput_dir: {work / 'runs'}\n"
        "model: {name: safmn, scale: 2, args: {dim: 8, n_blocks: 1}}\n"
        f"data: {{hr_dirs: [{work / 'data'}], patch_size: 8, batch_size: 4, workers: 0}}\n"
        f"train: {{iters: {iters}, log_every: 5, checkpoint_every: 1, keep_last: 2, threads: 1, "
        "tensorboard: false, compile: false, precision: fp32}\n",
        encoding="utf-8",
    )
    return recipe


def _final_state(run_dir: Path, iters: int) -> dict[str, Any]:
    from lightsr.training.loop import load_training_state

    return load_training_state(run_dir / "checkpoints" / f"iter_{iters:08d}.pt")


def _states_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    for part in ("model", "ema"):
        if a[part].keys() != b[part].keys():
            return False
        if not all(torch.equal(a[part][k], b[part][k]) for k in a[part]):
            return False
    oa, ob = a["optimizer"]["state"], b["optimizer"]["state"]
    return oa.keys() == ob.keys() and all(
        torch.equal(oa[i][k], ob[i][k]) for i in oa for k in oa[i] if torch.is_tensor(oa[i][k])
    )


def _check_checkpoints(run_dir: Path, report: FaultReport) -> None:
    from lightsr.errors import LightSRError
    from lightsr.training.loop import load_training_state

    ckpt = run_dir / "checkpoints"
    if not ckpt.is_dir():
        return
    for f in ckpt.iterdir():
        if f.name.startswith("."):
            report.debris += 1  # a killed write's temporary file; the next start removes it
            continue
        try:
            load_training_state(f)
        except LightSRError as exc:
            report.corrupt += 1
            report.errors.append(f"corrupt checkpoint {f.name}: {exc}")


def kill_train(work: Path, kills: int, seed: int, iters: int, timeout: float) -> FaultReport:
    """SIGKILL a tiny training run at random moments, resuming each time (see the module doc)."""
    from lightsr.cli import main as cli_main

    report = FaultReport("kill-train", "kill -9 during training, resumed")
    t0 = time.perf_counter()
    recipe = _train_recipe(work, iters)

    def train(name: str, resume: bool) -> Callable[[], Any]:
        argv = ["train", str(recipe), "-q", "--set", f"name={name}"]
        argv += ["--resume", str(work / "runs" / name)] if resume else []
        return lambda: cli_main(argv)

    ref = fork_run(train("reference", False), timeout=timeout)
    if ref.rc != 0:
        report.errors.append(f"reference run failed: {ref.stderr.strip()[-300:]}")
        return report
    reference = _final_state(work / "runs" / "reference", iters)
    rng = random.Random(seed)
    cycle = 0
    while report.kills < kills and report.attempts < 6 * kills + 10:
        cycle += 1
        name = f"cycle{cycle}"
        run_dir = work / "runs" / name
        while True:  # kill at random moments until the run completes
            report.attempts += 1
            resume = any((run_dir / "checkpoints").glob("iter_*.pt"))
            delay = rng.uniform(0.0, ref.seconds) if report.kills < kills else None
            child = fork_run(train(name, resume), timeout=timeout, kill_after=delay)
            if child.rc == -signal.SIGKILL:
                report.kills += 1
                _check_checkpoints(run_dir, report)
                continue
            if child.rc != 0:
                report.errors.append(f"{name}: exit {child.rc}: {child.stderr.strip()[-300:]}")
                break
            report.completed += 1
            report.identical += _states_equal(reference, _final_state(run_dir, iters))
            break
        if report.errors:
            break
    report.seconds = time.perf_counter() - t0
    return report


def _complete(path: Path) -> bool:
    """A PNG output is complete: non-empty, with its IEND chunk at the end (no decoder needed)."""
    data = path.read_bytes()
    return len(data) > 0 and data.startswith(b"\x89PNG") and data[-12:-4] == b"\0\0\0\0IEND"


def _scan_outputs(out: Path, report: FaultReport) -> dict[str, bytes]:
    found = {}
    for f in sorted(out.rglob("*")) if out.exists() else []:
        if f.name.startswith("."):
            report.debris += 1
        elif not _complete(f):
            report.corrupt += 1
            report.errors.append(f"incomplete output {f.name} ({f.stat().st_size} bytes)")
        else:
            found[f.name] = f.read_bytes()
    return found


def _batch_inputs(work: Path, n: int) -> Path:
    src = work / "in"
    for i in range(n):
        _write_png(src / f"p{i:02d}.png", _tiny_image(100 + i, 96, 80))
    return src


def kill_batch(work: Path, kills: int, seed: int, n_images: int, timeout: float) -> FaultReport:
    """SIGKILL a batch upscale at random moments and resume with --skip-existing."""
    from lightsr.cli import main as cli_main

    report = FaultReport(
        "kill-batch", "kill -9 during a batch upscale, resumed with --skip-existing"
    )
    t0 = time.perf_counter()
    src = _batch_inputs(work, n_images)

    def upscale(out: Path) -> Callable[[], Any]:
        argv = ["upscale", str(src), "-o", str(out), "-q", "--skip-existing", "--model", "safmn-x2"]
        return lambda: cli_main(argv)

    ref = fork_run(upscale(work / "reference"), timeout=timeout)
    reference = _scan_outputs(work / "reference", report)
    if ref.rc != 0 or len(reference) != n_images:
        report.errors.append(f"reference batch failed: {ref.stderr.strip()[-300:]}")
        return report
    rng = random.Random(seed)
    cycle = 0
    while report.kills < kills and report.attempts < 6 * kills + 10:
        cycle += 1
        out = work / f"out{cycle}"
        while True:
            report.attempts += 1
            delay = rng.uniform(0.0, ref.seconds) if report.kills < kills else None
            child = fork_run(upscale(out), timeout=timeout, kill_after=delay)
            if child.rc == -signal.SIGKILL:
                report.kills += 1
                _scan_outputs(out, report)  # complete outputs only, at every moment
                continue
            if child.rc != 0:
                report.errors.append(f"batch exit {child.rc}: {child.stderr.strip()[-300:]}")
                break
            report.completed += 1
            report.identical += _scan_outputs(out, FaultReport("final", "final")) == reference
            break
        if report.errors:
            break
    report.seconds = time.perf_counter() - t0
    return report


def two_writers(work: Path, n_images: int, timeout: float) -> FaultReport:
    """Two processes upscaling the same inputs into the same folder at the same time (twice:
    with and without --skip-existing)."""
    from lightsr.cli import main as cli_main

    report = FaultReport("writers", "two processes writing into the same output folder")
    t0 = time.perf_counter()
    src = _batch_inputs(work, n_images)
    ref = fork_run(
        lambda: cli_main(
            ["upscale", str(src), "-o", str(work / "ref"), "-q", "--model", "safmn-x2"]
        ),
        timeout=timeout,
    )
    reference = _scan_outputs(work / "ref", report)
    for skip in (False, True):
        out = work / f"shared_{skip}"
        argv = ["upscale", str(src), "-o", str(out), "-q", "--model", "safmn-x2"]
        argv += ["--skip-existing"] if skip else []
        children = fork_many([lambda argv=argv: cli_main(argv)] * 2, timeout=timeout)
        report.attempts += 2
        for c in children:
            if c.rc != 0:
                report.errors.append(f"writer exit {c.rc}: {c.stderr.strip()[-300:]}")
        report.completed += 1
        report.identical += _scan_outputs(out, report) == reference and ref.rc == 0
    report.seconds = time.perf_counter() - t0
    return report


def memory_guard(work: Path, side: int, budget_mb: int, timeout: float) -> FaultReport:
    """An input whose untiled run needs more than the memory a process may use (RLIMIT_AS),
    upscaled without --tile: tiled automatically (a notice), never killed or failed."""
    from lightsr.cli import main as cli_main

    report = FaultReport(
        "memory", f"{side}x{side} input, no --tile, {budget_mb} MB of memory to spare"
    )
    t0 = time.perf_counter()
    src = work / "big.png"
    _write_png(src, _tiny_image(7, side, side))

    def vm_size() -> int:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmSize:")[1].split()[0]) * 1024

    out = work / "out"
    argv = ["upscale", str(src), "-o", str(out), "--model", "safmn-x2"]

    def run(extra: list[str]) -> Callable[[], Any]:
        def go() -> Any:
            resource.setrlimit(resource.RLIMIT_AS, (vm_size() + budget_mb * 2**20,) * 2)
            return cli_main(argv + extra)

        return go

    # the control: the same run forced untiled (one tile as large as the image)
    control = fork_run(run(["--tile", str(side), "-o", str(work / "control")]), timeout=timeout)
    last = (control.stderr.strip().splitlines() or [""])[-2 if control.rc == 1 else -1]
    report.note = f"control (--tile {side}, untiled): exit {control.rc}: {last[:160]}"
    child = fork_run(run([]), timeout=timeout)
    report.attempts = 1
    if child.rc != 0:
        report.errors.append(f"exit {child.rc}: {child.stderr.strip()[-300:]}")
    elif "tiled automatically" not in child.stderr:
        report.errors.append(f"no automatic tiling notice: {child.stderr.strip()[-300:]}")
    else:
        report.completed = report.identical = 1
        report.errors += [] if _scan_outputs(out, report) else ["no output"]
    report.seconds = time.perf_counter() - t0
    return report


# --------------------------------------------------------------------------------------------
# Report


def summarise(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """One row per category/group: cases, outcomes per route, failures, exit codes, time."""
    rows = []
    keys = sorted({(o.category, o.group) for o in outcomes})
    for cat, group in keys:
        mine = [o for o in outcomes if (o.category, o.group) == (cat, group)]
        count = Counter(o.outcome for o in mine)
        rows.append(
            {
                "category": cat,
                "group": group,
                "cases": len({o.case for o in mine}),
                "runs": len(mine),
                "ok": count["ok"],
                "refused": count["refused"],
                **{f: count[f] for f in FAILURES},
                "exit_codes": dict(
                    sorted(Counter(str(o.rc) for o in mine if o.via != "api").items())
                ),
                "max_seconds": round(max(o.seconds for o in mine), 2),
            }
        )
    return rows


def render(
    rows: list[dict[str, Any]],
    faults: list[FaultReport],
    fuzz: list[dict[str, Any]],
    meta: dict[str, Any],
) -> str:
    lines = [
        f"Measured {meta['date']} on {meta['machine']} with `{meta['command']}` "
        f"({meta['seconds']:.0f} s). Each case ran through the CLI and the API"
        f"{' (and a sample through a real subprocess)' if meta['subprocess'] else ''}, in its "
        f"own process with a {meta['timeout']:.0f} s limit.",
        "",
        "| category | group | cases | runs | ok | refused | tracebacks | hangs | crashes | "
        "partial outputs | unexpected | exit codes (CLI) | max s |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|",
    ]
    total: Counter[str] = Counter()
    for r in rows:
        codes = ", ".join(f"{k}: {v}" for k, v in r["exit_codes"].items())
        lines.append(
            f"| {r['category']} | {r['group']} | {r['cases']} | {r['runs']} | {r['ok']} | "
            f"{r['refused']} | {r['traceback']} | {r['hang']} | {r['crash']} | {r['partial']} | "
            f"{r['unexpected']} | {codes} | {r['max_seconds']} |"
        )
        total.update({k: r[k] for k in ("cases", "runs", "ok", "refused", *FAILURES)})
    lines.append(
        f"| **all** | | **{total['cases']}** | **{total['runs']}** | {total['ok']} | "
        f"{total['refused']} | **{total['traceback']}** | **{total['hang']}** | "
        f"**{total['crash']}** | **{total['partial']}** | **{total['unexpected']}** | | |"
    )
    if faults:
        lines += [
            "",
            "| fault | kills delivered | runs | completed | bit-identical to uninterrupted | "
            "corrupt checkpoints/outputs | hidden temporaries seen | errors | s |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for f in faults:
            lines.append(
                f"| {f.name} | {f.kills} | {f.attempts} | {f.completed} | {f.identical} | "
                f"{f.corrupt} | {f.debris} | {len(f.errors)} | {f.seconds:.0f} |"
            )
        lines += [f"\n{f.name}: {f.note}" for f in faults if f.note]
    for fz in fuzz:
        lines.append("")
        lines.append(
            f"Fuzzing ({fz['engine']}) `{fz['target']}`: {fz['executions']:,} executions in "
            f"{fz['seconds']:.0f} s, {fz['findings']} findings."
        )
    return "\n".join(lines)


def write_doc(text: str) -> None:
    """Replace the generated part of docs/reliability.md (between the markers)."""
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else f"{BEGIN}\n{END}\n"
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}", encoding="utf-8")


def failures(
    rows: list[dict[str, Any]], faults: list[FaultReport], fuzz: list[dict[str, Any]]
) -> int:
    """The number of failed runs, fault loops and fuzz targets (0 when everything held)."""
    bad_fuzz = sum(1 for fz in fuzz if fz.get("findings"))
    return sum(r[f] for r in rows for f in FAILURES) + sum(not f.ok for f in faults) + bad_fuzz


def _fuzz(seconds: float, artifacts: Path) -> list[dict[str, Any]]:
    """Run benchmarks/fuzz_decode.py's targets in subprocesses (atheris needs its own process);
    findings are written under ``artifacts``."""
    results = []
    for target in ("image", "checkpoint"):
        cmd = [sys.executable, str(REPO / "benchmarks" / "fuzz_decode.py"), target]
        cmd += ["--seconds", str(seconds), "--artifacts", str(artifacts), "--json"]
        try:  # the limit covers start-up and seeding too, slow on a loaded machine
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 1800)
            stdout, stderr = p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            stdout, stderr = "", "timed out"
        last = (stdout.strip().splitlines() or [""])[-1]
        try:
            results.append(json.loads(last))
            if not isinstance(results[-1], dict) or "executions" not in results[-1]:
                raise json.JSONDecodeError("not a result", last, 0)
        except json.JSONDecodeError:
            results = [r for r in results if isinstance(r, dict) and "executions" in r]
            results.append(
                {
                    "engine": "?",
                    "target": target,
                    "executions": 0,
                    "seconds": 0,
                    "findings": f"harness failed: {stderr.strip()[-300:]}",
                }
            )
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the CI subset (corpus subset, 3 kills)")
    ap.add_argument(
        "--only",
        nargs="+",
        choices=("corpus", "kill-train", "kill-batch", "writers", "memory", "fuzz"),
    )
    ap.add_argument("--kills", type=int, help="SIGKILLs per loop (default 20; 3 with --quick)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    ap.add_argument("--subprocess", type=int, help="cases per group also run as a real subprocess")
    ap.add_argument("--fuzz-seconds", type=float, help="per fuzz target (default 300; 10 quick)")
    ap.add_argument("--fuzz-artifacts", default="fuzz-artifacts", help="where findings go")
    ap.add_argument("--jobs", type=int, default=2, help="corpus cases run at the same time")
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--work", help="working folder (default: a temporary one, removed)")
    ap.add_argument("--json", help="write the results as JSON here")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/reliability.md")
    ap.add_argument(
        "--merge", nargs="+", metavar="JSON", help="write the doc from the --json files of "
        "runs of separate parts (--only ...) instead of running anything"
    )  # fmt: skip
    args = ap.parse_args()
    if args.merge:
        return merge(args.merge, write=not args.no_doc)
    parts = set(args.only or ("corpus", "kill-train", "kill-batch", "writers", "memory", "fuzz"))
    kills = args.kills if args.kills is not None else (3 if args.quick else 20)
    sub = args.subprocess if args.subprocess is not None else (0 if args.quick else 1)
    fuzz_s = args.fuzz_seconds if args.fuzz_seconds is not None else (10 if args.quick else 300)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="lightsr_reliability_"))
    t0 = time.perf_counter()
    _heavy_imports()
    outcomes: list[Outcome] = []
    faults: list[FaultReport] = []
    fuzz: list[dict[str, Any]] = []
    try:
        if "corpus" in parts:
            outcomes = run_corpus(
                work / "c",
                quick=args.quick,
                timeout=args.timeout,
                subprocess_per_group=sub,
                jobs=args.jobs,
            )
        if "kill-train" in parts:
            faults.append(
                kill_train(work / "kt", kills, args.seed, 12 if args.quick else 30, args.timeout)
            )
        if "kill-batch" in parts:
            faults.append(
                kill_batch(work / "kb", kills, args.seed, 6 if args.quick else 12, args.timeout)
            )
        if "writers" in parts:
            faults.append(two_writers(work / "tw", 6, args.timeout))
        if "memory" in parts:
            side, budget = (700, 300) if args.quick else (1000, 400)
            faults.append(memory_guard(work / "mem", side, budget, args.timeout * 3))
        if "fuzz" in parts:
            fuzz = _fuzz(fuzz_s, Path(args.fuzz_artifacts).resolve())
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    rows = summarise(outcomes)
    seconds = time.perf_counter() - t0
    meta = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs ({_cpu_name()}), shared with other jobs",
        "command": "python benchmarks/reliability.py " + " ".join(_public_args(sys.argv[1:])),
        "seconds": seconds,
        "timeout": args.timeout,
        "subprocess": sub,
    }
    text = render(rows, faults, fuzz, meta)
    print(text)
    bad = [o for o in outcomes if o.outcome in FAILURES]
    for o in bad:
        print(f"FAILED {o.category}/{o.group}/{o.case} via {o.via}: {o.outcome} {o.detail}")
    for f in faults:
        for e in f.errors:
            print(f"FAILED {f.name}: {e}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "rows": rows,
                    "faults": [dict(vars(f), ok=f.ok) for f in faults],
                    "fuzz": fuzz,
                    "failures": [vars(o) for o in bad],
                    "outcomes": [vars(o) for o in outcomes],
                    "meta": meta,
                },
                indent=1,
            )
        )
    if not args.no_doc:
        write_doc(text)
    return 1 if failures(rows, faults, fuzz) else 0


def _public_args(argv: list[str]) -> list[str]:
    """The command line without the machine-local paths (--work, --json, --fuzz-artifacts)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--work", "--json", "--fuzz-artifacts"):
            skip = True
        else:
            out.append(a)
    return out


def merge(files: list[str], *, write: bool) -> int:
    """Render (and write) the doc from the JSON results of runs of separate parts."""
    rows: list[dict[str, Any]] = []
    faults: list[FaultReport] = []
    fuzz: list[dict[str, Any]] = []
    commands, seconds, meta = [], 0.0, {}
    for f in files:
        data = json.loads(Path(f).read_text())
        rows += data["rows"]
        faults += [FaultReport(**{k: v for k, v in r.items() if k != "ok"}) for r in data["faults"]]
        fuzz += data["fuzz"]
        meta = data["meta"]
        commands.append(data["meta"]["command"])
        seconds += data["meta"]["seconds"]
    meta = {**meta, "command": "`, `".join(commands), "seconds": seconds}
    text = render(rows, faults, fuzz, meta)
    print(text)
    if write:
        write_doc(text)
    return 1 if failures(rows, faults, fuzz) else 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return re.sub(r"\s+", " ", line.split(":", 1)[1]).strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
