"""``atomic_write``: all or nothing for regular files; links followed; devices and pipes written through.

Device nodes, pipes and links are made by the tests under ``tmp_path`` (the system's ``/dev`` is never
touched).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from tcdml.io.atomic import atomic_write


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".tmp"))


def make_char_device(path: Path, rdev: int) -> Path:
    """A character device node under ``tmp_path`` (needs root); skips where the system refuses."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, rdev)
        with open(path, "wb"):
            pass
    except OSError as exc:
        pytest.skip(f"cannot make or open a device node here: {exc.strerror}")
    return path


def test_regular_file_is_replaced_with_plain_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_write(target) as handle:
        handle.write("new")
    assert target.read_text() == "new" and leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_failure_inside_the_block_leaves_the_target_and_no_temporary(tmp_path: Path, error) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(type(error)), atomic_write(target) as handle:
        handle.write("half")
        raise error
    assert target.read_text() == "old" and leftovers(tmp_path) == []


def test_symlink_stays_and_its_target_is_written(tmp_path: Path) -> None:
    real = tmp_path / "real" / "data.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    with atomic_write(link) as handle:
        handle.write("new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new" and leftovers(real.parent) == [] and leftovers(tmp_path) == []


def test_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "later.json")
    with atomic_write(link) as handle:
        handle.write("x")
    assert link.is_symlink() and (tmp_path / "later.json").read_text() == "x"


def test_character_device_is_written_through_not_replaced(tmp_path: Path) -> None:
    node = make_char_device(tmp_path / "null", os.stat("/dev/null").st_rdev)
    with atomic_write(node, "wb") as handle:
        handle.write(b"x" * 100_000)
    assert stat.S_ISCHR(node.lstat().st_mode) and leftovers(tmp_path) == []


def test_full_device_reports_the_error_with_its_name(tmp_path: Path) -> None:
    node = make_char_device(tmp_path / "full", os.makedev(1, 7))  # the "disk full" device
    with pytest.raises(OSError) as info, atomic_write(node, "wb") as handle:
        handle.write(b"x" * 100_000)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(node)
    assert stat.S_ISCHR(node.lstat().st_mode) and leftovers(tmp_path) == []


def test_pipe_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    with atomic_write(fifo, "wb") as handle:
        handle.write(b"through the pipe")
    reader.join(timeout=30)
    assert received == [b"through the pipe"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and leftovers(tmp_path) == []


def test_folder_target_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as info, atomic_write(folder) as handle:
        handle.write("x")
    assert info.value.filename == str(folder) and list(folder.iterdir()) == [] and leftovers(tmp_path) == []


def test_missing_parent_folders_are_created_for_the_api(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    with atomic_write(target) as handle:
        handle.write("x")
    assert target.read_text() == "x"


def test_link_to_a_pipe_is_written_through_the_link(tmp_path: Path) -> None:
    """Like ``-o /dev/stdout`` (a link to ``/proc/self/fd/1``): the link is opened, not resolved by name."""
    fifo, link = tmp_path / "pipe", tmp_path / "stdout"
    os.mkfifo(fifo)
    link.symlink_to(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    with atomic_write(link, "wb") as handle:
        handle.write(b"via the link")
    reader.join(timeout=30)
    assert received == [b"via the link"] and link.is_symlink() and stat.S_ISFIFO(fifo.lstat().st_mode)
