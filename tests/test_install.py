"""The package works once installed: ``pip install .`` (here into a target folder, dependencies from this
environment) then ``tcdml demo --epochs 1`` from another folder, and a missing optional dependency is one
line naming the extra that installs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip install --no-deps .`` of a copy of the source (pip would write build/ into the checkout)."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    target = base / "site"
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "--target", str(target), str(source)], check=True, capture_output=True)
    return target


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "tcdml.cli.main", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_the_installed_package_is_the_one_running(installed: Path, tmp_path: Path) -> None:
    code = "import tcdml; print(tcdml.__file__)"
    env = dict(os.environ, PYTHONPATH=str(installed))
    where = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert Path(where.stdout.strip()).is_relative_to(installed)
    assert (installed / "tcdml" / "experiments" / "configs" / "mnist-arcface.yaml").is_file()


def test_demo_runs_from_another_folder_after_install(installed: Path, tmp_path: Path) -> None:
    run = _run(
        installed, tmp_path, "demo", "--epochs", "1", "--seed", "0", "--output", "demo-out", "--no-progress"
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "demo-out" / "report.md").is_file()


def test_a_missing_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['pytorch_lightning'] = None\n"
        "from tcdml.cli.main import main\n"
        f"sys.exit(main(['train', {str(ROOT / 'src/tcdml/experiments/configs/mnist-arcface.yaml')!r}, "
        f"'output_dir={tmp_path / 'run'}']))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 1
    message = "this command needs the Python module 'pytorch_lightning': pip install 'tcdml[vision]'"
    assert run.stderr == f"tcdml: error: {message}\n"
    assert not (tmp_path / "run").exists()
