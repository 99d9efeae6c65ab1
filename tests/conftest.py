"""Shared test fixtures.

Reference data (datasets, third-party weights, golden outputs) is read in place from
``../shared`` beside the checkout, or from ``$LIGHTSR_SHARED``. Tests that need it fail in CI
(``CI=true``) when it is missing and skip with a reason elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

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
