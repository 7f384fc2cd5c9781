"""``tcdml evaluate`` and ``tcdml calibrate`` (docs/spec.md's interface): an embedding file's metrics, and the
one global threshold that meets a FAR (or FRR) target.

Thin: parse, check every option (``tcdml.metrics.settings``, its choices and defaults read from the library)
and the outputs, read the file, call ``tcdml.metrics.evaluate`` / ``tcdml.calibration.calibrate``, print.
``tcdml.cli.main`` imports this module when the CLI runs, not at ``import tcdml.cli.main``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tcdml.cli.options import (
    DEFAULT_FMR_TEXT,
    DEFAULTS,
    BetaOption,
    BootstrapOption,
    DeviceOption,
    EmbeddingsPath,
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
    choice_enum,
    metric_settings,
    parse_fmr,
    uncertainty_settings,
)
from tcdml.cli.output import evaluation_notes, print_evaluation, print_json, print_table
from tcdml.errors import TcdmlInputError
from tcdml.metrics.settings import DEFAULT_NUM_BINS, KNN_BACKENDS, MODES, PassSettings
from tcdml.posthoc.asnorm import DEFAULT_TOP_K

if TYPE_CHECKING:
    from tcdml.calibration import CalibrationResult
    from tcdml.io.embeddings_file import EmbeddingsFile
    from tcdml.metrics.result import EvaluationResult
    from tcdml.metrics.settings import EvaluationSettings
    from tcdml.posthoc.calibrate import Cohort

Mode, KnnBackend = choice_enum("Mode", MODES), choice_enum("KnnBackend", KNN_BACKENDS)
DEFAULT_MODE, DEFAULT_KNN = Mode(DEFAULTS.mode), KnnBackend(DEFAULTS.knn_backend)
ModeOption = Annotated[Mode, typer.Option(help="histogram: one bounded-memory pass; exact: brute force.")]
BinsOption = Annotated[
    int | None, typer.Option("--bins", help=f"Histogram bins on [-1, 1] (default {DEFAULT_NUM_BINS}).")
]
AsnormOption = Annotated[
    Path | None,
    typer.Option(
        "--asnorm",
        help="An embedding file (e.g. tcdml embed --split train) as the AS-norm cohort: every pair is then "
        "scored by AS-norm, exactly (docs/posthoc.md); tcdml export --asnorm ships it with the model.",
    ),
]
TopKOption = Annotated[
    int | None, typer.Option("--top-k", help=f"AS-norm: cohort cosines per side (default {DEFAULT_TOP_K}).")
]
PLOT_HELP = (
    "Folder for the figure ({stem}.png, {stem}.svg); created if missing (its parent must exist). "
    "A name ending in .png/.svg/.pdf is refused."
)


def _load(path: Path, labels: Path | None = None):
    """The embedding input ``path`` in any format of ``tcdml.io.embedding_inputs`` (``labels``: --labels)."""
    from tcdml.io.embedding_inputs import read_embeddings

    return read_embeddings(path, labels)


def parse_ks(text: str) -> tuple[int, ...]:
    """``--k 1,2,4`` -> ``(1, 2, 4)``; the library checks the values."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise TcdmlInputError(
            f"--k={text!r}: expected comma-separated positive integers, e.g. 1,2,4,8"
        ) from None


def evaluate(
    file: EmbeddingsPath,
    labels: LabelsOption = None,
    output_format: FormatOption = OutputFormat.table,
    far_min: FarMinOption = DEFAULTS.far_range[0],
    far_max: FarMaxOption = DEFAULTS.far_range[1],
    beta: BetaOption = DEFAULTS.beta,
    eps: EpsOption = DEFAULTS.eps,
    thresholds: ThresholdsOption = DEFAULTS.num_thresholds,
    k: Annotated[str, typer.Option("--k", help="Comma-separated k of Recall@k.")] = ",".join(
        map(str, DEFAULTS.ks)
    ),
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
    mode: ModeOption = DEFAULT_MODE,
    bins: BinsOption = None,
    knn: Annotated[KnnBackend, typer.Option(help="Neighbour search backend.")] = DEFAULT_KNN,
    device: DeviceOption = None,
    progress: ProgressOption = None,
    bootstrap: BootstrapOption = DEFAULTS.uncertainty.resamples,
    level: LevelOption = DEFAULTS.uncertainty.level,
    seed: SeedOption = DEFAULTS.uncertainty.seed,
    fmr: FmrOption = DEFAULT_FMR_TEXT,
    asnorm: AsnormOption = None,
    top_k: TopKOption = None,
) -> None:
    """Recall@k, MAP@R, OPIS and eps-OPIS of an embedding file (docs/spec.md), OPIS with its bootstrap
    interval over classes, its noise floor and its debiased value, and the verification metrics (ROC AUC,
    EER, FNMR@FMR) (docs/metrics.md); with --asnorm, of the AS-norm scores of its pairs."""
    from tcdml.figures import figure_names
    from tcdml.io.json_file import write_json
    from tcdml.io.outputs import OutputSet
    from tcdml.metrics.evaluator import evaluate as run_evaluation
    from tcdml.metrics.plots import UTILITY_STEM, plot_utility_curves

    settings = metric_settings(  # every option checked before the file is read
        ks=parse_ks(k),
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
    _check_asnorm_options(asnorm, top_k, bins)
    # every output checked before the work starts
    outputs = OutputSet(inputs=[file, *filter(None, [labels, asnorm])])
    output = outputs.check_file(output, "--output")
    per_class = outputs.check_file(per_class, "--per-class")
    plot = outputs.check_folder(plot, "--plot", figure_names(UTILITY_STEM))
    cohort = _cohort(asnorm, top_k)
    data = _load(file, labels)
    with about(file):
        masks = {"is_query": data.is_query, "is_gallery": data.is_gallery}
        # What needs OPIS: where it is undefined (tcdml.metrics.engine), one line instead of an empty output.
        needs = " and ".join(name for name, path in (("--per-class", per_class), ("--plot", plot)) if path)
        if cohort is None:
            result = run_evaluation(
                data.embeddings, data.labels, settings=settings, needs_opis=needs or None, **masks
            )
        else:
            result = _evaluate_asnorm(cohort, data, settings)
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
    mode: ModeOption = DEFAULT_MODE,
    bins: BinsOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = None,
    asnorm: AsnormOption = None,
    top_k: TopKOption = None,
) -> None:
    """The one global threshold meeting a FAR (or FRR) target, and per-class FAR/FRR at it."""
    from tcdml.calibration.plots import CLASS_RATES_STEM, plot_class_rates
    from tcdml.calibration.threshold import calibrate as run_calibration
    from tcdml.figures import figure_names
    from tcdml.io.json_file import write_json
    from tcdml.io.outputs import OutputSet

    if worst < 1:
        raise TcdmlInputError(f"--worst={worst}: expected a positive integer")
    _check_asnorm_options(asnorm, top_k, bins)
    settings = metric_settings(PassSettings, mode=mode.value, num_bins=bins, device=device, progress=progress)
    inputs = [file, *filter(None, [labels, asnorm])]
    outputs = OutputSet(inputs=inputs)  # every output checked before the work starts
    output = outputs.check_file(output, "--output")
    plot = outputs.check_folder(plot, "--plot", figure_names(CLASS_RATES_STEM))
    cohort = _cohort(asnorm, top_k)
    data = _load(file, labels)
    with about(file):
        if cohort is None:
            result = run_calibration(
                data.embeddings,
                data.labels,
                target_far=target_far,
                target_frr=target_frr,
                is_query=data.is_query,
                is_gallery=data.is_gallery,
                num_worst=worst,
                settings=settings,
            )
        else:
            result = _calibrate_asnorm(cohort, data, target_far, target_frr, worst, settings.progress)
    # The embedding size lets tcdml export check that a calibration belongs to the model it ships with.
    summary = {**result.to_dict(), "embedding_size": int(data.embeddings.shape[1])}
    if cohort is not None:
        summary["scores"] = cohort.record()  # tcdml export ships the threshold with this cohort only
    with outputs.staging() as staging:  # all outputs, or none of them
        if output is not None:
            write_json(staging.file(output), summary)  # strict JSON: a NaN rate is written as null
        if plot is not None:
            plot_class_rates(result, staging.folder(plot))
    if output_format is OutputFormat.json:
        print_json(summary)
    else:
        print_table(f"tcdml calibrate {file.name}", list(summary.items()))


def _check_asnorm_options(asnorm: Path | None, top_k: int | None, bins: int | None) -> None:
    if asnorm is None and top_k is not None:
        raise TcdmlInputError(f"--top-k={top_k}: only with --asnorm COHORT")
    if asnorm is not None and bins is not None:
        raise TcdmlInputError(f"--bins={bins}: AS-norm scores are taken exactly (every pair), without bins")


def _evaluate_asnorm(cohort: Cohort, data: EmbeddingsFile, settings: EvaluationSettings) -> EvaluationResult:
    """``tcdml.posthoc.evaluate.evaluate_scores`` of the AS-norm scores of every pair of the file (exact)."""
    from dataclasses import replace

    from tcdml.posthoc.evaluate import check_sample_count, evaluate_scores

    _all_pairs(data)
    check_sample_count(len(data.labels), "embeddings")  # before the N x N scores
    scores = cohort.model.score_matrix(data.embeddings, name="embeddings")
    return evaluate_scores(scores, data.labels, settings=replace(settings, mode="exact"))


def _all_pairs(data: EmbeddingsFile) -> None:
    if data.is_query is not None or data.is_gallery is not None:
        raise TcdmlInputError("is_query / is_gallery: AS-norm scores are taken over every pair of the file")


def _cohort(path: Path | None, top_k: int | None) -> Cohort | None:
    """The cohort of ``--asnorm`` / ``--top-k``, or None."""
    if path is None:
        return None
    from tcdml.posthoc.calibrate import read_cohort_file

    return read_cohort_file(path, DEFAULT_TOP_K if top_k is None else top_k)


def _calibrate_asnorm(
    cohort: Cohort,
    data: EmbeddingsFile,
    target_far: float | None,
    target_frr: float | None,
    worst: int,
    progress: bool | None,
) -> CalibrationResult:
    """``tcdml.posthoc.calibrate.calibrate_asnorm`` on every pair of the calibration file."""
    from tcdml.posthoc.calibrate import calibrate_asnorm

    _all_pairs(data)
    return calibrate_asnorm(
        cohort.model,
        data.embeddings,
        data.labels,
        target_far=target_far,
        target_frr=target_frr,
        num_worst=worst,
        progress=progress,
        cohort_name=str(cohort.path),
    )
