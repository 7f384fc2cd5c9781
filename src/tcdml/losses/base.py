"""The contract every tcdml loss follows: a list of loss terms, reduced here.

A loss is a sum of terms ``weight * numerator / max(count, 1)`` (a mean over a set of pairs or queries, or a
value that is already reduced when ``count is None``). Keeping numerator and count apart is what lets the
distributed wrapper normalise by the count over ALL processes, so that N processes with batch B compute
exactly the loss of one process with batch N x B (see ``distributed.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from tcdml.errors import TcdmlInputError

from .similarity import IndicesTuple, PairBatch, SelfIndex, prepare_pairs


class LossTerm(NamedTuple):
    """One loss term: ``weight * numerator / max(count, 1)``; ``weight * numerator`` if count is None."""

    numerator: Tensor
    count: Tensor | None
    weight: float = 1.0


def reduce_terms(
    terms: list[LossTerm],
    count_reducer: Callable[[Tensor], Tensor] | None = None,
    scale: float = 1.0,
) -> Tensor:
    """``sum_k w_k * scale * num_k / max(count_reducer(count_k), 1)``, plus ``w_k * num_k`` if no count.

    ``count_reducer`` (e.g. a sum over processes) and ``scale`` only touch counted terms. The result is a
    float32 (or float64) 0-d tensor on the graph of the numerators.
    """
    if not terms:
        raise TcdmlInputError("a loss produced no terms")
    total: Tensor | None = None
    for numerator, count, weight in terms:
        # Scalar arithmetic only where needed: each op is also an autograd node on every step.
        value = numerator.to(torch.promote_types(numerator.dtype, torch.float32))
        if count is not None:
            counts = count if count_reducer is None else count_reducer(count)
            value = value / counts.clamp(min=1)
            if scale != 1.0:
                value = value * scale
        if weight != 1.0:
            value = value * weight
        total = value if total is None else total + value
    assert total is not None
    return total


class LossModule(nn.Module):
    """Base of the tcdml loss modules, called like a pytorch-metric-learning loss.

    ``loss(embeddings, labels, indices_tuple=None, ref_emb=None, ref_labels=None, *, self_index=None)``
    returns a 0-d tensor; ``compute_terms`` (same arguments) returns the unreduced ``LossTerm`` list.
    """

    def compute_terms(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
        self_index: SelfIndex = None,
    ) -> list[LossTerm]:
        """The loss terms for a batch (and optional reference set)."""
        raise NotImplementedError

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor | None = None,
        indices_tuple: IndicesTuple = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
        *,
        self_index: SelfIndex = None,
    ) -> Tensor:
        """The reduced loss (see ``compute_terms``)."""
        return reduce_terms(
            self.compute_terms(embeddings, labels, indices_tuple, ref_emb, ref_labels, self_index)
        )


class TermLoss(LossModule):
    """A loss defined on one similarity matrix: subclasses implement ``terms_from_pairs(PairBatch)``."""

    #: whether a miner's ``indices_tuple`` is meaningful for this loss
    accepts_indices_tuple: bool = False

    def terms_from_pairs(self, pairs: PairBatch) -> list[LossTerm]:
        """The loss terms of one similarity matrix and its masks."""
        raise NotImplementedError

    def compute_terms(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
        self_index: SelfIndex = None,
    ) -> list[LossTerm]:
        """Validate, build the similarity matrix once, and return the loss terms."""
        if indices_tuple is not None and not self.accepts_indices_tuple:
            raise TcdmlInputError(
                f"{type(self).__name__} does not take an indices_tuple (it ranks all pairs)"
            )
        return self.terms_from_pairs(
            prepare_pairs(embeddings, labels, indices_tuple, ref_emb, ref_labels, self_index)
        )
