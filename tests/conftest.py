"""Shared test fixtures.

Reference data (datasets, third-party weights, golden outputs) is read in place from
``../shared`` beside the checkout, or from ``$LIGHTSR_SHARED``. Tests that need it fail in CI
(``CI=true``) when it is missing and skip with a reason elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    """The library's own answer (:func:`lightsr.runtime.shared_root`), made absolute."""
    from lightsr.runtime import shared_root as library_shared_root

    return library_shared_root().resolve()


def need_shared(*parts: str) -> Path:
    """Return ``shared_root()/parts``; fail in CI, skip elsewhere, when it does not exist."""
    path = shared_root().joinpath(*parts)
    if not path.exists():
        msg = f"reference data not found: {path} (set LIGHTSR_SHARED to the shared/ folder)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture
def shared() -> Path:
    return need_shared()


def fp16_works(model: Any) -> tuple[bool, float, float]:
    """Whether float16 works for ``model`` (the criterion behind an architecture's
    ``supports_fp16``): no float32 activation beyond float16's range, and CPU float16 autocast
    finite and within 0.05 of float32 on a 24x32 input. Returns ``(works, peak activation,
    max error)``; skips where CPU float16 autocast is unavailable."""
    import torch

    peak = [0.0]

    def hook(_m: torch.nn.Module, _i: object, out: object) -> None:
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            peak[0] = max(peak[0], float(out.detach().abs().max()))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    torch.manual_seed(0)
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        ref = model(x)
        for h in handles:
            h.remove()
        try:
            with torch.autocast("cpu", dtype=torch.float16):
                half = model(x).float()
        except RuntimeError as exc:  # pragma: no cover - older CPUs/torch builds
            pytest.skip(f"CPU float16 autocast unavailable: {exc}")
    err = float((half - ref).abs().max())
    return peak[0] < 65504 and bool(torch.isfinite(half).all()) and err < 0.05, peak[0], err


# --- CI guard: a test that should run must not be skipped ---------------------------------
# Under CI=true the only tests allowed to skip are those marked ``cuda`` (no GPU on the CI
# machine). Any other skip (a missing optional dependency, missing reference data) fails the
# run, so a reference test cannot silently stop running.

_unexpected_skips: list[str] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("cuda") is None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _unexpected_skips.append(f"{item.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _in_ci() and _unexpected_skips and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    if _in_ci() and _unexpected_skips:
        terminalreporter.section("tests skipped in CI that must run (only 'cuda' tests may skip)")
        for line in _unexpected_skips:
            terminalreporter.line(line)
