"""The README's and docs' code blocks run, in order, in a scratch folder.

```python blocks share one namespace per file; ```bash blocks run in a shell with this Python's scripts
first on PATH. Blocks fenced as ```sh or ```text are shown, not run (install and test commands, which would
recurse into this very suite).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(python|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def code_blocks(path: Path) -> list[tuple[str, str]]:
    return FENCE.findall(path.read_text())


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_code_blocks_run(path: Path, tmp_path, monkeypatch) -> None:
    blocks = code_blocks(path)
    if path.name == "README.md":
        assert blocks, "the README must show runnable examples"
    monkeypatch.chdir(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    namespace: dict = {"__name__": "__docs__"}
    for index, (language, code) in enumerate(blocks):
        if language == "python":
            exec(compile(code, f"{path.name}[block {index}]", "exec"), namespace)
        else:
            run = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", code], env=env, capture_output=True, text=True
            )
            assert run.returncode == 0, f"{path.name} block {index} failed:\n{run.stderr}"


def test_definitions_are_cited_from_docs_spec_md() -> None:
    """ "SPEC" alone names a file that is not in the repository: every reference points at docs/spec.md."""
    bare = re.compile(r"\bSPEC\b(?!\.md)")
    files = [*DOCS, *sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "tests").rglob("*.py"))]
    found = [
        f"{path.name}:{n}"
        for path in files
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if bare.search(line) and path.name != "test_docs.py"
    ]
    assert not found, f"bare SPEC references (use docs/spec.md): {found[:5]}"
