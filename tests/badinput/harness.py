"""The bad-input contract, checked the same way for every case of the suite under ``tests/badinput/``.

A case runs the CLI in this process (``tcdml.cli.main.main``) and asserts:

- a non-zero exit status (2 for bad input, 130 for an interrupt);
- exactly one line on stderr, starting ``tcdml: error:`` (no traceback, no log lines);
- nothing created, changed or removed under the watched output paths (files and folders, recursively).

An exception that escapes ``main`` fails the test by itself: that is the traceback a user would have seen.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from tcdml.cli.main import main


def snapshot(paths: Iterable[str | os.PathLike]) -> dict[str, tuple]:
    """What lies at and under each path: type, mode, size, content hash (links: their target)."""
    seen: dict[str, tuple] = {}
    for root in map(Path, paths):
        stack = [root]
        while stack:
            path = stack.pop()
            try:
                info = path.lstat()
            except FileNotFoundError:
                seen[str(path)] = ("absent",)
                continue
            if stat.S_ISLNK(info.st_mode):
                seen[str(path)] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                seen[str(path)] = ("dir", stat.S_IMODE(info.st_mode))
                stack.extend(sorted(path.iterdir()))
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                seen[str(path)] = ("file", stat.S_IMODE(info.st_mode), info.st_size, digest)
            else:
                seen[str(path)] = ("special", stat.S_IFMT(info.st_mode))
    return seen


def expect_clean_failure(
    argv: Sequence[str],
    capsys: pytest.CaptureFixture[str],
    *,
    watched: Iterable[str | os.PathLike] = (),
    contains: str | Sequence[str] = (),
    status: int = 2,
) -> str:
    """Run ``tcdml argv`` and assert the bad-input contract; returns the error line.

    ``contains``: text (or texts) the error line must include, e.g. the file or the dotted key it names.
    """
    watched = list(watched)
    before = snapshot(watched)
    capsys.readouterr()  # drop what earlier steps of the test printed
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == status, f"exit status {code}, expected {status}; stderr: {captured.err!r}"
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}: {captured.err!r}"
    assert lines[0].startswith("tcdml: error: "), lines[0]
    assert "Traceback" not in captured.err
    for text in [contains] if isinstance(contains, str) else contains:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    assert snapshot(watched) == before, "an output path was created, changed or removed"
    return lines[0]
