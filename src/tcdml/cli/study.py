"""``tcdml study``, ``tcdml study-report`` and ``tcdml pareto``: a grid of runs, its table and Pareto figure.

Thin skin over ``tcdml.experiments.study`` / ``study_table`` / ``pareto`` (docs/study.md); Lightning, torch
and matplotlib load inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tcdml.cli.options import FeatureCacheOption, NoFeatureCacheOption, feature_cache_setting
from tcdml.errors import TcdmlInputError
from tcdml.experiments.study_config import CELL_KEYS

StudyDir = Annotated[
    Path, typer.Argument(help="The study's output_dir (or its YAML config, to read output_dir from it).")
]


def study(
    config: Annotated[Path, typer.Argument(help="Study YAML (e.g. configs/study/offline.yaml).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the cells and their state; train nothing.")
    ] = False,
    progress: Annotated[
        bool,
        typer.Option(
            "--progress/--no-progress", help="Lightning's progress bars (--no-progress: a line a cell)."
        ),
    ] = True,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help=f"Run only cells with KEY=VALUE ({', '.join(CELL_KEYS)}); repeatable."),
    ] = None,
    feature_cache: FeatureCacheOption = None,
    no_feature_cache: NoFeatureCacheOption = False,
) -> None:
    """Train every cell of a study grid (resuming: finished cells are skipped), then write its table."""
    from tcdml.experiments.study import RESULT_FILE, CellFailed, plan_study, run_study
    from tcdml.experiments.study_config import load_study

    cache = feature_cache_setting(feature_cache, no_feature_cache)
    spec = load_study(config)
    if dry_run:
        plan = plan_study(spec, only or [])
        done = 0
        for index, (cell, _) in enumerate(plan, start=1):
            finished = (cell.directory(spec.output_dir) / RESULT_FILE).is_file()
            done += finished
            typer.echo(f"[{index}/{len(plan)}] {cell.label()}" + (" (done)" if finished else ""))
        typer.echo(f"{len(plan)} cells ({done} done, {len(plan) - done} to run) in {spec.output_dir}")
        return
    try:
        run = run_study(spec, only=only or [], quiet=not progress, echo=typer.echo, feature_cache=cache)
    except CellFailed as exc:  # keep the finished cells' table, then one line (exit status 2)
        _write_tables_if_any(spec.output_dir)
        raise TcdmlInputError(str(exc)) from None
    files = _write_tables_if_any(spec.output_dir)
    typer.echo(
        f"{len(run.ran)} cells trained, {len(run.skipped)} skipped ({run.seconds:.0f} s). "
        f"Table: {files[-1] if files else 'none'}"
    )


def study_report(study_dir: StudyDir) -> None:
    """Rebuild results.csv, table.csv and table.md from a study's finished cells (also while it runs)."""
    from tcdml.experiments.study_table import write_tables

    files = write_tables(_output_dir(study_dir))
    typer.echo((files[-1]).read_text(encoding="utf-8"))
    typer.echo(f"Wrote {', '.join(str(path) for path in files)}")


def pareto(
    study_dir: StudyDir,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder for the figure and pareto.md (default: STUDY_DIR)."),
    ] = None,
) -> None:
    """Error (1 - R@1) vs OPIS of every run, arrows base -> +TCM, frontiers and knee (figure + pareto.md)."""
    from tcdml.experiments.pareto import write_pareto

    files = write_pareto(_output_dir(study_dir), output)
    typer.echo(f"Wrote {', '.join(str(path) for path in files)}")


def _output_dir(path: Path) -> Path:
    """A study folder as given, or the ``output_dir`` of a study YAML."""
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from tcdml.experiments.study_config import load_study

        return load_study(path).output_dir
    return path


def _write_tables_if_any(output_dir: Path) -> list[Path]:
    from tcdml.experiments.study_table import load_records, write_tables

    if not output_dir.is_dir() or not load_records(output_dir):
        return []
    return write_tables(output_dir)
