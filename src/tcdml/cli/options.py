"""Options shared by several commands (one definition each, so their names, defaults and help agree)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from tcdml.errors import ParameterError, TcdmlInputError
from tcdml.metrics.catalogue import fmr_key
from tcdml.metrics.settings import EvaluationSettings, Settings
from tcdml.metrics.validation import MAX_FMR_TARGETS

#: The library's defaults of an evaluation, which ``evaluate`` / ``compare`` / ``calibrate`` show and pass on.
DEFAULTS = EvaluationSettings()


class OutputFormat(StrEnum):
    json = "json"
    table = "table"


def choice_enum(name: str, values: tuple[str, ...]) -> type[StrEnum]:
    """An option's choices as typer wants them (a ``StrEnum`` named ``name``), made from the library's tuple
    ``values``: the choices are never copied into the CLI."""
    return StrEnum(name, {value: value for value in values})


def option_error(exc: ParameterError, options: Mapping[str, str]) -> ParameterError:
    """A library settings error under the command-line option that set the parameter: ``options[exc.name]``,
    else ``--`` and the name with ``-`` for ``_``. The library's own line follows the option, so it still
    says which parameter and rule failed (``--bins: num_bins=0: expected an integer in [16, ...]``)."""
    option = options.get(exc.name, "--" + exc.name.replace("_", "-"))
    return ParameterError(f"{option}: {exc}", option, exc.value, exc.expected)


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="json: one JSON object on stdout.")]
DeviceOption = Annotated[str | None, typer.Option(help="Compute device, e.g. cuda (default: cpu).")]
ProgressOption = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: large sets)."),
]
BootstrapOption = Annotated[
    int, typer.Option("--bootstrap", help="Class resamples of the bootstrap intervals (>= 1).")
]
FarMinOption = Annotated[float, typer.Option(help="Lower FAR of the calibration range.")]
FarMaxOption = Annotated[float, typer.Option(help="Upper FAR of the calibration range.")]
BetaOption = Annotated[float, typer.Option(help="F-beta weight of the utility (>1 favours TPR).")]
EpsOption = Annotated[float, typer.Option(help="Worst fraction of classes in eps-OPIS.")]
ThresholdsOption = Annotated[int, typer.Option(help="Number of thresholds in the calibration grid.")]
LevelOption = Annotated[float, typer.Option("--level", help="Confidence level of the intervals, in (0, 1).")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap and the noise-floor draws.")]
#: The input formats of ``evaluate``/``calibrate``/``compare`` (``tcdml.io.embedding_inputs``, docs/data.md).
EMBEDDING_INPUTS_HELP = (
    ".npz with 'embeddings' and 'labels'; .npy embeddings with --labels; or a .parquet/.csv table "
    "with a 'label' column (docs/data.md)"
)
EmbeddingsPath = Annotated[Path, typer.Argument(help=f"Embedding file: {EMBEDDING_INPUTS_HELP}.")]
LabelsOption = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        help="Labels of .npy embeddings: a .npy of N integers or strings (other formats hold their labels).",
    ),
]

FeatureCacheOption = Annotated[
    Path | None,
    typer.Option(
        "--feature-cache",
        help="Folder that keeps a frozen text encoder's features between runs (default: data.feature_cache, "
        "else $TCDML_CACHE/features or ~/.cache/tcdml/features).",
    ),
]
NoFeatureCacheOption = Annotated[
    bool,
    typer.Option("--no-feature-cache", help="Keep no encoder features on disk (compute them once a run)."),
]


def feature_cache_setting(folder: Path | None, off: bool) -> bool | str | None:
    """The ``data.feature_cache`` value of ``--feature-cache DIR`` / ``--no-feature-cache`` (None: neither
    given); a folder that is a file or not writable is one line naming it, before any work."""
    if folder is not None and off:
        raise TcdmlInputError("--feature-cache and --no-feature-cache: give one, not both")
    if off:
        return False
    if folder is None:
        return None
    from tcdml.models.feature_store import check_folder

    return str(check_folder(folder, "--feature-cache"))


#: The options of ``evaluate`` / ``compare`` whose name is not their settings field's (``EvaluationSettings``,
#: ``UncertaintySettings``); every other field's option is ``--`` and its name with ``-`` for ``_``.
SETTINGS_OPTIONS = {
    "ks": "--k",
    "far_range": "--far-min/--far-max",
    "num_thresholds": "--thresholds",
    "fmr_targets": "--fmr",
    "num_bins": "--bins",
    "knn_backend": "--knn",
    "resamples": "--bootstrap",
}


def uncertainty_settings(bootstrap: int, level: float, seed: int):
    """The ``UncertaintySettings`` of the command line; a bad value is one line naming the option."""
    from tcdml.metrics.uncertainty import UncertaintySettings

    try:
        return UncertaintySettings(resamples=bootstrap, level=level, seed=seed)
    except ParameterError as exc:  # the library names its field; the CLI names the option
        raise exc.renamed(SETTINGS_OPTIONS.get(exc.name, f"--{exc.name}")) from None


def metric_settings(kind: type[Settings] = EvaluationSettings, **given: Any) -> Settings:
    """The settings ``kind`` (``EvaluationSettings``, ``PassSettings``) of a command's options, checked by the
    library; a bad value is one line naming its option (``option_error``), before any file is read."""
    try:
        return kind(**given)
    except ParameterError as exc:
        raise option_error(exc, SETTINGS_OPTIONS) from None


@contextlib.contextmanager
def about(path: str | os.PathLike) -> Iterator[None]:
    """Errors raised by the block about the data of ``path`` (a NaN row, a single class) name the file."""
    try:
        yield
    except TcdmlInputError as exc:
        message = str(exc)
        if os.fspath(path) in message:
            raise
        raise TcdmlInputError(f"{os.fspath(path)}: {message}") from None


def parse_fmr(text: str) -> tuple[float, ...]:
    """``--fmr 1e-4,1e-3`` -> the checked FMR targets (one line naming ``--fmr`` on a bad list)."""
    from tcdml.metrics.validation import check_fmr_targets

    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise TcdmlInputError(
            f"--fmr={text!r}: expected comma-separated rates in (0, 1), e.g. 1e-4,1e-3"
        ) from None
    return check_fmr_targets(values, "--fmr")


FmrOption = Annotated[
    str,
    typer.Option(
        "--fmr", help=f"FMR (= FAR) targets of FNMR@FMR: up to {MAX_FMR_TARGETS} distinct rates in (0, 1)."
    ),
]
#: ``--fmr``'s default: the library's FMR targets as ``1e-4,1e-3,1e-2``.
DEFAULT_FMR_TEXT = ",".join(fmr_key(rate, stem="") for rate in DEFAULTS.fmr_targets)
