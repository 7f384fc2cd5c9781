# ruff: noqa: E501  (the table of cases keeps one row per line)
"""Output-side bad input of ``evaluate``, ``calibrate`` and ``embed``: checked before the work, one line.

Each row of ``CASES`` builds its state in ``tmp_path`` (``{t}`` in argv is that folder, the embedding file is
``{t}/e.npz``) and asserts the harness's contract with the whole folder watched: nothing created, changed or
removed, no temporaries left. Late failures (a figure that cannot be written, Ctrl-C while writing) are rows
too: earlier outputs of the same run must not appear. Interrupts of the real CLI run in a subprocess.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tcdml.cli.main import main
from tcdml.io import save_embeddings_file
from tests.badinput.harness import expect_clean_failure, snapshot
from tests.helpers import clustered_embeddings

Setup = Callable[[Path, list], None]


@dataclass(frozen=True)
class Case:
    id: str
    argv: str  # split on spaces after formatting; "{t}" is tmp_path
    contains: tuple[str, ...]
    setup: Setup = lambda t, fin: None
    fails_in: str = ""  # "module.function" replaced by a function raising ``raises``
    raises: BaseException | int | None = None  # an int: that signal is sent to this process instead
    status: int = 2
    sep: str = field(default=" ")


def mkdir(*names: str) -> Setup:
    return lambda t, fin: [(t / name).mkdir(parents=True) for name in names] and None


def touch(*names: str) -> Setup:
    return lambda t, fin: [(t / name).write_text("keep me\n") for name in names] and None


def link(name: str, to: str) -> Setup:
    return lambda t, fin: (t / name).symlink_to(t / to)


def both(*setups: Setup) -> Setup:
    return lambda t, fin: [setup(t, fin) for setup in setups] and None


def unix_socket(name: str) -> Setup:
    def setup(t: Path, fin: list) -> None:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(t / name))
        fin.append(sock.close)

    return setup


def _writable(folder: Path) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.remove(probe)
    return True


def read_only(name: str) -> Setup:
    """A folder nobody can write in: mode 0555, and for root (who ignores modes) the immutable attribute."""

    def setup(t: Path, fin: list) -> None:
        folder = t / name
        folder.mkdir()
        folder.chmod(0o555)
        fin.append(lambda: folder.chmod(0o755))
        chattr = ["chattr", "+i", str(folder)]
        if _writable(folder) and subprocess.run(chattr, capture_output=True).returncode:
            pytest.skip("root without chattr +i: no way to make a read-only folder here")
        fin.append(lambda: subprocess.run(["chattr", "-i", str(folder)], capture_output=True))
        if _writable(folder):
            pytest.skip("the folder stays writable (file system without immutable folders)")

    return setup


EVAL, CAL = "evaluate {t}/e.npz", "calibrate {t}/e.npz --target-far 1e-2"
EMBED = "embed {t}/model.ckpt --data {t}"
NOSPACE = OSError(28, "No space left on device", "plots")
# fmt: off
CASES = [
    # evaluate --per-class FILE
    Case("eval-per-class-is-folder", EVAL + " --per-class {t}/out", ("--per-class", "is a folder"), mkdir("out")),
    Case("eval-per-class-missing-folder", EVAL + " --per-class {t}/no/c.csv", ("does not exist",)),
    Case("eval-per-class-missing-nested", EVAL + " --per-class {t}/a/b/c/c.csv", ("folder", "does not exist")),
    Case("eval-per-class-under-a-file", EVAL + " --per-class {t}/f.txt/c.csv", ("is a file",), touch("f.txt")),
    Case("eval-per-class-is-input", EVAL + " --per-class {t}/e.npz", ("would overwrite the input",)),
    Case("eval-per-class-link-to-input", EVAL + " --per-class {t}/l.csv", ("input",), link("l.csv", "e.npz")),
    Case("eval-per-class-read-only", EVAL + " --per-class {t}/ro/c.csv", ("cannot write",), read_only("ro")),
    Case("eval-per-class-socket", EVAL + " --per-class {t}/s", ("not a regular file",), unix_socket("s")),
    Case("eval-per-class-link-loop", EVAL + " --per-class {t}/x", ("symbolic links",), both(link("x", "y"), link("y", "x"))),
    Case("eval-per-class-link-to-folder", EVAL + " --per-class {t}/l", ("is a folder",), both(mkdir("d"), link("l", "d"))),
    Case("eval-per-class-link-missing-dir", EVAL + " --per-class {t}/l", ("does not exist",), link("l", "no/c.csv")),
    Case("eval-per-class-newline-name", EVAL + " --per-class {t}/a\nb/c.csv", ("a\\nb",), sep="|"),
    # evaluate --plot FOLDER
    Case("eval-plot-png-name", EVAL + " --plot {t}/out.png", ("--plot", "expected a folder")),
    Case("eval-plot-svg-name", EVAL + " --plot {t}/fig.SVG", ("expected a folder",)),
    Case("eval-plot-pdf-name", EVAL + " --plot {t}/fig.pdf", ("expected a folder",)),
    Case("eval-plot-is-a-file", EVAL + " --plot {t}/c.csv", ("is a file, expected a folder",), touch("c.csv")),
    Case("eval-plot-parent-missing", EVAL + " --plot {t}/no/figs", ("folder", "does not exist")),
    Case("eval-plot-figure-is-folder", EVAL + " --plot {t}/f", ("utility_curves.png", "is a folder"), mkdir("f/utility_curves.png")),
    Case("eval-plot-broken-link", EVAL + " --plot {t}/l", ("broken symbolic link",), link("l", "gone")),
    Case("eval-plot-read-only", EVAL + " --plot {t}/ro", ("cannot write",), read_only("ro")),
    Case("eval-plot-in-read-only", EVAL + " --plot {t}/ro/figs", ("cannot write",), read_only("ro")),
    Case("eval-per-class-is-figure", EVAL + " --per-class {t}/f/utility_curves.png --plot {t}/f", ("also the output",), mkdir("f")),
    # evaluate: a later output step fails or is interrupted -> the earlier output is not left behind
    Case("eval-plot-fails-late", EVAL + " --per-class {t}/c.csv --plot {t}/f", ("No space left",), fails_in="tcdml.metrics.plots.plot_utility_curves", raises=NOSPACE, status=1),
    Case("eval-ctrl-c-while-plotting", EVAL + " --per-class {t}/c.csv --plot {t}/f", ("interrupted",), fails_in="tcdml.metrics.plots.plot_utility_curves", raises=KeyboardInterrupt(), status=130),
    Case("eval-ctrl-c-while-writing-csv", EVAL + " --per-class {t}/c.csv --plot {t}/f", ("interrupted",), fails_in="tcdml.metrics.result.ClassTable.write_csv", raises=KeyboardInterrupt(), status=130),
    Case("eval-sigterm-while-plotting", EVAL + " --per-class {t}/c.csv --plot {t}/f", ("interrupted (SIGTERM)",), fails_in="tcdml.metrics.plots.plot_utility_curves", raises=signal.SIGTERM, status=143),
    Case("eval-fails-late-keeps-old-csv", EVAL + " --per-class {t}/c.csv --plot {t}/f", ("No space left",), touch("c.csv"), fails_in="tcdml.metrics.plots.plot_utility_curves", raises=NOSPACE, status=1),
    # calibrate -o FILE, --plot FOLDER
    Case("cal-output-is-folder", CAL + " -o {t}/out", ("--output", "is a folder"), mkdir("out")),
    Case("cal-output-is-cwd", CAL + " -o .", ("is a folder",)),
    Case("cal-output-missing-folder", CAL + " -o {t}/no/r.json", ("does not exist",)),
    Case("cal-output-is-input", CAL + " -o {t}/e.npz", ("would overwrite the input",)),
    Case("cal-output-read-only", CAL + " -o {t}/ro/r.json", ("cannot write",), read_only("ro")),
    Case("cal-output-under-a-file", CAL + " -o {t}/f.txt/r.json", ("is a file",), touch("f.txt")),
    Case("cal-output-newline-name", CAL + " -o {t}/x\ny/r.json", ("x\\ny",), sep="|"),
    Case("cal-output-dangling-link", CAL + " -o {t}/l", ("does not exist",), link("l", "no/r.json")),
    Case("cal-plot-png-name", CAL + " --plot {t}/rates.png", ("expected a folder",)),
    Case("cal-plot-is-a-file", CAL + " --plot {t}/r.json", ("is a file",), touch("r.json")),
    Case("cal-output-is-figure", CAL + " -o {t}/f/class_far_frr.svg --plot {t}/f", ("also the output",), mkdir("f")),
    Case("cal-plot-fails-late", CAL + " -o {t}/r.json --plot {t}/f", ("No space left",), fails_in="tcdml.calibration.plots.plot_class_rates", raises=NOSPACE, status=1),
    Case("cal-ctrl-c-while-plotting", CAL + " -o {t}/r.json --plot {t}/f", ("interrupted",), fails_in="tcdml.calibration.plots.plot_class_rates", raises=KeyboardInterrupt(), status=130),
    Case("cal-sigint-while-writing-json", CAL + " -o {t}/r.json --plot {t}/f", ("interrupted (SIGINT)",), fails_in="tcdml.io.json_file.write_json", raises=signal.SIGINT, status=130),
    Case("cal-sigterm-while-plotting-keeps-old", CAL + " -o {t}/r.json --plot {t}/f", ("interrupted (SIGTERM)",), both(touch("r.json"), mkdir("f")), fails_in="tcdml.calibration.plots.plot_class_rates", raises=signal.SIGTERM, status=143),
    # embed -o FILE: checked before the checkpoint is read (model.ckpt here is not even a checkpoint)
    Case("embed-output-is-folder", EMBED + " -o {t}/out", ("--output", "is a folder"), mkdir("out")),
    Case("embed-output-missing-folder", EMBED + " -o {t}/no/x.npz", ("does not exist",)),
    Case("embed-output-is-checkpoint", EMBED + " -o {t}/model.ckpt", ("would overwrite the input",)),
    Case("embed-output-read-only", EMBED + " -o {t}/ro/x.npz", ("cannot write",), read_only("ro")),
    Case("embed-output-newline-name", EMBED + " -o {t}/n\nn/x.npz", ("n\\nn",), sep="|"),
]
# fmt: on


@pytest.fixture
def state(tmp_path: Path) -> Path:
    x, y = clustered_embeddings([20] * 8, dim=16, seed=1)
    save_embeddings_file(tmp_path / "e.npz", x, y)
    (tmp_path / "model.ckpt").write_bytes(b"not a checkpoint")
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_output_bad_input(case: Case, state: Path, capsys, monkeypatch, request) -> None:
    finalisers: list[Callable] = []
    request.addfinalizer(lambda: [final() for final in reversed(finalisers)])
    case.setup(state, finalisers)
    if case.fails_in:

        def failing(*args, **kwargs):
            if isinstance(case.raises, BaseException):
                raise case.raises
            os.kill(os.getpid(), case.raises)  # main()'s handler turns it into an exception here
            raise AssertionError("the signal did not interrupt the command")

        monkeypatch.setattr(case.fails_in, failing)
    argv = case.argv.replace(" ", "|").split("|") if case.sep == "|" else case.argv.split(" ")
    argv = [arg.format(t=state) for arg in argv]
    expect_clean_failure(argv, capsys, watched=[state], contains=case.contains, status=case.status)


def test_case_table_is_large_enough() -> None:
    assert len({case.id for case in CASES}) == len(CASES) >= 25


# --- Good outputs that used to be destroyed: devices, pipes and links are written through / followed ---


def test_output_to_a_device_node_keeps_the_device(state: Path, capsys) -> None:
    node = state / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.stat("/dev/null").st_rdev)
        node.open("wb").close()
    except OSError as exc:
        pytest.skip(f"cannot make or open a device node here: {exc.strerror}")
    argv = ["calibrate", state / "e.npz", "--target-far", "1e-2", "-o", node, "--format", "json"]
    assert main([str(arg) for arg in argv]) == 0
    assert stat.S_ISCHR(node.lstat().st_mode)
    assert not [path.name for path in state.iterdir() if path.name.endswith(".tmp")]


def test_outputs_through_links_keep_the_links(state: Path, capsys) -> None:
    (state / "real").mkdir()
    (state / "c.csv").symlink_to(state / "real" / "classes.csv")  # dangling: its target is created
    (state / "figs").symlink_to(state / "real")
    argv = ["evaluate", state / "e.npz", "--per-class", state / "c.csv", "--plot", state / "figs"]
    assert main([str(arg) for arg in argv]) == 0
    assert (state / "c.csv").is_symlink() and (state / "figs").is_symlink()
    names = sorted(path.name for path in (state / "real").iterdir())
    assert names == ["classes.csv", "utility_curves.png", "utility_curves.svg"]


def test_disk_full_device_is_one_line_and_keeps_the_device(state: Path, capsys) -> None:
    node = state / "full"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        node.open("wb").close()
    except OSError as exc:
        pytest.skip(f"cannot make or open a device node here: {exc.strerror}")
    argv = ["calibrate", state / "e.npz", "--target-far", "1e-2", "-o", node]
    line = expect_clean_failure(argv, capsys, watched=[], contains=(str(node), "No space left"), status=1)
    assert line and stat.S_ISCHR(node.lstat().st_mode)


# --- Interrupts of the real CLI: exit 130 (SIGINT) / 143 (SIGTERM), one line, no output, no temporaries ---


@pytest.fixture(scope="module")
def large_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("large") / "large.npz"
    x = rng.normal(size=(20_000, 64)).astype(np.float32)
    return save_embeddings_file(path, x, rng.integers(0, 200, size=20_000))


@pytest.mark.parametrize(
    ("signum", "status", "command"),
    [
        (signal.SIGINT, 130, ["evaluate", "--per-class", "{o}/c.csv", "--plot", "{o}/figs"]),
        (signal.SIGTERM, 143, ["evaluate", "--per-class", "{o}/c.csv", "--plot", "{o}/figs"]),
        (signal.SIGINT, 130, ["calibrate", "--target-far", "1e-3", "-o", "{o}/r.json", "--plot", "{o}/figs"]),
        (signal.SIGTERM, 143, ["calibrate", "--target-far", "1e-3", "-o", "{o}/r.json", "--plot", "{o}/f"]),
    ],
    ids=["evaluate-sigint", "evaluate-sigterm", "calibrate-sigint", "calibrate-sigterm"],
)
def test_interrupt_exits_with_one_line_and_leaves_nothing(
    large_file: Path, tmp_path: Path, signum: int, status: int, command: list[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier result\n")
    before = snapshot([out, large_file.parent])
    name, *options = (arg.format(o=out) for arg in command)
    argv = [sys.executable, "-m", "tcdml.cli.main", name, str(large_file), *options, "--progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    seen = b""
    with contextlib.ExitStack() as stack:
        stack.callback(process.kill)
        while not re.search(rb"\| *[1-9]\d*/20000", seen):  # the pass has started (the bar shows progress)
            chunk = os.read(process.stderr.fileno(), 4096)
            assert chunk, f"exited before the pass started: {seen!r}"
            seen += chunk
        process.send_signal(signum)
        stdout, rest = process.communicate(timeout=120)
    lines = (seen + rest).decode().replace("\r", "\n").splitlines()
    errors = [line for line in lines if line.startswith("tcdml: error:")]
    assert process.returncode == status, (seen + rest)[-500:]
    assert errors == [lines[-1]] and "interrupted" in errors[0], lines[-3:]
    assert not any("Traceback" in line for line in lines) and stdout == b""
    assert snapshot([out, large_file.parent]) == before, "an output or a temporary file was left"
