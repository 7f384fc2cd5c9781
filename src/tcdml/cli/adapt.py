"""``tcdml adapt train`` and ``tcdml adapt apply``: threshold consistency for a model you cannot retrain.

Thin: parse, check every option and the outputs, call ``tcdml.adapt``, print a summary. torch and the losses
load inside the commands, so ``tcdml --help`` stays fast. See docs/adapt.md.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from tcdml.cli.options import FormatOption, OutputFormat, ProgressOption, about
from tcdml.cli.output import print_json, print_table
from tcdml.errors import TcdmlInputError

adapt_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train a small adapter on a frozen model's embeddings (TCM included), and apply it.",
)


class Kind(StrEnum):
    residual = "residual"
    linear = "linear"


class Margins(StrEnum):
    auto = "auto"
    fixed = "fixed"


class Select(StrEnum):
    recall_opis = "recall@1-opis"
    recall = "recall@1"
    opis = "opis"


EmbeddingInput = Annotated[
    Path,
    typer.Argument(help="Embedding file: .npz ('embeddings', 'labels'), .npy + --labels, .parquet, .csv."),
]
LabelsOption = Annotated[Path | None, typer.Option("--labels", help="Labels .npy for a .npy embedding file.")]
#: TCM options that apply to one margin strategy only.
AUTO_ONLY, FIXED_ONLY = ("target_far", "target_frr"), ("margin_pos", "margin_neg")


def _loss_params(items: list[str]) -> dict[str, Any]:
    from tcdml.io.yaml_file import load_yaml_text

    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise TcdmlInputError(f"--loss-param={item!r}: expected KEY=VALUE, e.g. temperature=0.01")
        params[key.strip()] = load_yaml_text(text, f"--loss-param {key.strip()}")
    return params


def tcm_help(name: str, default: str | None = None) -> str:
    """An option's help from ``TCMSettings.HELP`` (one text for the library and the CLI) and its default."""
    from dataclasses import fields

    from tcdml.losses.tcm_settings import HELP, TCMSettings

    value = default or next(str(field.default) for field in fields(TCMSettings) if field.name == name)
    return f"{HELP[name]} Default {value}."


def _tcm_options(tcm: bool, margins: Margins, given: dict[str, float | None]) -> dict[str, float]:
    """The TCM options the user gave, refused where they do not apply (no TCM, the other strategy)."""
    chosen = {key: value for key, value in given.items() if value is not None}
    for key in chosen:
        option = "--" + key.replace("_", "-")
        if not tcm:
            raise TcdmlInputError(f"{option}={chosen[key]}: a TCM option, but --no-tcm was given")
        if key in (AUTO_ONLY if margins is Margins.fixed else FIXED_ONLY):
            other = "auto" if margins is Margins.fixed else "fixed"
            raise TcdmlInputError(f"{option}={chosen[key]}: only with --margins {other}")
    return chosen


@adapt_app.command("train")
def train(
    train_file: EmbeddingInput,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Adapter folder to write (new, or --force).")
    ],
    val: Annotated[
        Path | None, typer.Option("--val", help="Validation embedding file (default: held-out classes).")
    ] = None,
    labels: LabelsOption = None,
    val_labels: Annotated[Path | None, typer.Option(help="Labels .npy for a .npy --val file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing adapter folder.")] = False,
    kind: Annotated[Kind, typer.Option(help="residual (identity-initialised) or linear.")] = Kind.residual,
    hidden: Annotated[int, typer.Option(help="Hidden width of the residual head.")] = 512,
    embedding_size: Annotated[
        int | None, typer.Option(help="Output size of a linear head (default: the input size).")
    ] = None,
    loss: Annotated[
        str, typer.Option(help="Loss name (tcdml.losses registry), e.g. smooth_ap.")
    ] = "smooth_ap",
    loss_param: Annotated[
        list[str] | None,
        typer.Option("--loss-param", help="KEY=VALUE loss parameter (YAML value), repeatable."),
    ] = None,
    tcm: Annotated[
        bool | None,
        typer.Option(
            "--tcm/--no-tcm",
            help="Add the TCM regulariser (default: only when a TCM option is given; docs/study.md).",
        ),
    ] = None,
    margins: Annotated[
        Margins, typer.Option(help="TCM margins: auto (read off batches) or fixed.")
    ] = Margins.auto,
    target_far: Annotated[float | None, typer.Option(help=tcm_help("target_far"))] = None,
    target_frr: Annotated[float | None, typer.Option(help=tcm_help("target_frr"))] = None,
    margin_pos: Annotated[float | None, typer.Option(help=tcm_help("margin_pos"))] = None,
    margin_neg: Annotated[float | None, typer.Option(help=tcm_help("margin_neg"))] = None,
    lambda_pos: Annotated[float | None, typer.Option(help=tcm_help("lambda_pos", "3 auto, 1 fixed"))] = None,
    lambda_neg: Annotated[float | None, typer.Option(help=tcm_help("lambda_neg", "3 auto, 1 fixed"))] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs (0: evaluate the input only).")] = 10,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 1e-4,
    batch_size: Annotated[int, typer.Option(help="Samples per batch (P classes x m).")] = 256,
    m_per_class: Annotated[int, typer.Option(help="Samples per class in a batch (m).")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the head's init and the batches.")] = 0,
    val_ratio: Annotated[float, typer.Option(help="Without --val: fraction of classes held out.")] = 0.2,
    val_seed: Annotated[int, typer.Option(help="Without --val: seed of the held-out classes.")] = 0,
    select: Annotated[
        Select, typer.Option(help="Validation objective that picks the epoch.")
    ] = Select.recall_opis,
    progress: ProgressOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Train an adapter on TRAIN's embeddings; keep the best validation epoch (never worse than the input)."""
    from tcdml.adapt.folder import check_output_dir
    from tcdml.adapt.settings import AdaptSettings

    given = {"target_far": target_far, "target_frr": target_frr, "margin_pos": margin_pos}
    given.update(margin_neg=margin_neg, lambda_pos=lambda_pos, lambda_neg=lambda_neg)
    # Off by default (the consistency study: TCM did not earn its place on the adapter); a TCM option
    # given turns it on, --no-tcm with one is refused.
    use_tcm = tcm if tcm is not None else any(value is not None for value in given.values())
    settings = AdaptSettings(  # every option checked before a file is read
        kind=kind.value,
        hidden=hidden,
        embedding_size=embedding_size,
        loss=loss,
        loss_params=_loss_params(loss_param or []),
        tcm=use_tcm,
        margins=margins.value,
        **_tcm_options(use_tcm, margins, given),
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        m_per_class=m_per_class,
        seed=seed,
        val_ratio=val_ratio,
        val_seed=val_seed,
        select=select.value,
    )
    if val_labels is not None and val is None:
        raise TcdmlInputError(f"--val-labels {val_labels}: only with --val")
    from tcdml.adapt.train import check_loss_name

    check_loss_name(settings.loss)
    inputs = [path for path in (train_file, labels, val, val_labels) if path is not None]
    check_output_dir(output, force, inputs)  # --force never replaces a folder holding an input
    from tcdml.io.embedding_inputs import read_embeddings

    data = read_embeddings(train_file, labels)
    val_data = read_embeddings(val, val_labels) if val is not None else None
    if val_data is not None and val_data.embeddings.shape[1] != data.embeddings.shape[1]:
        raise TcdmlInputError(
            f"--val {val}: embeddings of dimension {val_data.embeddings.shape[1]}, expected "
            f"{data.embeddings.shape[1]} like {train_file}"
        )
    from tcdml.adapt.folder import write_adapter_dir
    from tcdml.adapt.train import train_adapter

    extra: dict[str, Any] = {}
    if val_data is not None:
        extra = {"val_embeddings": val_data.embeddings, "val_labels": val_data.labels}
        extra.update(val_is_query=val_data.is_query, val_is_gallery=val_data.is_gallery)
    with about(train_file if val is None else f"{train_file} (--val {val})"):
        result = train_adapter(data.embeddings, data.labels, settings, progress=progress, **extra)
    write_adapter_dir(output, result.head, result.meta)
    summary = {"adapter": str(output), **result.to_dict(), "seconds": result.seconds}
    if output_format is OutputFormat.json:
        print_json(summary)
        return
    print_table(f"tcdml adapt train {train_file.name}", _rows(result, output))


def _rows(result: Any, output: Path) -> list[tuple[str, object]]:
    """The table of ``adapt train``: the verdict, then validation R@1 / OPIS of the input and each epoch."""
    rows: list[tuple[str, object]] = [("adapter", str(output)), ("result", result.message())]
    scores = [("input", result.input_score)] if result.input_score is not result.epochs[0] else []
    scores += [(f"epoch {score.epoch}", score) for score in result.epochs]
    for name, score in scores:
        kept = " (kept)" if score is result.chosen else ""
        rows.append((f"{name}{kept}", f"R@1 {score.recall_at_1:.4f}, OPIS {score.opis:.4g}"))
    return rows


@adapt_app.command("apply")
def apply(
    folder: Annotated[Path, typer.Argument(help="Adapter folder written by tcdml adapt train.")],
    source: EmbeddingInput,
    output: Annotated[Path, typer.Option("--output", "-o", help="Embedding file to write (.npz).")],
    labels: LabelsOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Transform an embedding file with an adapter; labels, ids and query/gallery masks are kept."""
    from tcdml.adapt.apply import apply_file
    from tcdml.io.outputs import OutputSet

    inputs = [folder, source, *filter(None, [labels])]  # the adapter's own files are inputs too
    OutputSet(inputs=inputs).check_file(output, "--output")  # checked before the adapter loads
    summary = apply_file(folder, source, output, labels)
    if output_format is OutputFormat.json:
        print_json(summary)
    else:
        print_table(f"tcdml adapt apply {source.name}", list(summary.items()))
