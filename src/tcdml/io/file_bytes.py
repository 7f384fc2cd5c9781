"""Read a file a user hands in once, bounded, as bytes: what is checked (hashed, parsed) is what is used.

Two kinds of files:

- a MEMBER of a folder tcdml wrote (an export's manifest and model, an adapter's files): opened relative to
  the folder without following a symbolic link (``O_NOFOLLOW``) and without waiting on a pipe
  (``O_NONBLOCK``), then ``fstat``-ed on the open descriptor: anything but a regular file (a link that
  leaves the folder, a FIFO, a device) is refused before one byte is read, so a FIFO never hangs;
- a FILE named on the command line (``--calibration t.json``, ``--calibration <(...)``): links followed and
  pipes accepted (read to their end, once), folders, sockets and devices other than pipes refused.

Either way at most ``limit`` bytes are read: a larger file is refused by its size (regular files, before
reading) or when the read passes the limit (pipes). Every problem is one ``TcdmlInputError`` line naming
the file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from tcdml.errors import TcdmlInputError

_CHUNK = 1 << 20
_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def describe_size(count: int) -> str:
    """``count`` bytes in words: ``"3.2 MB"``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def kind_of(mode: int) -> str:
    """What a file of ``st_mode`` is, in words (``"a pipe (FIFO)"``)."""
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _too_large(path: Path, size: int, limit: int, what: str) -> TcdmlInputError:
    return TcdmlInputError(
        f"{path}: {describe_size(size)}, more than the {describe_size(limit)} a {what} may have"
    )


def open_member(folder_fd: int, name: str, path: Path, missing: str) -> tuple[int, os.stat_result]:
    """The descriptor and ``fstat`` of the regular file ``name`` in the open folder ``folder_fd``.

    ``path`` names it in errors; ``missing`` says what a missing file means. A link, FIFO, device or folder
    is refused (module docstring); the caller closes the descriptor.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags, dir_fd=folder_fd)
    except FileNotFoundError:
        raise TcdmlInputError(f"{path}: {missing}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW on a symbolic link
            raise TcdmlInputError(
                f"{path}: is a symbolic link, expected a regular file inside the folder"
            ) from None
        raise TcdmlInputError(f"{path}: cannot open ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise TcdmlInputError(f"{path}: is {kind_of(info.st_mode)}, expected a regular file")
    return fd, info


def open_folder(folder: str | os.PathLike) -> int:
    """A descriptor of the folder ``folder`` (links followed), for ``open_member``; ``TcdmlInputError``
    naming it when it is missing or not a folder."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(folder, flags)
    except FileNotFoundError:
        raise TcdmlInputError(f"{folder}: no such folder") from None
    except NotADirectoryError:
        raise TcdmlInputError(f"{folder}: is not a folder") from None
    except OSError as exc:
        raise TcdmlInputError(f"{folder}: cannot open ({exc.strerror or exc})") from None


def read_descriptor(fd: int, path: Path, limit: int, what: str, size: int | None = None) -> bytes:
    """All bytes of the open ``fd`` (its size ``size`` when known), at most ``limit``; closes ``fd``."""
    try:
        if size is not None and size > limit:
            raise _too_large(path, size, limit, what)
        parts: list[bytes] = []
        total = 0
        while True:
            try:
                block = os.read(fd, _CHUNK)
            except BlockingIOError:  # an O_NONBLOCK pipe with nothing to read: not a file to trust
                raise TcdmlInputError(f"{path}: nothing to read (a pipe without a writer?)") from None
            except OSError as exc:
                raise TcdmlInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
            if not block:
                return b"".join(parts)
            total += len(block)
            if total > limit:
                raise _too_large(path, total, limit, what)
            parts.append(block)
    finally:
        os.close(fd)


def read_member(folder: str | os.PathLike, name: str, limit: int, what: str, missing: str) -> bytes:
    """The bytes of the regular file ``name`` inside ``folder`` (no link, FIFO or device), at most
    ``limit``."""
    path = Path(folder) / name
    folder_fd = open_folder(folder)
    try:
        fd, info = open_member(folder_fd, name, path, missing)
    finally:
        os.close(folder_fd)
    return read_descriptor(fd, path, limit, what, info.st_size)


def read_user_file(path: str | os.PathLike, limit: int, what: str, missing: str) -> bytes:
    """The bytes of a file named by the user (links followed, a pipe read once to its end), at most
    ``limit``; a folder, socket or device other than a pipe is refused."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise TcdmlInputError(f"{path}: {missing}") from None
    except IsADirectoryError:
        raise TcdmlInputError(f"{path}: is a folder, expected a {what}") from None
    except OSError as exc:
        raise TcdmlInputError(f"{path}: cannot open ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        os.close(fd)
        raise TcdmlInputError(f"{path}: is {kind_of(info.st_mode)}, expected a {what}")
    return read_descriptor(fd, path, limit, what, info.st_size if stat.S_ISREG(info.st_mode) else None)


def write_new_file(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to the new file ``path`` (in a staging folder) and fsync it.

    Written with plain system calls, so a full disk (``ENOSPC``) or any other failure is an ``OSError``
    naming ``path``, never a reason for a caller to try something else, and never left to a C++ writer that
    aborts the process.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view[:_CHUNK]) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), path) from None
