"""Losses across ``torch.distributed`` processes: the scaling rule (gathers: ``tcdml.distributed``).

``DistributedLoss(loss)`` on process ``r`` of ``N`` gathers every process's embeddings and labels, and
computes ``loss`` with its own batch as anchors and the gathered set as references (its own rows excluded as
self pairs).

Scaling rule (exact for tcdml losses, i.e. TCM, Smooth-AP, Recall@k surrogate and the TCM part of
``with_tcm``): every loss is ``sum_k w_k * numerator_k / count_k`` (``base.py``). Process ``r`` returns

    loss_r = N * sum_k w_k * numerator_k,r / (sum_q count_k,q)

with the counts summed over all processes. Then ``mean_r loss_r`` is exactly the loss of one process on the
concatenated batch of N x B, and since the gather's backward sums each process's gradient for a row back to
the process that owns it, DDP's gradient averaging (``1/N sum_r``) yields exactly that loss's gradient. To
log the global loss, average ``loss_r`` over processes. A PML base loss (no separate counts) contributes its
own per-process value, so ``mean_r loss_r`` averages it over processes: exact when it is a mean over anchors
with equal batches.
"""

from __future__ import annotations

from torch import Tensor, nn

from tcdml.distributed import all_reduce_sum, gather_rows, gather_with_grad, rank_and_world

from .base import reduce_terms
from .pml import call_loss_terms
from .similarity import IndicesTuple


class DistributedLoss(nn.Module):
    """``loss`` over all processes' embeddings, scaled so N processes x B train like 1 process x N*B.

    ``forward(embeddings, labels, indices_tuple=None)``; see the module docstring for the scaling rule. Works
    unchanged (no communication) outside a process group. Wrap a ``with_memory`` loss to share one memory of
    every process's batches.
    """

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, embeddings: Tensor, labels: Tensor, indices_tuple: IndicesTuple = None) -> Tensor:
        """This process's share ``loss_r`` of the global loss (module docstring)."""
        world = rank_and_world()[1]
        if world == 1:
            terms = call_loss_terms(self.loss, embeddings, labels, indices_tuple)
            return reduce_terms(terms)
        labels = labels.to(embeddings.device)
        all_emb, offset = gather_with_grad(embeddings)
        all_labels = gather_rows(labels)
        terms = call_loss_terms(self.loss, embeddings, labels, indices_tuple, all_emb, all_labels, offset)
        return reduce_terms(terms, count_reducer=all_reduce_sum, scale=float(world))
