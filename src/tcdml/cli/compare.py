"""``tcdml compare A.npz B.npz``: two models on the same samples, each change with its interval."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from tcdml.cli.options import (
    DEFAULT_FMR_TEXT,
    DEFAULTS,
    EMBEDDING_INPUTS_HELP,
    BetaOption,
    BootstrapOption,
    DeviceOption,
    EpsOption,
    FarMaxOption,
    FarMinOption,
    FmrOption,
    FormatOption,
    LabelsOption,
    LevelOption,
    OutputFormat,
    ProgressOption,
    SeedOption,
    ThresholdsOption,
    about,
    metric_settings,
    parse_fmr,
    uncertainty_settings,
)
from tcdml.cli.output import print_comparison, print_json
from tcdml.errors import TcdmlInputError

COMPARE_STEM = "utility_curves_compare"


def compare(
    file_a: Annotated[
        Path, typer.Argument(help=f"Embedding file of model A (the reference): {EMBEDDING_INPUTS_HELP}.")
    ],
    file_b: Annotated[
        Path,
        typer.Argument(help="Embedding file of model B (any format of A's), same samples in the same order."),
    ],
    labels: LabelsOption = None,
    output_format: FormatOption = OutputFormat.table,
    far_min: FarMinOption = DEFAULTS.far_range[0],
    far_max: FarMaxOption = DEFAULTS.far_range[1],
    beta: BetaOption = DEFAULTS.beta,
    eps: EpsOption = DEFAULTS.eps,
    thresholds: ThresholdsOption = DEFAULTS.num_thresholds,
    bootstrap: BootstrapOption = DEFAULTS.uncertainty.resamples,
    level: LevelOption = DEFAULTS.uncertainty.level,
    seed: SeedOption = DEFAULTS.uncertainty.seed,
    plot: Annotated[
        Path | None,
        typer.Option(help=f"Folder for both models' utility curves side by side ({COMPARE_STEM}.png/.svg)."),
    ] = None,
    device: DeviceOption = None,
    progress: ProgressOption = None,
    fmr: FmrOption = DEFAULT_FMR_TEXT,
) -> None:
    """B minus A for R@1, MAP@R, OPIS, eps-OPIS, debiased OPIS, ROC AUC, EER and FNMR@FMR, each with a
    paired bootstrap interval over classes and a verdict.

    One ``--labels`` serves both files: it is the labels of A and/or B when they are ``.npy`` (the two hold
    the same samples in the same order, so one labels file describes both).
    """
    from tcdml.figures import figure_names
    from tcdml.io.embedding_inputs import read_embeddings
    from tcdml.io.outputs import OutputSet
    from tcdml.metrics.compare import compare as run_comparison

    settings = metric_settings(  # every option checked before the files are read
        far_range=(far_min, far_max),
        beta=beta,
        eps=eps,
        num_thresholds=thresholds,
        device=device,
        progress=progress,
        uncertainty=uncertainty_settings(bootstrap, level, seed),
        fmr_targets=parse_fmr(fmr),
    )
    outputs = OutputSet(inputs=[file_a, file_b, *filter(None, [labels])])
    plot = outputs.check_folder(plot, "--plot", figure_names(COMPARE_STEM))
    if labels is not None and Path(file_a).suffix.lower() != ".npy" and Path(file_b).suffix.lower() != ".npy":
        raise TcdmlInputError(
            f"--labels {labels}: only for .npy embeddings (neither {file_a} nor {file_b} is one)"
        )
    a, b = (
        read_embeddings(path, labels if path.suffix.lower() == ".npy" else None) for path in (file_a, file_b)
    )
    check_same_samples(file_a, a, file_b, b)
    with about(f"{file_a} vs {file_b}"):
        masks = {"is_query": a.is_query, "is_gallery": a.is_gallery}
        needs = "--plot" if plot is not None else None  # both models' curves: refused where OPIS is undefined
        result = run_comparison(
            a.embeddings, b.embeddings, a.labels, settings=settings, needs_opis=needs, **masks
        )
    with outputs.staging() as staging:
        if plot is not None:
            from tcdml.metrics.plots import plot_utility_comparison

            titles = (f"A: {file_a.stem}", f"B: {file_b.stem}")
            plot_utility_comparison(result.a, result.b, staging.folder(plot), COMPARE_STEM, titles)
    summary = result.to_dict()
    if output_format is OutputFormat.json:
        print_json(summary)
    else:
        title = f"tcdml compare A={file_a.name} B={file_b.name}"
        print_comparison(title, comparison_rows(result), comparison_notes(result))


def check_same_samples(path_a: Path, a, path_b: Path, b) -> None:
    """Both files must hold the same samples in the same order: lengths, labels, masks, ids (when both have
    ids). One line naming both files and the first difference."""
    where = f"{path_a} vs {path_b}"
    if len(a.labels) != len(b.labels):
        raise TcdmlInputError(
            f"{where}: {len(a.labels)} vs {len(b.labels)} samples; expected the same samples"
        )
    pairs = [("labels", a.labels, b.labels), ("is_query", a.is_query, b.is_query)]
    pairs += [("is_gallery", a.is_gallery, b.is_gallery), ("ids", a.ids, b.ids)]
    for name, first, second in pairs:
        if name == "ids" and (first is None or second is None):
            continue
        if (first is None) != (second is None):
            raise TcdmlInputError(f"{where}: only one file has '{name}'")
        if first is not None and not np.array_equal(first, second):
            row = int(np.flatnonzero(np.asarray(first) != np.asarray(second))[0])
            values = (np.asarray(first)[row].item(), np.asarray(second)[row].item())
            raise TcdmlInputError(
                f"{where}: '{name}' differ (first at row {row}: {values[0]!r} vs {values[1]!r}); "
                "expected the same samples in the same order"
            )


#: Rows of the compare table without a paired interval: each model's value and the plain difference.
PLAIN_ROWS = ("opis_noise_floor", "eps_opis_noise_floor", "opis_excess")


def comparison_rows(result) -> list[tuple[str, str, str, str, str]]:
    """``(metric, A, B, B − A [interval], verdict)`` per compared metric (catalogue names and scales), then
    the noise floors; metrics undefined for a model are left out (``comparison_notes`` says why)."""
    from tcdml.metrics.catalogue import metric

    a, b = result.a.to_dict(), result.b.to_dict()
    rows = []
    for key, delta in result.deltas.items():
        if delta.value is None:
            continue
        entry = metric(key)
        low, high = (end * entry.scale for end in delta.ci)
        change = f"{delta.value * entry.scale:+.4g} [{low:+.4g}, {high:+.4g}]"
        rows.append((entry.display, entry.shown(a[key]), entry.shown(b[key]), change, delta.verdict))
    for key in PLAIN_ROWS:
        if a.get(key) is None or b.get(key) is None:
            continue
        entry = metric(key)
        rows.append(
            (
                entry.display,
                entry.shown(a[key]),
                entry.shown(b[key]),
                f"{(b[key] - a[key]) * entry.scale:+.4g}",
                "",
            )
        )
    return rows


def comparison_notes(result) -> list[str]:
    """Why a metric has no row, and how the intervals were drawn."""
    notes = sorted({f"Not compared: {d.undefined}" for d in result.deltas.values() if d.undefined})
    notes.append(
        f"Intervals: {result.level:.0%} paired bootstrap over classes ({result.resamples} resamples); "
        "verdict better/worse when the interval excludes 0. Read 'OPIS debiased' (docs/metrics.md)."
    )
    return notes
