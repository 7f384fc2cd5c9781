"""Cross-batch memory (Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020).

A ring buffer of the last ``memory_size`` embeddings and labels. ``with_memory(loss, memory_size)`` enqueues
each batch (detached) and then computes ``loss`` with the batch as anchors and the whole memory, the batch
included, as references; each anchor's own slot is excluded through ``self_index``. Gradients reach the
anchors only (the memory is a constant), as in the paper and in PML's ``CrossBatchMemory``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tcdml.errors import TcdmlInputError

from .base import LossModule, LossTerm
from .pml import call_loss_terms, uses_reference
from .similarity import IndicesTuple, SelfIndex, resolve_self_index


class EmbeddingMemory(nn.Module):
    """Ring buffer of detached embeddings and their labels (buffers, not saved in the ``state_dict``)."""

    def __init__(self, memory_size: int) -> None:
        super().__init__()
        if memory_size < 1:
            raise TcdmlInputError(f"memory_size must be >= 1, got {memory_size}")
        self.memory_size = int(memory_size)
        self.register_buffer("embeddings", None, persistent=False)
        self.register_buffer("labels", None, persistent=False)
        self.next_slot = 0
        self.filled = 0

    def __len__(self) -> int:
        return self.filled

    def reset(self) -> None:
        """Empty the memory."""
        self.embeddings, self.labels = None, None
        self.next_slot, self.filled = 0, 0

    def enqueue(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Write a batch over the oldest entries; returns the slots it went to, shape ``(B,)``."""
        batch = len(embeddings)
        if batch > self.memory_size:
            raise TcdmlInputError(f"memory_size {self.memory_size} is smaller than the batch of {batch}")
        if self.embeddings is None or self.embeddings.shape[1] != embeddings.shape[1]:
            self.reset()
            self.embeddings = embeddings.new_zeros(self.memory_size, embeddings.shape[1])
            self.labels = labels.new_zeros(self.memory_size)
        assert self.labels is not None
        slots = (self.next_slot + torch.arange(batch, device=self.embeddings.device)) % self.memory_size
        self.embeddings[slots] = embeddings.detach().to(self.embeddings)
        self.labels[slots] = labels.to(self.labels)
        self.next_slot = (self.next_slot + batch) % self.memory_size
        self.filled = min(self.filled + batch, self.memory_size)
        return slots

    def contents(self) -> tuple[Tensor, Tensor]:
        """The filled part: ``(embeddings, labels)`` (slots ``0 .. len(self) - 1``)."""
        if self.embeddings is None or self.labels is None:
            raise TcdmlInputError("the memory is empty")
        return self.embeddings[: self.filled], self.labels[: self.filled]


class CrossBatchMemoryLoss(LossModule):
    """``loss`` against a cross-batch memory; called with PML's contract.

    ``ref_emb`` / ``ref_labels``, when given (e.g. by ``DistributedLoss``), are what is enqueued instead of
    the batch, and ``self_index`` says where the batch lies within them; the memory then holds every process's
    batch.
    """

    def __init__(self, loss: nn.Module, memory_size: int) -> None:
        super().__init__()
        if not uses_reference(loss):
            raise TcdmlInputError(
                f"{type(loss).__name__} cannot use a reference set, so not a cross-batch memory"
            )
        self.loss = loss
        self.memory = EmbeddingMemory(memory_size)

    def compute_terms(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
        self_index: SelfIndex = None,
    ) -> list[LossTerm]:
        """Enqueue, then the wrapped loss's terms with the memory as references."""
        if labels is None:
            raise TcdmlInputError("labels are required")
        if ref_emb is None:
            slots = self.memory.enqueue(embeddings, labels)
        else:
            if ref_labels is None:
                raise TcdmlInputError("ref_emb given without ref_labels")
            ref_slots = self.memory.enqueue(ref_emb, ref_labels)
            index = resolve_self_index(self_index, len(embeddings), len(ref_emb), ref_slots.device)
            slots = torch.full((len(embeddings),), -1, dtype=torch.long, device=ref_slots.device)
            if index is not None:
                slots = torch.where(index >= 0, ref_slots[index.clamp(min=0)], slots)
        memory_emb, memory_labels = self.memory.contents()
        return call_loss_terms(self.loss, embeddings, labels, indices_tuple, memory_emb, memory_labels, slots)


def with_memory(loss: nn.Module, memory_size: int) -> CrossBatchMemoryLoss:
    """Wrap ``loss`` (tcdml or PML pair/tuple loss, or a ``with_tcm`` composite) with a cross-batch memory."""
    return CrossBatchMemoryLoss(loss, memory_size)
