"""``tcdml evaluate`` and ``tcdml calibrate`` (SPEC interface), and the ``main`` entry point."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tcdml.cli.output import print_json, print_table
from tcdml.errors import TcdmlInputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Threshold-consistent deep metric learning: measure, calibrate, ship one threshold.",
)


class OutputFormat(str, Enum):
    json = "json"
    table = "table"


class Mode(str, Enum):
    histogram = "histogram"
    exact = "exact"


class KnnBackend(str, Enum):
    torch = "torch"
    faiss = "faiss"


EmbeddingsPath = Annotated[Path, typer.Argument(help="Embedding file (.npz with 'embeddings' and 'labels').")]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="json: one JSON object on stdout.")]
ModeOption = Annotated[Mode, typer.Option(help="histogram: one bounded-memory pass; exact: brute force.")]
BinsOption = Annotated[int | None, typer.Option("--bins", help="Histogram bins on [-1, 1] (default 16384).")]
DeviceOption = Annotated[str | None, typer.Option(help="Compute device, e.g. cuda (default: cpu).")]
ProgressOption = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: large sets)."),
]


def _load(path: Path):
    from tcdml.io.embeddings_file import load_embeddings_file

    return load_embeddings_file(path)


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
    output_format: FormatOption = OutputFormat.table,
    far_min: Annotated[float, typer.Option(help="Lower FAR of the calibration range.")] = 1e-2,
    far_max: Annotated[float, typer.Option(help="Upper FAR of the calibration range.")] = 1e-1,
    beta: Annotated[float, typer.Option(help="F-beta weight of the utility (>1 favours TPR).")] = 1.0,
    eps: Annotated[float, typer.Option(help="Worst fraction of classes in eps-OPIS.")] = 0.1,
    thresholds: Annotated[int, typer.Option(help="Number of thresholds in the calibration grid.")] = 100,
    k: Annotated[str, typer.Option("--k", help="Comma-separated k of Recall@k.")] = "1,2,4,8",
    threshold: Annotated[
        float | None, typer.Option(help="Threshold of the per-class FAR/FRR table (default: mid-range).")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the utility-curve figure (PNG, SVG) here.")] = None,
    per_class: Annotated[
        Path | None, typer.Option("--per-class", help="Write the per-class table (CSV).")
    ] = None,
    mode: ModeOption = Mode.histogram,
    bins: BinsOption = None,
    knn: Annotated[KnnBackend, typer.Option(help="Neighbour search backend.")] = KnnBackend.torch,
    device: DeviceOption = None,
    progress: ProgressOption = None,
) -> None:
    """Recall@k, MAP@R, OPIS and eps-OPIS of an embedding file (SPEC formulas)."""
    from tcdml.metrics.evaluator import evaluate as run_evaluation

    data = _load(file)
    result = run_evaluation(
        data.embeddings,
        data.labels,
        is_query=data.is_query,
        is_gallery=data.is_gallery,
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
    )
    if per_class is not None:
        result.per_class.write_csv(per_class)
    if plot is not None:
        from tcdml.metrics.plots import plot_utility_curves

        plot_utility_curves(result, plot, title=file.stem)
    summary = result.to_dict()
    if output_format is OutputFormat.json:
        print_json(summary)
    else:
        print_table(f"tcdml evaluate {file.name}", list(summary.items()))


@app.command()
def calibrate(
    file: EmbeddingsPath,
    target_far: Annotated[float | None, typer.Option(help="Meet this overall false-accept rate.")] = None,
    target_frr: Annotated[float | None, typer.Option(help="Meet this overall false-reject rate.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the result as JSON here.")
    ] = None,
    output_format: FormatOption = OutputFormat.table,
    worst: Annotated[int, typer.Option(help="How many worst classes to list.")] = 5,
    plot: Annotated[
        Path | None, typer.Option(help="Write the per-class FAR/FRR figure (PNG, SVG) here.")
    ] = None,
    mode: ModeOption = Mode.histogram,
    bins: BinsOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = None,
) -> None:
    """The one global threshold meeting a FAR (or FRR) target, and per-class FAR/FRR at it."""
    from tcdml.calibration.threshold import calibrate as run_calibration

    if worst < 1:
        raise TcdmlInputError(f"--worst={worst}: expected a positive integer")
    data = _load(file)
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
    summary = result.to_dict()
    if output is not None:
        from tcdml.io.json_file import write_json

        write_json(output, summary)  # strict JSON: a NaN rate is written as null
    if plot is not None:
        from tcdml.calibration.plots import plot_class_rates

        plot_class_rates(result, plot)
    if output_format is OutputFormat.json:
        print_json(summary)
    else:
        print_table(f"tcdml calibrate {file.name}", list(summary.items()))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input ends with one line ``tcdml: error: ...`` on stderr and exit status 2."""
    try:
        app(args=argv, prog_name="tcdml", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("tcdml: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as exc:  # usage errors: bad option value, missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        print(f"tcdml: error: {message}".replace("\n", " "), file=sys.stderr)
        return 2
    except TcdmlInputError as exc:
        print(f"tcdml: error: {exc}", file=sys.stderr)
        return 2
    return 0


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

if __name__ == "__main__":
    sys.exit(main())
