"""``--force`` never loses the old folder (issue 23, part 4): the swap is one ``renameat2(RENAME_EXCHANGE)``;
where that is unavailable, a signal between the two renames waits (also one a worker thread receives) and a
run killed between them is repaired by the next one; stale staging folders of dead runs are removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tcdml.errors import TcdmlInputError
from tcdml.io import output_folder
from tcdml.io.output_folder import check_new_folder, exchange, recover_leftovers, staged_folder


def _old(folder: Path) -> Path:
    folder.mkdir()
    (folder / "marker.json").write_text("old")
    return folder


def _write_new(target: Path) -> None:
    with staged_folder(target) as staging:
        (staging / "marker.json").write_text("new")


def test_force_swaps_in_one_step_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    a, b = _old(tmp_path / "a"), tmp_path / "b"
    b.mkdir()
    assert exchange(a, b) and (b / "marker.json").read_text() == "old" and not any(a.iterdir())
    calls = []
    monkeypatch.setattr(output_folder.os, "rename", lambda *args: calls.append(args))  # must not be needed
    target = tmp_path / "target"
    target.mkdir()
    (target / "marker.json").write_text("old")
    _write_new(target)
    assert (target / "marker.json").read_text() == "new" and calls == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "b", "target"]


class _SignalBetweenRenames:
    """``os.rename`` that, right after moving the old folder aside, sends SIGINT to a worker thread (as a
    Ctrl-C reaches a process whose torch threads are running) and returns once the signal has arrived: the
    C-level handler runs on the worker thread whenever the kernel schedules it, which on a busy machine can be
    after the swap is over; its write to the wakeup fd says it ran."""

    def __init__(self) -> None:
        self.real = os.rename
        self.stop = threading.Event()
        self.worker = threading.Thread(target=self.stop.wait, daemon=True)
        self.worker.start()
        self.read_end, self.write_end = os.pipe()
        os.set_blocking(self.write_end, False)
        self.previous_fd = signal.set_wakeup_fd(self.write_end)

    def __call__(self, source, target) -> None:
        self.real(source, target)
        if ".old" in os.fspath(target):
            signal.pthread_kill(self.worker.ident, signal.SIGINT)
            assert os.read(self.read_end, 1) == bytes([signal.SIGINT])  # the signal has been received

    def close(self) -> None:
        self.stop.set()
        signal.set_wakeup_fd(self.previous_fd)
        os.close(self.read_end)
        os.close(self.write_end)


def test_a_signal_between_the_two_renames_waits_until_the_swap_is_over(tmp_path: Path, monkeypatch) -> None:
    target = _old(tmp_path / "target")
    monkeypatch.setattr(output_folder, "exchange", lambda a, b: False, raising=False)  # no swap here
    renamer = _SignalBetweenRenames()
    monkeypatch.setattr(output_folder.os, "rename", renamer)
    try:
        with pytest.raises(KeyboardInterrupt):  # delivered once the new folder is in place
            _write_new(target)
    finally:
        renamer.close()
    assert (target / "marker.json").read_text() == "new"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["target"]


KILLED_BETWEEN_RENAMES = """
import os, sys
from pathlib import Path
from tcdml.io import output_folder
output_folder.exchange = lambda a, b: False
real = os.rename
def rename(source, target):
    real(source, target)
    if ".old-" in os.fspath(target):
        os._exit(9)  # SIGKILL-like: no cleanup runs
output_folder.os.rename = rename
with output_folder.staged_folder(Path(sys.argv[1])) as staging:
    (staging / "tcdml-export.json").write_text("new")
"""


def test_a_run_killed_between_the_renames_is_repaired_by_the_next(tmp_path: Path) -> None:
    from tcdml.deploy import load_matcher

    target = tmp_path / "served"
    target.mkdir()
    (target / "tcdml-export.json").write_text("old")
    done = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(target)], env=os.environ)
    assert done.returncode == 9 and not target.exists()
    aside = [path for path in tmp_path.iterdir() if ".old-" in path.name]
    assert len(aside) == 1 and (aside[0] / "tcdml-export.json").read_text() == "old"
    with pytest.raises(TcdmlInputError, match=f"left the previous folder at {aside[0]}"):
        load_matcher(target)  # named, not changed, by the reader
    with pytest.warns(UserWarning) as caught:
        check_new_folder(target, force=True, inputs=[], marker="tcdml-export.json", what="an export")
    notes = sorted((str(item.message) for item in caught), key=lambda note: "removed" in note)
    assert "restored from .served.old-" in notes[0] and "removed (left by a run that was killed)" in notes[1]
    assert (target / "tcdml-export.json").read_text() == "old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["served"]


def test_stale_staging_folders_of_dead_runs_are_removed_live_ones_kept(tmp_path: Path) -> None:
    target = _old(tmp_path / "ad")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".ad.stage-{pid}.abc123.tmp"
    live = tmp_path / f".ad.stage-{os.getpid()}.def456.tmp"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "half.bin").write_bytes(b"x")
    assert recover_leftovers(target) == [f"{stale}: removed (left by a run that was killed)"]
    assert not stale.exists() and live.exists()
