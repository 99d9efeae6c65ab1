"""The package layout's promises: old import paths still work, and importing is cheap."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import lightsr

#: The flat layout's module names (0.1) and where their code lives now.
MOVED = lightsr._MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_import_paths_are_the_new_modules(old: str) -> None:
    assert len(MOVED) == 13 and old.count(".") == 1
    assert importlib.import_module(old) is importlib.import_module(MOVED[old])


def test_public_api_names() -> None:
    from lightsr.evaluation import metrics, resize

    assert lightsr.resize is resize and lightsr.metrics is metrics
    for name in lightsr.__all__:
        assert getattr(lightsr, name) is not None, name
    from lightsr.resize import imresize  # the old spelling of a public import

    assert imresize is resize.imresize


def test_importing_lightsr_and_its_cli_does_not_import_torch() -> None:
    code = (
        "import sys, lightsr, lightsr.cli, lightsr.inference, lightsr.models;"
        "from lightsr.cli import build_parser; build_parser();"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_no_function_in_src_is_longer_than_120_lines() -> None:
    import ast
    from pathlib import Path

    src = Path(lightsr.__file__).resolve().parent
    long = []
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 120:
                    long.append(f"{path.relative_to(src)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "split these functions: " + ", ".join(long)


def test_pyproject_license_is_an_spdx_string() -> None:
    """A TOML-table license is deprecated by setuptools (builds stop being supported in 2027)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert re.search(r'^license = "Apache-2.0"$', text, re.M)
    assert re.search(r'^requires = \["setuptools>=77', text, re.M)
    assert re.search(r'^    "scipy>=', text, re.M)


def test_sub_packages_import_only_downwards() -> None:
    """ARCHITECTURE.md's layering: cli > training > evaluation > inference > native > models >
    runtime, files, errors. A module-level or local ``from lightsr.X import`` may only go down."""
    import ast
    from pathlib import Path

    order = ["errors", "files", "runtime", "degrade", "models", "native", "inference", "evaluation"]
    order += ["restoration", "analysis", "training", "serve", "cli"]
    rank = {name: i for i, name in enumerate(order)}
    src = Path(lightsr.__file__).resolve().parent
    upward = []
    for path in sorted(src.rglob("*.py")):
        me = path.relative_to(src).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] == "lightsr" and len(parts) > 1 and me in rank:
                    if rank.get(parts[1], -1) > rank[me]:
                        upward.append(f"{path.relative_to(src)}:{node.lineno} -> {node.module}")
    assert not upward, "imports against the layering: " + ", ".join(upward)
