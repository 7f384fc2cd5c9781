"""``tcdml train CONFIG.yaml [KEY=VALUE ...]`` and ``tcdml embed CHECKPOINT --data ROOT -o out.npz`` (or
``tcdml embed --backbone NAME --dataset NAME --data ROOT -o start.npz``: the untrained starting point).

Thin: parse, call ``tcdml.training``, print a JSON summary; the help's lists of datasets and backbones are the
registries'. Lightning and timm load inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tcdml.cli.options import FeatureCacheOption, NoFeatureCacheOption, feature_cache_setting
from tcdml.cli.output import print_json
from tcdml.data.registry import DATASETS, needs_root
from tcdml.models.embedding import LOCAL_BACKBONES

#: The datasets a package ships (no ``--data`` needed), and the others, as ``embed``'s help lists them.
PACKAGED = [name for name in DATASETS if not needs_root(name)]


def train(
    config: Annotated[
        Path, typer.Argument(help="Experiment YAML (e.g. configs/experiment/cub200-....yaml).")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Overrides KEY.SUB=VALUE (YAML values), e.g. trainer.max_epochs=2."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue from this checkpoint (e.g. RUN/checkpoints/last.ckpt).")
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress", help="Progress bars (default: the config's trainer.progress_bar)."
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Check the config, data and loss (and --resume) and print the config resolved (runtime loss "
            "parameters filled), as JSON; train nothing.",
        ),
    ] = False,
    feature_cache: FeatureCacheOption = None,
    no_feature_cache: NoFeatureCacheOption = False,
) -> None:
    """Train an embedding model from a config; checkpoints and logs go to its output_dir."""
    import dataclasses

    from tcdml.models.embedding import random_weights_note
    from tcdml.training.config_files import load_config

    cache = feature_cache_setting(feature_cache, no_feature_cache)
    overrides = [
        *(overrides or []),
        *([] if progress is None else [f"trainer.progress_bar={str(progress).lower()}"]),
    ]
    settings = load_config(config, overrides)  # every bad value: one line, before Lightning loads
    if cache is not None:
        settings = dataclasses.replace(settings, data=dataclasses.replace(settings.data, feature_cache=cache))
    note = random_weights_note(settings.model)  # said once every check has passed (an error is one line)
    if check:
        from tcdml.training.build import build_loss, prepare
        from tcdml.training.runtime import check_resume, check_runtime

        check_runtime(settings)
        if resume is not None:
            check_resume(settings, resume)
        settings = prepare(settings)[0]  # reads the splits, fills the loss's num_classes / embedding_size
        build_loss(settings)
        if note:
            typer.echo(f"tcdml: note: {note}", err=True)
        print_json(settings.to_dict())
        return
    from tcdml.training.trainer import fit

    result = fit(settings, resume=resume, callbacks=[] if note is None else [_note_at_start(note)])
    if result.global_rank == 0:
        print_json(result.to_dict())


def _note_at_start(note: str) -> Any:
    """A Lightning callback that prints ``tcdml: note: ...`` once training starts (first process only)."""
    import pytorch_lightning as pl

    class Note(pl.Callback):
        def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if trainer.is_global_zero:
                typer.echo(f"tcdml: note: {note}", err=True)

    return Note()


def embed(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Embedding file to write (.npz); its folder must exist.")
    ],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Dataset root (for --dataset csv: the CSV file; default: the checkpoint's; none for "
            f"the datasets a package ships: {', '.join(PACKAGED)}).",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Argument(help="A checkpoint written by tcdml train (or none, with --backbone).")
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            help="Embed with an untrained starting point instead of a checkpoint: "
            f"{', '.join(LOCAL_BACKBONES)} or timm:NAME (its pooled features, L2-normalised, no head)."
        ),
    ] = None,
    pretrained: Annotated[
        Path | None, typer.Option(help="Weights file of --backbone (.safetensors or a torch file).")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Dataset layout (default: the checkpoint's; required with --backbone): "
            + ", ".join(DATASETS)
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="train, test or all.")] = "test",
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 128,
    num_workers: Annotated[int, typer.Option(help="Data-loading worker processes.")] = 4,
    device: Annotated[str, typer.Option(help="Compute device, e.g. cuda.")] = "cpu",
    feature_cache: FeatureCacheOption = None,
    no_feature_cache: NoFeatureCacheOption = False,
    start: Annotated[
        bool,
        typer.Option(
            "--start",
            help="With CHECKPOINT: embed its run's untrained starting point instead (its backbone's pooled "
            "features, no head) on the same samples and image size: the A of tcdml compare A B.",
        ),
    ] = False,
) -> None:
    """Embed a dataset split with a trained model (CHECKPOINT) or the untrained starting point (--backbone,
    or CHECKPOINT --start) into an embedding file (for evaluate / calibrate / compare)."""
    from tcdml.io.outputs import OutputSet

    cache = feature_cache_setting(feature_cache, no_feature_cache)
    # The output is checked before the model loads; it is written once, atomically, at the end.
    OutputSet(inputs=[path for path in (checkpoint, data, pretrained) if path is not None]).check_file(
        output, "--output"
    )
    from tcdml.training.embed import backbone_name, embed_dataset

    if backbone is not None and checkpoint is None and pretrained is None:
        if backbone_name(backbone) not in LOCAL_BACKBONES:  # an unknown name: its one-line error first
            typer.echo(
                f"tcdml: note: --backbone {backbone} starts from random weights (no --pretrained)", err=True
            )
    summary = embed_dataset(
        checkpoint,
        data,
        output,
        dataset=dataset,
        split=split,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        backbone=backbone,
        pretrained=pretrained,
        feature_cache=cache,
        start=start,
    )
    print_json(summary)
