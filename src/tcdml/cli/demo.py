"""``tcdml demo``: the MNIST study of the seed article, end to end (thin skin over ``tcdml.experiments``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tcdml.experiments.mnist_demo import DEFAULT_SEEDS


def demo(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for figures, metrics and report.")
    ] = Path("demo-output"),
    epochs: Annotated[
        int | None, typer.Option(help="Training epochs per run (default: 30, the packaged mnist.yaml's).")
    ] = None,
    embedding_size: Annotated[int, typer.Option(help="Embedding dimension: 2 or 3.")] = 2,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated seeds, each trains both runs "
            f"(default: {','.join(map(str, DEFAULT_SEEDS))})."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="One seed only (same as --seeds SEED).")] = None,
    threads: Annotated[
        int, typer.Option(help="Torch intra-op threads while training (1: the same numbers on any load).")
    ] = 1,
    configs: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the demo configs (default: the packaged ones, tcdml/experiments/configs)."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show training progress bars.")] = True,
) -> None:
    """Train a small CNN on MNIST with ArcFace, with and without TCM, for every seed; print the tables."""
    from tcdml.errors import TcdmlInputError
    from tcdml.experiments.demo_report import table_lines
    from tcdml.experiments.mnist_demo import parse_seeds, run_demo

    if seed is not None and seeds is not None:
        raise TcdmlInputError("--seed and --seeds: give one of them")
    chosen = [seed] if seed is not None else parse_seeds(seeds) if seeds is not None else list(DEFAULT_SEEDS)
    result = run_demo(
        output,
        epochs=epochs,
        embedding_size=embedding_size,
        seeds=chosen,
        threads=threads,
        config_dir=configs,
        progress=progress,
    )
    typer.echo("\n".join(["", *table_lines(result), ""]))
    typer.echo(f"Figures, metrics.json and report.md in {result.output} ({result.seconds:.0f} s).")
