"""Atomic file writes: a reader (or a crash) never sees half a file, and nothing but the target changes.

- A regular (or not yet existing) target is written to a temporary file next to it, flushed and fsynced, then
  renamed over it; the folder is fsynced after the rename, so the new file survives a power cut.
- A symbolic link is followed: its final target is written atomically, the link itself stays.
- A character device or a pipe (``-o /dev/null``, ``-o >(gzip > x.gz)``) is written through: opened and
  written directly, never replaced by a regular file.
- A folder, a socket or a block device is refused with ``IsADirectoryError`` / ``OSError`` naming it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


def resolve_target(path: str | os.PathLike) -> Path:
    """The file that writing ``path`` replaces: symbolic links followed (also a dangling one).

    A link to a device or pipe is kept as it is (opened through the link): ``/dev/stdout`` points to
    ``/proc/self/fd/1``, whose "target" names no file.
    """
    path = Path(path)
    if not path.is_symlink() or is_write_through(path):
        return path
    return Path(os.path.realpath(path))


def is_write_through(path: str | os.PathLike) -> bool:
    """True when ``path`` (links followed) is a character device or a pipe: written in place."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # missing, or a link loop (reported by whoever opens it)
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def refuse_unwritable_kind(path: Path) -> None:
    """Raise ``OSError`` naming ``path`` when it exists and is neither a regular file, a device nor a pipe."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file", str(path))
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        raise OSError(errno.EINVAL, "is not a regular file, a character device or a pipe", str(path))


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a rename (or creation) inside ``folder`` durable; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on folders
            os.fsync(fd)
    finally:
        os.close(fd)


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` as its file name when it has none (a failed write names no file).

    An ``OSError`` without a file name out of the ``with`` block is taken to be a write to the handle.
    """
    if exc.filename is None and exc.errno is not None:
        return type(exc)(exc.errno, exc.strerror or str(exc), str(path))
    return exc


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator:
    """Open ``path`` for writing so that it is replaced all at once, or not at all.

    On an exception inside the block (also ``KeyboardInterrupt``), the temporary file is removed and ``path``
    is left untouched. Missing parent folders are created (the CLI refuses them up front instead). See the
    module docstring for links, devices and pipes.
    """
    target = resolve_target(path)
    refuse_unwritable_kind(target)
    if is_write_through(target):
        with _write_through(target, mode, **open_kwargs) as handle:
            yield handle
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        handle = open(tmp, mode, **open_kwargs)
        try:
            try:
                yield handle
            except OSError as exc:  # a write that failed (disk full): name the file it was for
                raise _named(exc, target) from exc
            try:
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                raise _named(exc, target) from exc
        finally:
            handle.close()
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    fsync_folder(target.parent)


@contextlib.contextmanager
def _write_through(target: Path, mode: str, **open_kwargs) -> Iterator:
    """Write straight into a device or pipe (nothing to rename); errors name the target."""
    try:
        handle = open(target, mode, **open_kwargs)
    except OSError as exc:
        raise _named(exc, target) from exc
    try:
        try:
            yield handle
        except OSError as exc:
            raise _named(exc, target) from exc
        try:
            handle.flush()
        except OSError as exc:
            raise _named(exc, target) from exc
    finally:
        with contextlib.suppress(OSError):  # a failed flush leaves data that close() fails on again
            handle.close()
