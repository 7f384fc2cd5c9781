"""Options shared by several commands (one definition each, so their names, defaults and help agree)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tcdml.errors import ParameterError, TcdmlInputError


class OutputFormat(StrEnum):
    json = "json"
    table = "table"


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="json: one JSON object on stdout.")]
DeviceOption = Annotated[str | None, typer.Option(help="Compute device, e.g. cuda (default: cpu).")]
ProgressOption = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: large sets)."),
]
BootstrapOption = Annotated[
    int, typer.Option("--bootstrap", help="Class resamples of the bootstrap intervals (>= 1).")
]
LevelOption = Annotated[float, typer.Option("--level", help="Confidence level of the intervals, in (0, 1).")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap and the noise-floor draws.")]
#: The input formats of ``evaluate``/``calibrate``/``compare`` (``tcdml.io.embedding_inputs``, docs/data.md).
EMBEDDING_INPUTS_HELP = (
    ".npz with 'embeddings' and 'labels'; .npy embeddings with --labels; or a .parquet/.csv table "
    "with a 'label' column (docs/data.md)"
)
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


def uncertainty_settings(bootstrap: int, level: float, seed: int):
    """The ``UncertaintySettings`` of the command line; a bad value is one line naming the option."""
    from tcdml.metrics.uncertainty import UncertaintySettings

    try:
        return UncertaintySettings(resamples=bootstrap, level=level, seed=seed)
    except ParameterError as exc:  # the library names its field; the CLI names the option
        options = {"resamples": "--bootstrap", "level": "--level", "seed": "--seed"}
        raise exc.renamed(options.get(exc.name, f"--{exc.name}")) from None


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
    str, typer.Option("--fmr", help="FMR (= FAR) targets of FNMR@FMR: up to 20 distinct rates in (0, 1).")
]
DEFAULT_FMR_TEXT = "1e-4,1e-3,1e-2"
