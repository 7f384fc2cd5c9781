"""Losses for threshold-consistent deep metric learning.

- ``TCMLoss`` / ``tcm_loss_from_similarity``: the Threshold-Consistent Margin regulariser (docs/spec.md).
- ``with_tcm(base_loss, ...)``: any loss + TCM on one similarity matrix.
- ``build_loss`` / ``build_loss_from_config``: a loss by name (tcdml's own and every pytorch-metric-learning
  loss), with or without TCM; ``register_loss`` adds a loss to that registry (docs/extend.md).
- ``SmoothAPLoss``, ``RecallAtKSurrogateLoss``: batched ranking losses that accept reference sets.
- ``with_memory`` (cross-batch memory), ``DistributedLoss`` (torch.distributed; see ``tcdml.distributed``).
- ``propose_margins``: TCM margins from validation embeddings and a FAR / FRR target.

Names load on first use, so ``import tcdml.losses`` stays cheap (pytorch-metric-learning loads when needed).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LossModule": "base",
    "LossTerm": "base",
    "TermLoss": "base",
    "reduce_terms": "base",
    "TCMComposite": "composite",
    "with_tcm": "composite",
    "DistributedLoss": "distributed",
    "MarginProposal": "margins",
    "propose_margins": "margins",
    "CrossBatchMemoryLoss": "memory",
    "EmbeddingMemory": "memory",
    "with_memory": "memory",
    "RecallAtKSurrogateLoss": "recall_at_k",
    "recall_at_k_loss_from_similarity": "recall_at_k",
    "similarity_mixup": "recall_at_k",
    "available_losses": "registry",
    "build_loss": "registry",
    "build_loss_from_config": "registry",
    "register_loss": "registry",
    "PairMasks": "similarity",
    "similarity_matrix": "similarity",
    "SmoothAPLoss": "smooth_ap",
    "smooth_ap_loss_from_similarity": "smooth_ap",
    "TCMLoss": "tcm",
    "TCMResult": "tcm",
    "tcm_loss_from_similarity": "tcm",
}

__all__ = [
    "CrossBatchMemoryLoss",
    "DistributedLoss",
    "EmbeddingMemory",
    "LossModule",
    "LossTerm",
    "MarginProposal",
    "PairMasks",
    "RecallAtKSurrogateLoss",
    "SmoothAPLoss",
    "TCMComposite",
    "TCMLoss",
    "TCMResult",
    "TermLoss",
    "available_losses",
    "build_loss",
    "build_loss_from_config",
    "propose_margins",
    "recall_at_k_loss_from_similarity",
    "reduce_terms",
    "register_loss",
    "similarity_matrix",
    "similarity_mixup",
    "smooth_ap_loss_from_similarity",
    "tcm_loss_from_similarity",
    "with_memory",
    "with_tcm",
]

if TYPE_CHECKING:
    from .base import LossModule, LossTerm, TermLoss, reduce_terms
    from .composite import TCMComposite, with_tcm
    from .distributed import DistributedLoss
    from .margins import MarginProposal, propose_margins
    from .memory import CrossBatchMemoryLoss, EmbeddingMemory, with_memory
    from .recall_at_k import RecallAtKSurrogateLoss, recall_at_k_loss_from_similarity, similarity_mixup
    from .registry import available_losses, build_loss, build_loss_from_config, register_loss
    from .similarity import PairMasks, similarity_matrix
    from .smooth_ap import SmoothAPLoss, smooth_ap_loss_from_similarity
    from .tcm import TCMLoss, TCMResult, tcm_loss_from_similarity


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tcdml.losses' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
