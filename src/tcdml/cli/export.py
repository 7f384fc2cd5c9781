"""``tcdml export CKPT|ADAPTER_DIR --calibration threshold.json -o DIR [--asnorm COHORT] [--force]
[--format auto]``.

Thin: parse, call ``tcdml.export.export_path``, print a JSON summary. torch loads inside the command; the
``--format`` choices and help come from the formats ``tcdml.deploy.formats`` declares.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tcdml.cli.output import print_json
from tcdml.deploy.formats import AUTO, export_choices, export_help

ExportFormat = StrEnum("ExportFormat", [(choice, choice) for choice in export_choices()])
DEFAULT_FORMAT = ExportFormat(AUTO)


def export(
    source: Annotated[
        Path,
        typer.Argument(help="A checkpoint written by tcdml train, or a folder written by tcdml adapt train."),
    ],
    calibration: Annotated[
        Path, typer.Option("--calibration", help="The threshold JSON written by tcdml calibrate -o.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to write (must not exist; its parent must).")
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing export folder.")] = False,
    format: Annotated[
        ExportFormat,
        typer.Option("--format", help=export_help()),
    ] = DEFAULT_FORMAT,
    asnorm: Annotated[
        Path | None,
        typer.Option(
            "--asnorm",
            help="The cohort embedding file of a threshold from tcdml calibrate --asnorm: shipped with the "
            "model, so load_matcher compares AS-norm scores with the threshold.",
        ),
    ] = None,
) -> None:
    """Export the model and its calibrated threshold for serving (docs/deploy.md: load_matcher)."""
    from tcdml.export import export_path

    result = export_path(source, calibration, output, force=force, format=format.value, asnorm=asnorm)
    print_json(result.to_dict())
