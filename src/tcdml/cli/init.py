"""``tcdml init images|texts --data PATH -o run.yaml``: a commented training config to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tcdml.cli.options import choice_enum
from tcdml.training.templates import KINDS

Kind = choice_enum("Kind", KINDS)


def init(
    kind: Annotated[Kind, typer.Argument(help="images (a class-folder tree or a path,label CSV) or texts.")],
    data: Annotated[
        Path, typer.Option("--data", help="The data: a folder of class folders, or a .csv / .jsonl file.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Config file to write (.yaml); its folder must exist.")
    ] = Path("tcdml-run.yaml"),
    run_dir: Annotated[
        str | None, typer.Option(help="The run's output_dir (default: runs/<config name>).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing config file.")] = False,
) -> None:
    """Write a training config for your own data (checked as it is written), then say how to train it."""
    from tcdml.training.templates import write_config

    config = write_config(kind.value, data, output, run_dir or f"runs/{output.stem}", force=force)
    typer.echo(
        f"wrote {output} ({config.data.dataset} at {config.data.root}, {config.model.backbone}, "
        f"{config.loss.name}{' + TCM' if config.loss.tcm else ''}, {config.trainer.max_epochs} epochs); "
        f"next: tcdml train {output} --check"
    )
