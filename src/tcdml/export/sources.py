"""What ``tcdml export`` exports: a ``tcdml train`` checkpoint or a ``tcdml adapt train`` folder.

- image checkpoints (timm backbones, ``small_cnn``, ``efficientnet_lite0``): the ``EmbeddingModel`` itself,
  input a float32 (N, 3, S, S) batch prepared as the checkpoint's test transform does (resize the short side
  to ``resize_size``, centre crop to ``image_size``, scale to [0, 1], normalise with the model's mean/std);
- text checkpoints (``minilm_l6``): ``TextEmbedder``, the transformer + masked mean pooling + head +
  normalisation on token ids and attention mask, with the backbone's ``tokenizer.json`` copied alongside;
- adapter folders (a folder holding ``adapter.json``): the head ``tcdml.adapt.load_adapter`` builds, input
  (N, input_size) float32 embeddings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tcdml.adapt.folder import ADAPTER_JSON
from tcdml.deploy.formats import check_export_format
from tcdml.deploy.manifest import sha256_file
from tcdml.errors import TcdmlInputError
from tcdml.export.calibration import CalibrationRecord, read_calibration
from tcdml.export.writer import ExportResult, check_export_folder, export_module

#: Texts the text model is traced and checked on (real HS-code descriptions, of unequal lengths).
CHECK_TEXTS = (
    "Live horses",
    "Coffee, not roasted, not decaffeinated",
    "Woven fabrics of cotton, containing 85 % or more by weight of cotton, weighing not more than 200 g/m2",
)


class TextEmbedder(nn.Module):
    """``forward(input_ids, attention_mask)`` -> (B, D) unit rows: what ``EmbeddingModel`` computes for texts
    with a ``SentenceEncoder`` backbone (mean of the last hidden states over real tokens, head, normalise),
    minus the tokenisation."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = model.backbone.encoder
        self.head = model.head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from tcdml.models.text_encoder import masked_mean

        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state.float()
        return F.normalize(self.head(masked_mean(hidden, attention_mask)).float(), dim=1)


def _seeded(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def _check_cheap(
    source: str | os.PathLike,
    calibration: str | os.PathLike,
    out_dir: str | os.PathLike,
    force: bool,
    format: str,
    asnorm: str | os.PathLike | None,
) -> tuple[Path, CalibrationRecord]:
    """The cheap checks, before any model loads: the format, the calibration file (and its AS-norm cohort),
    the output folder."""
    check_export_format(format)
    record = read_calibration(calibration, asnorm)
    cohort = [record.cohort.path] if record.cohort is not None else []
    check_export_folder(out_dir, force, [source, record.path, *cohort])
    return Path(source), record


def export_checkpoint(
    checkpoint: str | os.PathLike,
    calibration: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    format: str = "auto",
    asnorm: str | os.PathLike | None = None,
) -> ExportResult:
    """Export a ``tcdml train`` checkpoint's model with ``calibration``'s threshold (module docstring);
    ``asnorm``: the cohort embedding file of a threshold calibrated on AS-norm scores, shipped with it."""
    from tcdml.models.text_encoder import SentenceEncoder
    from tcdml.training.checkpoint import model_from_checkpoint

    checkpoint, record = _check_cheap(checkpoint, calibration, out_dir, force, format, asnorm)
    model, config = model_from_checkpoint(checkpoint)
    record.check_embedding_size(config.model.embedding_size, f"{checkpoint} (model.embedding_size)")
    source = {
        "kind": "checkpoint",
        "file": checkpoint.name,
        "sha256": sha256_file(checkpoint),
        "backbone": config.model.backbone,
    }
    backbone = model.backbone
    if isinstance(backbone, SentenceEncoder):
        tokens = backbone.tokenizer(
            list(CHECK_TEXTS), truncation=True, max_length=backbone.max_length, padding=True
        )
        ids = torch.tensor(tokens["input_ids"], dtype=torch.int64)
        mask = torch.tensor(tokens["attention_mask"], dtype=torch.int64)
        tokenizer_file = backbone.path / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise TcdmlInputError(f"{tokenizer_file}: missing (the text model's tokenizer, exported with it)")
        contract = {
            "kind": "text",
            "tokenizer": "tokenizer.json",
            "max_length": backbone.max_length,
            "pad_id": int(backbone.tokenizer.pad_token_id or 0),
            "pad_token": str(backbone.tokenizer.pad_token or "[PAD]"),
            "dtype": "int64",
        }
        return export_module(
            TextEmbedder(model).eval(),
            (ids[:2, : int(mask[:2].sum(dim=1).max())], mask[:2, : int(mask[:2].sum(dim=1).max())]),
            contract,
            record,
            out_dir,
            force=force,
            format=format,
            check_input=(ids, mask),
            extra_files={"tokenizer.json": tokenizer_file},
            source=source,
            inputs=[checkpoint],
        )
    size = config.data.image_size
    contract = {
        "kind": "image",
        "image_size": size,
        "resize_size": config.data.transform_config().test_resize,
        "mean": [float(v) for v in model.mean],
        "std": [float(v) for v in model.std],
        "channels": "RGB",
        "layout": "NCHW",
        "dtype": "float32",
        "preprocess": "resize short side to resize_size (bilinear, antialias), centre crop to image_size, "
        "pixel / 255, (x - mean) / std",
    }
    return export_module(
        model,
        _seeded((2, 3, size, size)),
        contract,
        record,
        out_dir,
        force=force,
        format=format,
        check_input=_seeded((3, 3, size, size)),
        source=source,
        inputs=[checkpoint],
    )


def export_adapter(
    folder: str | os.PathLike,
    calibration: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    format: str = "auto",
    asnorm: str | os.PathLike | None = None,
) -> ExportResult:
    """Export the head of a ``tcdml adapt train`` folder: input (N, input_size) float32 embeddings
    (``asnorm``: as ``export_checkpoint``)."""
    from tcdml.adapt import load_adapter

    folder, record = _check_cheap(folder, calibration, out_dir, force, format, asnorm)
    module, meta = load_adapter(folder)
    width = int(meta["input_size"])
    record.check_embedding_size(int(meta["embedding_size"]), f"{folder / ADAPTER_JSON} (embedding_size)")
    source: dict[str, Any] = {
        "kind": "adapter",
        "file": folder.name,
        "sha256": sha256_file(folder / ADAPTER_JSON),
        "adapter": meta.get("kind"),
    }
    return export_module(
        module,
        _seeded((2, width)),
        {"kind": "embedding", "input_size": width, "dtype": "float32"},
        record,
        out_dir,
        force=force,
        format=format,
        check_input=_seeded((5, width)),
        source=source,
        inputs=[folder],
    )


def export_path(
    source: str | os.PathLike,
    calibration: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    format: str = "auto",
    asnorm: str | os.PathLike | None = None,
) -> ExportResult:
    """``export_adapter`` for a folder holding ``adapter.json``, else ``export_checkpoint``."""
    source = Path(source)
    if source.is_dir():
        if not (source / ADAPTER_JSON).is_file():
            raise TcdmlInputError(
                f"{source}: is a folder without {ADAPTER_JSON}, expected a tcdml train checkpoint or an "
                "adapter folder"
            )
        return export_adapter(source, calibration, out_dir, force=force, format=format, asnorm=asnorm)
    return export_checkpoint(source, calibration, out_dir, force=force, format=format, asnorm=asnorm)
