"""The CI guard in conftest.py: under CI=true only tests marked ``cuda`` may be skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SKIPPING = """
import pytest

def test_needs_missing_module():
    pytest.importorskip("lightsr_no_such_module")
"""

CUDA_ONLY = """
import pytest

@pytest.mark.cuda
@pytest.mark.skipif(True, reason="needs a CUDA GPU")
def test_gpu():
    pass
"""


def _run(tmp_path: Path, body: str, ci: bool) -> subprocess.CompletedProcess[str]:
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_demo.py").write_text(body)
    env = {**os.environ, "CI": "true" if ci else ""}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ci", [True, False])
def test_unexpected_skip_fails_only_in_ci(tmp_path: Path, ci: bool) -> None:
    proc = _run(tmp_path, SKIPPING, ci)
    assert proc.returncode == (1 if ci else 0), proc.stdout
    assert ("must run" in proc.stdout) == ci


def test_cuda_only_skip_is_allowed_in_ci(tmp_path: Path) -> None:
    proc = _run(tmp_path, CUDA_ONLY, ci=True)
    assert proc.returncode == 0, proc.stdout
