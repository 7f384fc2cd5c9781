"""A command's outputs as one set: checked before the work starts, written together at the end, or not at all.

The rules, the same for every command and option:

- A FILE output (``-o x.json``, ``--per-class x.csv``, ``embed -o x.npz``) may be a new name, an existing
  regular file (replaced atomically), a symbolic link (its target is written, the link stays) or a character
  device / pipe (written through). Its folder must exist and be writable; it is never created.
- A FOLDER output (``--plot DIR``) is created when missing, but its parent must exist. A name with a figure
  suffix (``out.png``) is refused: the figures are written into the folder as ``NAME.png`` and ``NAME.svg``.
- No output may be an input of the command (a file, or an existing file inside an input folder such as an
  adapter's ``adapter.pt``; ``refuse_inputs``), and no two outputs may be the same file.

``OutputSet.check_file`` / ``check_folder`` raise ``TcdmlInputError`` (one line naming the option, the
path and the problem) before anything is computed. ``OutputSet.staging()`` then hands out temporary paths
next to each target; when its block ends without an exception every temporary is moved onto its target,
otherwise (errors, Ctrl-C, SIGTERM turned into an exception by the CLI) every temporary is removed and no
target is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tcdml.errors import TcdmlInputError
from tcdml.io.atomic import atomic_write, fsync_folder, is_write_through, resolve_target

#: Suffixes that name a figure file, not a folder (``--plot`` takes a folder).
FIGURE_SUFFIXES = frozenset({".png", ".svg", ".pdf", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff"})


def _fail(option: str, path: str | os.PathLike, problem: str) -> TcdmlInputError:
    return TcdmlInputError(f"{option} {os.fspath(path)}: {problem}")


def _stat(option: str, path: Path) -> os.stat_result | None:
    """``os.stat`` (links followed), None for a missing path; other failures become one-line errors."""
    try:
        return os.stat(path)
    except FileNotFoundError:  # also a dangling link: its target will be created
        return None
    except NotADirectoryError:
        raise _fail(option, path, "a folder on its path is a file") from None
    except OSError as exc:  # a link loop, a name too long, no permission to look
        raise _fail(option, path, exc.strerror or str(exc)) from None


def check_writable_folder(option: str, path: Path, folder: Path) -> None:
    """Refuse ``path`` unless ``folder`` exists, is a folder and a file can be created in it.

    The test creates (and removes) a probe file, so it also holds for root, read-only mounts and immutable
    folders, where permission bits say nothing.
    """
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        raise _fail(option, path, f"folder {os.fspath(folder)} does not exist (create it first)") from None
    except OSError as exc:
        raise _fail(option, path, f"folder {os.fspath(folder)}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise _fail(option, path, f"{os.fspath(folder)} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".tcdml-probe-", dir=folder)
    except OSError as exc:
        raise _fail(option, path, f"cannot write in folder {os.fspath(folder)}: {exc.strerror}") from None
    os.close(fd)
    os.remove(probe)


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """Check a FILE output before the work starts; returns the file that will be written (links followed)."""
    text = os.fspath(path)
    if not text or text.endswith(os.sep):
        raise _fail(option, text, "expected a file name")
    path = Path(path)
    target = resolve_target(path)
    info = _stat(option, target)
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise _fail(option, path, "is a folder, expected a file name")
        if stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
            if not os.access(target, os.W_OK):
                raise _fail(option, path, "permission denied")
            return target  # written through: its folder needs no write permission
        if not stat.S_ISREG(info.st_mode):
            raise _fail(option, path, "is not a regular file, a character device or a pipe")
    check_writable_folder(option, path, target.parent)
    return target


def check_folder_for_files(path: str | os.PathLike, option: str, names: Sequence[str] = ()) -> Path:
    """Check a FOLDER output that receives the files ``names`` (created if missing, its parent must exist;
    other files in it are left alone), and each of those files as a FILE output. A folder written whole, and
    replaced whole, is ``tcdml.io.output_folder.check_new_folder``'s."""
    if not os.fspath(path):
        raise _fail(option, path, "expected a folder name")
    path = Path(path)
    info = _stat(option, path)
    if info is None:
        if path.is_symlink():
            raise _fail(option, path, "is a broken symbolic link, expected a folder")
        if path.suffix.lower() in FIGURE_SUFFIXES:
            raise _fail(option, path, "expected a folder (figures are written into it as NAME.png, NAME.svg)")
        check_writable_folder(option, path, Path(os.path.realpath(path)).parent)
        return path
    if not stat.S_ISDIR(info.st_mode):
        raise _fail(option, path, "is a file, expected a folder (figures are written into it)")
    check_writable_folder(option, path, path)
    for name in names:
        check_output_file(path / name, option)
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def refuse_inputs(
    option: str, path: str | os.PathLike, target: Path, inputs: Sequence[str | os.PathLike]
) -> None:
    """Refuse an output ``target`` (``option path`` in the message) that is one of a command's ``inputs``, an
    existing file inside an input folder (an adapter's ``adapter.pt``), or a folder holding an input.

    The one rule every command's output check uses (``OutputSet``, ``tcdml.io.output_folder``): no command
    overwrites what it reads.
    """
    real = Path(os.path.realpath(target))
    for source in map(Path, inputs):
        if not os.fspath(source) or not os.path.lexists(source):
            continue
        resolved = Path(os.path.realpath(source))
        if (target.exists() and _same_file(source, target)) or (resolved in real.parents and target.exists()):
            kind = "folder" if resolved.is_dir() else "file"
            raise _fail(option, path, f"would overwrite the input {kind} {os.fspath(source)}")
        if real in resolved.parents:
            raise _fail(option, path, f"holds the input {os.fspath(source)} (choose another path)")


@dataclass
class OutputSet:
    """The outputs of one command run: check them all, compute, then write them all (see module docstring)."""

    inputs: Sequence[str | os.PathLike] = ()
    _files: dict[Path, tuple[str, Path]] = field(default_factory=dict)
    _folders: dict[Path, tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    def check_file(self, path: str | os.PathLike | None, option: str) -> Path | None:
        """Check a FILE output (None: not asked for); returns ``path`` for ``Staging.file``."""
        if path is None:
            return None
        path = Path(path)
        target = check_output_file(path, option)
        self._refuse_overlap(option, path, [target])
        self._files[path] = (option, target)
        return path

    def check_folder(self, path: str | os.PathLike | None, option: str, names: Sequence[str]) -> Path | None:
        """Check a FOLDER output and the file ``names`` that will be written into it."""
        if path is None:
            return None
        path = Path(path)
        check_folder_for_files(path, option, names)
        self._refuse_overlap(option, path, [resolve_target(path / name) for name in names])
        self._folders[path] = (option, tuple(names))
        return path

    def _refuse_overlap(self, option: str, path: Path, targets: list[Path]) -> None:
        for target in targets:
            refuse_inputs(option, path, target, self.inputs)
            for other_option, other in self._taken():
                if _same_file(other, target) and not is_write_through(target):
                    raise _fail(option, path, f"is also the output of {other_option}")

    def _taken(self) -> Iterator[tuple[str, Path]]:
        for option, target in self._files.values():
            yield option, target
        for folder, (option, names) in self._folders.items():
            for name in names:
                yield option, resolve_target(folder / name)

    @contextlib.contextmanager
    def staging(self) -> Iterator[Staging]:
        """Temporaries for every checked output; committed together when the block succeeds."""
        staging = Staging(self)
        try:
            yield staging
            with signals_held():  # Ctrl-C cannot cut the moves in half; it lands right after them
                staging.commit()
        finally:
            with signals_held():
                staging.cleanup()


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs; each is delivered (to the handler it had) when it ends.

    Python runs signal handlers in the main thread whichever thread the signal arrives on (torch's worker
    threads included), so the handlers are swapped for one that only records the signal: blocking it in the
    main thread alone would not stop a signal arriving on another thread. Outside the main thread (where
    handlers cannot be set) the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) not in (signal.SIG_IGN, None):
            previous[signum] = signal.signal(signum, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in received:
            signal.raise_signal(signum)


class Staging:
    """Temporary files and folders of an ``OutputSet``, moved onto their targets by ``commit``."""

    def __init__(self, outputs: OutputSet) -> None:
        self._outputs = outputs
        self._temporaries: list[Path] = []
        self._plan: list[tuple[Path, Path, bool]] = []  # (temporary, target, target is a folder)

    def file(self, path: Path) -> Path:
        """A temporary file to write ``path``'s content into (same file system as its target)."""
        _, target = self._outputs._files[path]
        folder = None if is_write_through(target) else target.parent  # a device's folder: system temp
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        self._temporaries.append(Path(tmp))
        self._plan.append((Path(tmp), target, False))
        return Path(tmp)

    def folder(self, path: Path) -> Path:
        """A temporary folder to write ``path``'s files into."""
        real = Path(os.path.realpath(path))
        parent = real if real.is_dir() else real.parent
        tmp = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".tmp", dir=parent))
        self._temporaries.append(tmp)
        self._plan.append((tmp, Path(path), True))
        return tmp

    def commit(self) -> None:
        """Move every temporary onto its target; if one move fails, remove what the earlier ones created."""
        created: list[Path] = []
        try:
            for tmp, target, is_folder in self._plan:
                if is_folder:
                    self._commit_folder(tmp, target, created)
                else:
                    _commit_file(tmp, target, created)
        except BaseException:
            for path in reversed(created):
                with contextlib.suppress(OSError):
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            raise

    @staticmethod
    def _commit_folder(tmp: Path, target: Path, created: list[Path]) -> None:
        if not os.path.lexists(target):  # a new folder: appears all at once, with its files
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)
            os.rename(tmp, target)
            created.append(target)
            fsync_folder(Path(os.path.realpath(target)).parent)
            return
        for item in sorted(tmp.iterdir()):
            _commit_file(item, resolve_target(target / item.name), created)

    def cleanup(self) -> None:
        """Remove whatever temporaries are left (all of them after a failure)."""
        for tmp in self._temporaries:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


def _commit_file(tmp: Path, target: Path, created: list[Path]) -> None:
    if is_write_through(target):
        with open(tmp, "rb") as source, atomic_write(target, "wb") as sink:
            shutil.copyfileobj(source, sink)
        tmp.unlink()
        return
    existed = os.path.lexists(target)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, target)
    if not existed:
        created.append(target)
    fsync_folder(target.parent)
