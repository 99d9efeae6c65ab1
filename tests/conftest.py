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
    return Path(os.environ.get("LIGHTSR_SHARED", REPO.parent / "shared")).resolve()


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
