"""The evaluation split across ``torch.distributed`` processes (GPUs or CPU workers).

Every rank passes its own shard of the embedding set; the shards are gathered (in rank order), each rank
runs the pass over its share of query rows (``tcdml.metrics.engine``), and the partial states are combined
by ``PassState.reduce`` over an ``all_reduce`` sum. Every rank returns the same result, equal to a
single-process ``evaluate`` of the concatenated shards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from tcdml.distributed import comm_device, gather_rows, rank_and_world, rank_share
from tcdml.metrics.engine import (
    EvaluationSettings,
    check_evaluation,
    finish,
    prepare_inputs,
    resolve_settings,
    run_prepared,
)
from tcdml.metrics.result import EvaluationResult


def evaluate_distributed(
    embeddings: Any,
    labels: Any,
    *,
    is_query: Any = None,
    is_gallery: Any = None,
    group: Any = None,
    settings: EvaluationSettings | None = None,
    **overrides: Any,
) -> EvaluationResult:
    """``evaluate`` over the union of every rank's shard; call it on all ranks of ``group`` (collective)."""
    settings = resolve_settings(EvaluationSettings, settings, overrides)
    device = comm_device(group)
    local = torch.as_tensor(embeddings)
    # The gathered set stays on this rank's device (a GPU in training): the pass runs there, as in evaluate.
    embeddings = gather_rows(local.to(device), group).to(local.device)
    labels = _gather(torch.as_tensor(labels), group, device).numpy()
    masks = [
        None if m is None else _gather(torch.as_tensor(m), group, device).numpy()
        for m in (is_query, is_gallery)
    ]
    prepared = prepare_inputs(embeddings, labels, masks[0], masks[1], settings)
    check_evaluation(prepared, settings)
    rows = rank_share(prepared.num_queries, *rank_and_world(group))
    state = run_prepared(prepared, settings, rows, ks=settings.ks)
    return finish(prepared, state.reduce(lambda array: _all_reduce_sum(array, group, device)), settings)


def _gather(local: torch.Tensor, group: Any, device: torch.device) -> torch.Tensor:
    """Concatenate every rank's tensor along dim 0 (shards may differ in length); result on the CPU."""
    return gather_rows(local.to(device), group).cpu()


def _all_reduce_sum(array: np.ndarray, group: Any, device: torch.device) -> np.ndarray:
    """The element-wise sum of ``array`` (float64) over every rank of ``group``; on the CPU."""
    tensor = torch.as_tensor(array, device=device)
    dist.all_reduce(tensor, group=group)
    return tensor.cpu().numpy()
