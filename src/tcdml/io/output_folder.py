"""Output folders (an export, an adapter): checked before the work, staged in a temporary sibling, renamed
into place at the end.

- ``DIR``'s parent must exist and be writable; ``DIR`` itself must not exist, unless ``force`` and it is a
  folder that the same command wrote before (it holds ``marker``, e.g. ``tcdml-export.json``) or an empty
  one: ``--force`` never deletes a folder of other files. ``DIR`` may not be or hold an input of the command.
- Files are written into ``.DIR.stage-PID.<random>.tmp`` next to ``DIR``, which takes ``DIR``'s place once
  complete: an existing ``DIR`` is swapped with it in one step (Linux ``renameat2(RENAME_EXCHANGE)``), or,
  where the file system cannot, moved aside to ``.DIR.old-PID.<random>.tmp`` first; the old folder is then
  removed. A failure or an interrupt removes the temporary folder: no ``DIR`` appears and an existing one is
  left as it was. SIGINT / SIGTERM wait until the swap is over (``signals_held``).
- A run killed mid-way (SIGKILL, power cut) is repaired by the next run on the same ``DIR``: a previous
  folder left aside is renamed back, staging folders of dead runs are removed (``recover_leftovers``, one
  warning line each); ``load_matcher`` names the aside copy of a missing export folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from tcdml.errors import TcdmlInputError
from tcdml.io.atomic import fsync_folder
from tcdml.io.outputs import check_writable_folder, refuse_inputs, signals_held


def check_new_folder(
    out_dir: str | os.PathLike,
    *,
    force: bool,
    inputs: Sequence[str | os.PathLike],
    marker: str,
    what: str,
    option: str = "--output",
) -> Path:
    """Check a folder that a command writes whole (an export, an adapter) before any work: new, or, with
    ``force``, a folder of its own kind to replace (module docstring); else one ``TcdmlInputError`` line
    naming ``option``. A folder that only receives some files is ``tcdml.io.outputs.check_folder_for_files``'.

    ``marker``: the file a folder of this kind holds (``--force`` replaces only such folders, or empty ones);
    ``what``: the kind, for messages ("an export", "an adapter folder").
    """
    text = os.fspath(out_dir)
    if not text.strip() or text.strip() == ".":
        raise TcdmlInputError(f"{option} {text!r}: expected a new folder name")
    path = Path(text)
    for line in recover_leftovers(path):  # a killed --force run: the previous folder comes back first
        warnings.warn(line, stacklevel=2)
    real = Path(os.path.realpath(path))
    for source in map(Path, inputs):
        if Path(os.path.realpath(source)) == real:
            raise TcdmlInputError(f"{option} {path}: is the input {source} (choose another folder)")
    refuse_inputs(option, path, path, inputs)
    if os.path.lexists(path):
        if not force:
            raise TcdmlInputError(f"{option} {path}: already exists (use --force to replace it)")
        if path.is_symlink() or not path.is_dir():
            raise TcdmlInputError(
                f"{option} {path}: exists and is not a folder (--force replaces folders only)"
            )
        if not (path / marker).is_file() and any(path.iterdir()):
            raise TcdmlInputError(
                f"{option} {path}: is a folder without {marker}, not {what} (--force will not replace it)"
            )
    check_writable_folder(option, path, real.parent)
    return path


#: renameat2's flag that swaps two paths in one step (Linux >= 3.15, most local file systems).
RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` atomically (Linux ``renameat2(RENAME_EXCHANGE)``, via libc); False
    where the system or file system cannot (then nothing was done), ``OSError`` for any other failure."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # not Linux, or a libc without renameat2 (glibc < 2.28)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    done = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(b))


def _prefix(target: Path, role: str) -> str:
    """Hidden sibling names of ``target``: ``.NAME.stage-PID.xxxx.tmp`` (being written) and
    ``.NAME.old-PID.xxxx.tmp`` (the previous folder, moved aside by the two-rename fallback)."""
    return f".{target.name}.{role}-{os.getpid()}."


def _leftovers(target: Path) -> list[tuple[Path, str, int | None]]:
    """Hidden siblings of ``target`` left by tcdml runs: (path, role ``stage`` / ``old``, pid or None)."""
    found = []
    if not target.parent.is_dir():
        return found
    for path in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        match = _LEFTOVER.fullmatch(path.name[len(target.name) + 2 :])
        if match and path.is_dir() and not path.is_symlink():
            pid = match.group("pid")
            found.append((path, match.group("role"), int(pid) if pid else None))
    return sorted(found)


_LEFTOVER = re.compile(r"(?P<role>stage|old)(?:-(?P<pid>\d+))?\.[^/]*\.tmp")


def _alive(pid: int | None) -> bool:
    """Whether the run ``pid`` may still be going (unknown pids are taken to be)."""
    if pid is None:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def aside_note(folder: str | os.PathLike) -> str:
    """For a missing ``folder``: where an interrupted ``--force`` left the previous one, in words ('' when
    nowhere)."""
    target = Path(os.path.abspath(folder))
    olds = [path for path, role, _ in _leftovers(target) if role == "old"]
    if os.path.lexists(target) or not olds:
        return ""
    return f" (an interrupted --force run left the previous folder at {olds[-1]}: rename it back)"


def recover_leftovers(out_dir: str | os.PathLike) -> list[str]:
    """Tidy what killed runs left next to ``out_dir``; returns what was done, one line each.

    The previous folder a run moved aside is renamed back when ``out_dir`` is missing (the run died between
    its two renames), removed when ``out_dir`` exists (it died after them); staging folders of runs that are
    no longer running are removed. Folders of runs still going are left alone.
    """
    target = Path(os.path.realpath(out_dir))
    done = []
    for path, role, pid in _leftovers(target):
        if _alive(pid):
            continue
        if role == "old" and not os.path.lexists(target):
            os.rename(path, target)
            done.append(f"{target}: restored from {path.name}, left by an interrupted --force run")
        else:
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"{target.parent / path.name}: removed (left by a run that was killed)")
    return done


@contextlib.contextmanager
def staged_folder(out_dir: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling folder to write into; put in place of ``out_dir`` when the block succeeds.

    An existing ``out_dir`` is swapped with the new folder in one step (``exchange``), else, where the system
    cannot, moved aside and replaced by two renames (a run killed between them is repaired by the next one,
    ``recover_leftovers``); the old folder is then removed. Signals wait until the swap is over.
    """
    target = Path(os.path.realpath(out_dir))
    for line in recover_leftovers(target):
        warnings.warn(line, stacklevel=3)
    staging = Path(tempfile.mkdtemp(prefix=_prefix(target, "stage"), suffix=".tmp", dir=target.parent))
    try:
        try:
            yield staging
        except OSError as exc:  # a full disk while writing: name the file as it would have been called
            name = os.fsdecode(exc.filename) if exc.filename is not None else ""
            if name.startswith(os.fspath(staging) + os.sep):
                renamed = os.fspath(out_dir) + name[len(os.fspath(staging)) :]
                raise OSError(exc.errno, exc.strerror, renamed) from None
            raise
        with signals_held():  # Ctrl-C (also one a torch thread receives) waits until the swap is over
            _commit(staging, target)
    finally:
        with signals_held():
            shutil.rmtree(staging, ignore_errors=True)


def _commit(staging: Path, target: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    if not os.path.lexists(target):
        os.rename(staging, target)
    elif not exchange(staging, target):  # staging now holds the old folder, removed by the caller
        aside = Path(tempfile.mkdtemp(prefix=_prefix(target, "old"), suffix=".tmp", dir=target.parent))
        os.rename(target, aside)  # onto the empty folder mkdtemp made
        try:
            os.rename(staging, target)
        except BaseException:
            os.rename(aside, target)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    fsync_folder(target.parent)
