"""``tcdml demo``: the MNIST study of the seed article, end to end (thin skin over ``tcdml.experiments``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for figures, metrics and report.")
    ] = Path("demo-output"),
    epochs: Annotated[
        int | None, typer.Option(help="Training epochs per run (default: configs/demo/mnist.yaml's, 15).")
    ] = None,
    embedding_size: Annotated[int, typer.Option(help="Embedding dimension: 2 or 3.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of both runs (same seed, same schedule).")] = 0,
    configs: Annotated[
        Path | None, typer.Option(help="Folder of the demo configs (default: the checkout's configs/demo).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show training progress bars.")] = True,
) -> None:
    """Train a small CNN on MNIST with ArcFace, with and without TCM; print the table, write the figures."""
    from tcdml.experiments.demo_report import table_lines
    from tcdml.experiments.mnist_demo import run_demo

    result = run_demo(
        output, epochs=epochs, embedding_size=embedding_size, seed=seed, config_dir=configs, progress=progress
    )
    typer.echo("\n".join(["", *table_lines(result), ""]))
    typer.echo(f"Figures, metrics.json and report.md in {result.output} ({result.seconds:.0f} s).")
