"""No command eats its inputs, and a full disk is one line naming the file (issue 23, part 4): an output that
is an adapter's own file or the ``--labels`` file is refused; ENOSPC from a writer (simulated by fault
injection on the ``write`` system call for files under the test's folder) is never taken for "cannot
convert", never falls back to another format and leaves no staging folder."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from tcdml.cli.main import main
from tcdml.io import file_bytes
from tcdml.io.embeddings_file import save_embeddings_file
from tests.badinput.harness import expect_clean_failure
from tests.badinput.test_adapt import FAST, X, Y


@pytest.fixture
def adapter(tmp_path: Path) -> dict[str, Path]:
    out = tmp_path / "out"
    out.mkdir()
    train = save_embeddings_file(tmp_path / "train.npz", X, Y)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    assert main(["adapt", "train", str(train), "-o", str(out / "ad"), *FAST]) == 0
    return {"out": out, "ad": out / "ad", "train": train, "x": tmp_path / "x.npy", "y": tmp_path / "y.npy"}


@pytest.mark.parametrize("target", ["ad/adapter.pt", "ad/adapter.json", "labels"])
def test_adapt_apply_never_overwrites_its_inputs(adapter, capsys, target: str) -> None:
    output = adapter["y"] if target == "labels" else adapter["out"] / target
    argv = ["adapt", "apply", adapter["ad"], adapter["x"], "--labels", adapter["y"], "-o", output]
    expect_clean_failure(
        argv,
        capsys,
        watched=[adapter["out"], adapter["y"]],
        contains=["--output", "would overwrite the input"],
    )


def _disk_full_under(monkeypatch, folder: Path) -> None:
    """``os.write`` to any file under ``folder`` fails with ENOSPC (a full disk), elsewhere it works."""
    real = os.write

    def write(fd: int, data) -> int:
        with_path = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else ""
        if with_path.startswith(str(folder.resolve())):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(file_bytes.os, "write", write)


def test_a_full_disk_during_export_is_one_line_and_no_fallback(
    adapter, tmp_path, capsys, monkeypatch
) -> None:
    from tests.deploy.helpers import write_calibration

    calibration = write_calibration(tmp_path / "t.json")
    disk = tmp_path / "disk"
    disk.mkdir()
    _disk_full_under(monkeypatch, disk)
    argv = ["export", adapter["ad"], "--calibration", calibration, "-o", disk / "served"]
    expect_clean_failure(
        argv, capsys, watched=[disk], status=1, contains=[f"{disk / 'served'}/model.onnx", "No space left"]
    )
    assert not any(disk.iterdir())  # no folder, no staging left


def test_a_full_disk_during_adapt_train_is_one_line(adapter, tmp_path, capsys, monkeypatch) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    _disk_full_under(monkeypatch, disk)
    argv = ["adapt", "train", adapter["train"], "-o", disk / "ad", *FAST]
    expect_clean_failure(
        argv, capsys, watched=[disk], status=1, contains=[f"{disk / 'ad'}/adapter.pt", "No space left"]
    )
