"""Apply an adapter to embeddings: ``apply_adapter`` (arrays) and ``apply_file`` (an embedding file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from tcdml.errors import TcdmlInputError


def input_size_of(head: nn.Module) -> int:
    """The input dimension of an adapter head (its first linear layer's ``in_features``)."""
    for module in head.modules():
        if isinstance(module, nn.Linear):
            return int(module.in_features)
    raise TcdmlInputError(f"{type(head).__name__}: not an adapter head (no linear layer)")


def apply_adapter(
    adapter: str | os.PathLike | nn.Module, embeddings: Any, name: str = "embeddings"
) -> np.ndarray:
    """(N, D_out) float32 L2-normalised rows: ``adapter`` (a folder written by ``tcdml adapt train``, or a
    head) applied to (N, D_in) ``embeddings``; a NaN row or another dimension is one ``TcdmlInputError``."""
    from tcdml.adapt.folder import load_adapter
    from tcdml.adapt.head import transform
    from tcdml.metrics.validation import as_embeddings

    head = adapter if isinstance(adapter, nn.Module) else load_adapter(adapter)[0]
    x = as_embeddings(embeddings, name)
    expected = input_size_of(head)
    if x.shape[1] != expected:
        raise TcdmlInputError(
            f"{name}: dimension {x.shape[1]}, expected {expected} (the adapter's input_size)"
        )
    return transform(head, x).numpy()


def apply_file(
    folder: str | os.PathLike,
    source: str | os.PathLike,
    output: str | os.PathLike,
    labels: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Transform the embedding file ``source`` (``.npz``; ``.npy`` + ``labels``, ``.parquet``, ``.csv``) with
    the adapter in ``folder`` and write ``output`` (``.npz``, atomically) with the labels, ids and masks kept.
    Returns a summary; the adapter's ``input_size`` is checked against the file's embeddings before any is
    transformed."""
    from tcdml.adapt.folder import load_adapter
    from tcdml.io.embedding_inputs import read_embeddings
    from tcdml.io.embeddings_file import save_embeddings_file

    head, meta = load_adapter(folder)
    data = read_embeddings(source, labels)
    if data.embeddings.shape[1] != meta["input_size"]:
        raise TcdmlInputError(
            f"{source}: embeddings of dimension {data.embeddings.shape[1]}, expected {meta['input_size']} "
            f"(the input_size of the adapter in {folder})"
        )
    adapted = apply_adapter(head, data.embeddings, name=f"{os.fspath(source)}: embeddings")
    save_embeddings_file(
        output, adapted, data.labels, ids=data.ids, is_query=data.is_query, is_gallery=data.is_gallery
    )
    return {
        "adapter": os.fspath(folder),
        "input": os.fspath(source),
        "output": os.fspath(Path(output)),
        "num_samples": len(adapted),
        "input_size": int(meta["input_size"]),
        "embedding_size": int(adapted.shape[1]),
    }
