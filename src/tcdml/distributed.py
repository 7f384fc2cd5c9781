"""What the training side needs from ``torch.distributed``: the process group, gathers, rank shares.

Used by the losses (gather with gradient), the batch sampler and the evaluation loader (this process's rank
and share of rows) and the distributed evaluator (gather without gradient, the communication device).
Outside a process group every function works as for one process (rank 0 of 1) and communicates nothing.

- ``rank_and_world(group)``: ``(rank, world size)``; ``(0, 1)`` without a process group.
- ``rank_share(n, rank, world)``: the contiguous rows ``[n*rank // world, n*(rank+1) // world)`` of ``n``
  that process ``rank`` owns; the shares of ranks ``0 .. world-1`` tile ``0 .. n-1`` in order and differ in
  size by at most one.
- ``gather_rows(x, group)``: every rank's ``x`` concatenated along dim 0 in rank order (row counts may
  differ; padded to the longest for ``all_gather``), no gradient.
- ``gather_with_grad(x)``: the same with a gradient that flows back to the process that owns each row.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank_and_world(group: Any = None) -> tuple[int, int]:
    """This process's rank in ``group`` (default: the world) and the group's size; ``(0, 1)`` without one."""
    if not is_distributed():
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def rank_share(n: int, rank: int, world: int) -> range:
    """The rows of ``n`` that process ``rank`` of ``world`` owns (module docstring)."""
    return range(n * rank // world, n * (rank + 1) // world)


def comm_device(group: Any = None) -> torch.device:
    """The device collectives of ``group`` move tensors on: NCCL the current CUDA device, others the CPU."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _all_lengths(length: int, device: torch.device, group: Any = None) -> list[int]:
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(dist.get_world_size(group))]
    dist.all_gather(sizes, torch.tensor([length], dtype=torch.long, device=device), group=group)
    return [int(s.item()) for s in sizes]


def _gather_padded(x: Tensor, lengths: list[int], group: Any = None) -> Tensor:
    """All processes' ``x`` (row counts ``lengths``): pad to the longest, all_gather, concatenate."""
    padded = x.new_zeros((max(lengths), *x.shape[1:]))
    padded[: len(x)] = x
    parts = [torch.empty_like(padded) for _ in lengths]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([part[:n] for part, n in zip(parts, lengths, strict=True)])


def gather_rows(x: Tensor, group: Any = None) -> Tensor:
    """Every rank's ``x`` concatenated along dim 0 in rank order (no gradient); ``x`` itself for one process.

    Collective: call it on every rank of ``group``. ``x`` must be on the group's ``comm_device``.
    """
    if rank_and_world(group)[1] == 1:
        return x
    return _gather_padded(x, _all_lengths(len(x), x.device, group), group)


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
    rank, world = rank_and_world()
    if world == 1:
        return x, 0
    lengths = _all_lengths(len(x), x.device)
    return _GatherWithGrad.apply(x, lengths, sum(lengths[:rank])), sum(lengths[:rank])


def all_reduce_sum(x: Tensor) -> Tensor:
    """The sum of ``x`` over all processes (a new tensor; ``x`` is left as it is)."""
    total = x.clone()
    if rank_and_world()[1] > 1:
        dist.all_reduce(total)
    return total
