"""The declared minimum Python is the one CI runs and ruff targets (a 3.11 feature once broke 3.10)."""

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_declared_python_matches_ruff_target_and_the_tested_interpreter():
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    declared = re.fullmatch(r">=(\d+)\.(\d+)", project["project"]["requires-python"])
    assert declared, project["project"]["requires-python"]
    minimum = (int(declared[1]), int(declared[2]))
    assert project["tool"]["ruff"]["target-version"] == f"py{minimum[0]}{minimum[1]}"
    # CI and `make test` run the declared minimum (3.11): a newer feature used in src fails CI first.
    assert sys.version_info[:2] >= minimum
