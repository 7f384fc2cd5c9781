"""Run a study: every cell of the grid (``study_config``) trained, measured and stored as ``result.json``.

A cell is one ``tcdml.training`` run: the benchmark's training config with, in this order, the study's
``overrides``, the benchmark's ``overrides``, the variant's overrides, then the loss section of the
``losses`` axis (``loss.tcm`` = the cell's TCM arm of the study's ``tcm``, null for base cells), the seed
and the cell folder as ``output_dir``. Losses whose constructor requires ``num_classes`` / ``embedding_size``
(ArcFace, ProxyAnchor, ...) get them by the rule ``tcdml train`` uses (``tcdml.training.build``: the training
classes left after the validation classes are held out, and ``model.embedding_size``) unless the loss entry
gives them. After ``fit`` the kept model (the best on the validation classes, never worse than the start;
the last epoch for a benchmark without validation classes) embeds ``data.eval_split``, which is
evaluated with the config's ``eval`` settings and calibrated at the study's ``target_far``
(``tcdml.experiments.runs.measure``). The embeddings are kept as ``embeddings.npz`` (the embedding file
format: ``tcdml evaluate`` / ``tcdml compare`` read it; the study table's paired intervals come from it), and
an auto-margin TCM arm records the margins it ended with (``tcm_margins``).

Resuming: a cell with a ``result.json`` measured with the same config is skipped (one whose config changed
since, e.g. other TCM margins, is trained again); if it lacks ``embeddings.npz`` (measured by an older
tcdml), its final checkpoint embeds the evaluation split again, without training (a cell whose checkpoint is
missing or does not fit today's model is trained again; it re-embeds from ``best.ckpt``, else ``last.ckpt``).
A cell without a result
continues from its ``checkpoints/last.ckpt`` when that checkpoint was written by the same config, else
starts from scratch (its folder is cleared first).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tcdml.errors import TcdmlInputError
from tcdml.experiments.study_config import Cell, StudyConfig, select_cells, study_cells
from tcdml.experiments.study_intervals import EMBEDDINGS_FILE
from tcdml.io.embeddings_file import save_embeddings_file

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
ERROR_FILE = "error.log"


class CellFailed(RuntimeError):
    """A cell's training or evaluation raised: the message names the cell and where its traceback is."""


@dataclass
class StudyRun:
    """What ``run_study`` did: the selected cells, those it trained and those it skipped (already done)."""

    study: StudyConfig
    cells: list[Cell]
    ran: list[Cell] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    seconds: float = 0.0


def cell_overrides(study: StudyConfig, cell: Cell) -> list[str]:
    """The ``load_config`` overrides of ``cell`` (order and meaning in the module docstring).

    The loss section is replaced whole (``loss.params`` and ``loss.tcm`` are set, not merged), so a
    benchmark config's own loss or TCM settings never leak into a cell.
    """
    loss = study.losses[cell.loss]
    return [
        *study.overrides,
        *study.benchmarks[cell.benchmark].overrides,
        *study.variants[cell.variant],
        f"loss.name={json.dumps(loss['name'])}",
        f"loss.params={json.dumps(loss['params'])}",
        f"loss.tcm={json.dumps(study.tcm[cell.arm] if cell.tcm else None)}",
        f"seed={cell.seed}",
        f"output_dir={json.dumps(cell.directory(study.output_dir).as_posix())}",
    ]


def cell_config(study: StudyConfig, cell: Cell) -> Any:
    """The ``TrainConfig`` of ``cell`` before filling; a bad override raises ``TcdmlInputError`` naming it."""
    from tcdml.training.config_files import load_config

    try:
        overrides = cell_overrides(study, cell)
        return load_config(study.benchmarks[cell.benchmark].config, overrides)
    except TcdmlInputError as exc:
        raise TcdmlInputError(f"{study.path}: cell {cell.label()}: {exc}") from None


class FillConfigs:
    """A cell's config with its loss's runtime parameters filled by ``tcdml.training.build``'s rule; the
    training classes of each data section are counted once (``prepare`` reads the split)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, config: Any) -> Any:
        from tcdml.training.build import fill_config, prepare

        key = json.dumps(dataclasses.asdict(config.data), sort_keys=True)
        if key not in self.counts:
            self.counts[key] = prepare(config)[1].train_set.num_classes
        return fill_config(config, self.counts[key])


def resumable_checkpoint(directory: Path, config: Any) -> Path | None:
    """``directory/checkpoints/last.ckpt`` when it exists and was written by ``config``, else None.

    The progress bar and feature cache settings are ignored in the comparison (``--quiet`` or another
    ``--feature-cache`` must not force a restart).
    """
    path = directory / "checkpoints" / "last.ckpt"
    if not path.is_file():
        return None
    from tcdml.training.checkpoint import read_checkpoint

    try:
        stored = read_checkpoint(path).get("tcdml_config")
    except TcdmlInputError as exc:  # damaged (CRC), truncated, not a checkpoint
        log.warning("%s: not resumable (%s); the cell starts over", path, exc)
        return None
    return path if _comparable(stored) == _comparable(config.to_dict()) else None


def finished_with(directory: Path, config: Any) -> bool:
    """Whether ``directory`` holds a ``result.json`` measured with ``config`` (progress bar and
    feature cache aside)."""
    path = directory / RESULT_FILE
    if not path.is_file():
        return False
    try:
        stored = json.loads(path.read_text(encoding="utf-8")).get("config")
    except (OSError, json.JSONDecodeError, AttributeError):
        return False  # unreadable: measure the cell again
    return _comparable(stored) == _comparable(config.to_dict())


def _comparable(values: Any) -> Any:
    """A config dict without what cannot change a result: the progress bar and where features are cached."""
    if not isinstance(values, dict):
        return values
    trainer = {key: value for key, value in values.get("trainer", {}).items() if key != "progress_bar"}
    data = {key: value for key, value in values.get("data", {}).items() if key != "feature_cache"}
    return json.loads(json.dumps({**values, "trainer": trainer, "data": data}))


def run_cell(
    study: StudyConfig, cell: Cell, config: Any, *, callbacks: Sequence[Any] = (), order: Sequence[int] = ()
) -> dict[str, Any]:
    """Train ``cell`` (resuming when ``resumable_checkpoint`` allows), measure it, write its ``result.json``.

    Returns the record written (keys: cell, order, metrics, seconds, train_seconds, resumed_from, seed,
    study, config, evaluation, calibration, finished).
    """
    from tcdml.experiments.runs import fit_module, measure
    from tcdml.io.json_file import write_json
    from tcdml.losses.tcm import tracked_margins

    directory = cell.directory(study.output_dir)
    resume = resumable_checkpoint(directory, config)
    if resume is None and directory.exists():
        shutil.rmtree(directory)  # leftovers of an interrupted run with another config
    start = time.perf_counter()
    module, train_seconds = fit_module(config, callbacks, resume=resume)
    measured = measure(module.model, config, target_far=study.target_far)
    record = {
        "cell": cell.keys(),
        "order": list(order),
        "metrics": measured.metrics(),
        "seconds": time.perf_counter() - start,
        "train_seconds": train_seconds,
        "resumed_from": None if resume is None else str(resume),
        "seed": cell.seed,
        "study": str(study.path),
        "config": json.loads(json.dumps(config.to_dict())),
        "tcm_margins": tracked_margins(module.loss_fn),
        "evaluation": measured.evaluation.to_dict(),
        "calibration": measured.calibration.to_dict(),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    save_embeddings_file(directory / EMBEDDINGS_FILE, measured.embeddings, measured.labels)
    write_json(directory / RESULT_FILE, record)  # last: its presence means the cell is complete
    return record


def embed_finished_cell(directory: Path) -> Path:
    """``embeddings.npz`` of a finished cell from its kept model (``checkpoints/best.ckpt``, else
    ``checkpoints/last.ckpt``)."""
    from tcdml.training.checkpoint import model_from_checkpoint
    from tcdml.training.embed import embed_split

    best = directory / "checkpoints" / "best.ckpt"
    model, config = model_from_checkpoint(best if best.is_file() else directory / "checkpoints" / "last.ckpt")
    embeddings, labels = embed_split(model, config.data)
    return save_embeddings_file(directory / EMBEDDINGS_FILE, embeddings, labels)


def plan_study(study: StudyConfig, only: Sequence[str] = ()) -> list[tuple[Cell, Any]]:
    """The selected cells with their (unfilled) configs; every override is checked before anything trains."""
    return [(cell, cell_config(study, cell)) for cell in select_cells(study_cells(study), only)]


def run_study(
    study: StudyConfig,
    *,
    only: Sequence[str] = (),
    quiet: bool = False,
    callbacks: Sequence[Any] = (),
    echo: Callable[[str], None] = print,
    feature_cache: bool | str | None = None,
) -> StudyRun:
    """Run every selected cell without a ``result.json`` of its current config; ``echo`` a line per cell.

    ``quiet`` turns Lightning's progress bars off; ``feature_cache`` (not None) sets every cell's
    ``data.feature_cache``; ``callbacks`` are added to every cell's trainer. A cell
    that raises stops the study with ``CellFailed`` (its traceback in ``<cell>/error.log``); finished cells
    keep their results.
    """

    start = time.perf_counter()
    plan = plan_study(study, only)
    run = StudyRun(study, [cell for cell, _ in plan])
    fill = FillConfigs()
    for index, (cell, config) in enumerate(plan, start=1):
        prefix = f"[{index}/{len(plan)}] {cell.label()}"
        directory = cell.directory(study.output_dir)
        if quiet:
            config = dataclasses.replace(
                config, trainer=dataclasses.replace(config.trainer, progress_bar=False)
            )
        if feature_cache is not None:
            config = dataclasses.replace(
                config, data=dataclasses.replace(config.data, feature_cache=feature_cache)
            )
        try:
            config = fill(config)
            if finished_with(directory, config):
                if (directory / EMBEDDINGS_FILE).is_file():
                    run.skipped.append(cell)
                    echo(f"{prefix} … done before, skipped")
                    continue
                try:
                    embed_finished_cell(directory)
                    run.skipped.append(cell)
                    echo(f"{prefix} … done before; its embeddings written from its last checkpoint")
                    continue
                except TcdmlInputError as exc:  # no checkpoint, or one an older tcdml wrote (other weights)
                    echo(f"{prefix} … cannot re-embed ({exc}): training it again")
                    (directory / RESULT_FILE).unlink()
            if (directory / RESULT_FILE).is_file():
                echo(f"{prefix} … its config changed since it ran: training it again")
                (directory / RESULT_FILE).unlink()
            record = run_cell(study, cell, config, callbacks=callbacks, order=_order(study, cell))
        except Exception as exc:
            raise _failed(cell, directory, exc) from exc
        run.ran.append(cell)
        echo(f"{prefix} … {record['seconds']:.0f} s")
    run.seconds = time.perf_counter() - start
    return run


def _order(study: StudyConfig, cell: Cell) -> list[int]:
    """Axis positions in the study file (tables list rows in this order, not alphabetically)."""
    return [
        list(study.benchmarks).index(cell.benchmark),
        list(study.losses).index(cell.loss),
        list(study.variants).index(cell.variant),
    ]


def _failed(cell: Cell, directory: Path, exc: Exception) -> CellFailed:
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / ERROR_FILE
    log.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    first = (str(exc).splitlines() or [""])[0]
    return CellFailed(f"cell {cell.label()} failed: {type(exc).__name__}: {first} (traceback: {log})")
