"""Losses across ``torch.distributed`` processes: gather with gradients, and the scaling rule.

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

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .base import reduce_terms
from .pml import call_loss_terms
from .similarity import IndicesTuple


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def _all_lengths(length: int, device: torch.device) -> list[int]:
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([length], dtype=torch.long, device=device))
    return [int(s.item()) for s in sizes]


def _gather_padded(x: Tensor, lengths: list[int]) -> Tensor:
    """All processes' ``x`` (row counts ``lengths`` may differ): pad, all_gather, concatenate."""
    padded = x.new_zeros((max(lengths), *x.shape[1:]))
    padded[: len(x)] = x
    parts = [torch.empty_like(padded) for _ in lengths]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, lengths, strict=True)])


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, lengths: list[int], start: int) -> Tensor:  # type: ignore[override]
        ctx.rows = (start, start + len(x))
        return _gather_padded(x, lengths)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every process's loss touches every row: sum, then keep our own rows
        return grad[ctx.rows[0] : ctx.rows[1]], None, None


def gather_with_grad(x: Tensor) -> tuple[Tensor, int]:
    """Concatenate ``x`` from all processes in rank order; return it and this process's row offset in it.

    The gradient of the gathered tensor is summed over processes and each process receives its own rows'
    part, so the gradient of ``sum_r loss_r`` reaches every process's own embeddings. Outside a process
    group: ``(x, 0)``. Batches of different sizes are allowed.
    """
    if not is_distributed() or dist.get_world_size() == 1:
        return x, 0
    lengths = _all_lengths(len(x), x.device)
    start = sum(lengths[: dist.get_rank()])
    return _GatherWithGrad.apply(x, lengths, start), start


def gather_labels(labels: Tensor) -> Tensor:
    """Concatenate ``labels`` from all processes in rank order (no gradient)."""
    if not is_distributed() or dist.get_world_size() == 1:
        return labels
    return _gather_padded(labels, _all_lengths(len(labels), labels.device))


def _all_reduce_sum(count: Tensor) -> Tensor:
    total = count.clone()
    dist.all_reduce(total)
    return total


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
        if not is_distributed() or dist.get_world_size() == 1:
            terms = call_loss_terms(self.loss, embeddings, labels, indices_tuple)
            return reduce_terms(terms)
        labels = labels.to(embeddings.device)
        all_emb, offset = gather_with_grad(embeddings)
        all_labels = gather_labels(labels)
        terms = call_loss_terms(self.loss, embeddings, labels, indices_tuple, all_emb, all_labels, offset)
        return reduce_terms(terms, count_reducer=_all_reduce_sum, scale=float(dist.get_world_size()))
