"""Losses across ``torch.distributed`` processes: gather with gradients, and the scaling rule.

``DistributedLoss(loss)`` on process ``r`` of ``N`` gathers every process's embeddings and labels, and computes
``loss`` with its own batch as anchors and the gathered set as references (its own rows excluded as self pairs).

Scaling rule (exact for tcdml losses, i.e. TCM, Smooth-AP, Recall@k surrogate and the TCM part of ``with_tcm``):
every loss is ``sum_k w_k * numerator_k / count_k`` (``base.py``). Process ``r`` returns

    loss_r = N * sum_k w_k * numerator_k,r / (sum_q count_k,q)

with the counts summed over all processes. Then ``mean_r loss_r`` is exactly the loss of one process on the
concatenated batch of N x B, and since the gather's backward sums each process's gradient for a row back to the
process that owns it, DDP's gradient averaging (``1/N sum_r``) yields exactly that loss's gradient. To log the
global loss, average ``loss_r`` over processes. A PML base loss (no separate counts) contributes its own per-process
value, so ``mean_r loss_r`` averages it over processes: exact when it is a mean over anchors with equal batches.
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


def _gather_padded(x: Tensor) -> tuple[list[Tensor], list[int]]:
    """All processes' ``x`` (rows may differ in number): pad to the longest, all_gather, return unpadded parts."""
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([len(x)], device=x.device))
    lengths = [int(s.item()) for s in sizes]
    padded = x.new_zeros((max(lengths), *x.shape[1:]))
    padded[: len(x)] = x
    parts = [torch.empty_like(padded) for _ in lengths]
    dist.all_gather(parts, padded.contiguous())
    return [p[:n] for p, n in zip(parts, lengths, strict=True)], lengths


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        parts, lengths = _gather_padded(x)
        rank = dist.get_rank()
        ctx.start, ctx.stop = sum(lengths[:rank]), sum(lengths[: rank + 1])
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every process's loss touches every row: sum, then keep our own rows
        return grad[ctx.start : ctx.stop]


def gather_with_grad(x: Tensor) -> tuple[Tensor, int]:
    """Concatenate ``x`` from all processes in rank order; return it and this process's row offset in it.

    The gradient of the gathered tensor is summed over processes and each process receives its own rows'
    part, so the gradient of ``sum_r loss_r`` reaches every process's own embeddings. Outside a process
    group: ``(x, 0)``. Batches of different sizes are allowed.
    """
    if not is_distributed() or dist.get_world_size() == 1:
        return x, 0
    gathered = _GatherWithGrad.apply(x)
    rank = dist.get_rank()
    sizes, _ = _gather_padded(torch.tensor([len(x)], device=x.device))
    return gathered, int(sum(int(s.item()) for s in sizes[:rank]))


def gather_labels(labels: Tensor) -> Tensor:
    """Concatenate ``labels`` from all processes in rank order (no gradient)."""
    if not is_distributed() or dist.get_world_size() == 1:
        return labels
    return torch.cat(_gather_padded(labels)[0])


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
