"""The README's Python snippets run as written, in a folder holding only ``photo.png``.

Each ```python block of README.md is run in a fresh interpreter whose working directory holds
one file, ``photo.png`` (the bundled sample image); nothing else the user might lack is there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNIPPETS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_readme_has_python_snippets() -> None:
    assert SNIPPETS, "README.md has no ```python block"


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_readme_snippet_runs_as_written(tmp_path: Path, code: str) -> None:
    shutil.copy(REPO / "examples" / "chelsea.png", tmp_path / "photo.png")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"README snippet failed:\n{code}\n--- stderr:\n{proc.stderr}"
