"""Output folders (an export, an adapter): checked before the work, staged in a temporary sibling, renamed
into place at the end.

- ``DIR``'s parent must exist and be writable; ``DIR`` itself must not exist, unless ``force`` and it is a
  folder that the same command wrote before (it holds ``marker``, e.g. ``tcdml-export.json``) or an empty
  one: ``--force`` never deletes a folder of other files. ``DIR`` may not be or hold an input of the command.
- Files are written into ``.DIR.<random>.tmp`` next to ``DIR``, which is renamed onto ``DIR`` once complete
  (an existing ``DIR`` is first moved aside, then removed). A failure or an interrupt removes the temporary
  folder: no ``DIR`` appears and an existing one is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from tcdml.errors import TcdmlInputError
from tcdml.io.atomic import fsync_folder
from tcdml.io.outputs import check_writable_folder, signals_held


def check_output_folder(
    out_dir: str | os.PathLike,
    *,
    force: bool,
    inputs: Sequence[str | os.PathLike],
    marker: str,
    what: str,
    option: str = "--output",
) -> Path:
    """Refuse ``out_dir`` before any work (module docstring): one ``TcdmlInputError`` line naming ``option``.

    ``marker``: the file a folder of this kind holds (``--force`` replaces only such folders, or empty ones);
    ``what``: the kind, for messages ("an export", "an adapter folder").
    """
    text = os.fspath(out_dir)
    if not text.strip() or text.strip() == ".":
        raise TcdmlInputError(f"{option} {text!r}: expected a new folder name")
    path = Path(text)
    real = Path(os.path.realpath(path))
    for source in map(Path, inputs):
        resolved = Path(os.path.realpath(source))
        if resolved == real or real in resolved.parents:
            raise TcdmlInputError(f"{option} {path}: holds the input {source} (choose another folder)")
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


@contextlib.contextmanager
def staged_folder(out_dir: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling folder to write into; renamed onto ``out_dir`` when the block succeeds."""
    target = Path(os.path.realpath(out_dir))
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        with signals_held():  # Ctrl-C cannot cut the renames in half
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
        fsync_folder(target.parent)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", suffix=".tmp", dir=target.parent))
    os.rename(target, aside)  # onto the empty folder mkdtemp made
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside, target)
        raise
    fsync_folder(target.parent)
    shutil.rmtree(aside, ignore_errors=True)
