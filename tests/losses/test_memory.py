"""Cross-batch memory: ring buffer, self-pair exclusion, agreement with explicit references and with PML."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.losses import ArcFaceLoss, ContrastiveLoss, CrossBatchMemory

from tcdml.losses import EmbeddingMemory, SmoothAPLoss, TCMLoss, with_memory, with_tcm
from tests.losses.brute_losses import tcm as brute_tcm


def batches(count: int, size: int = 8, dim: int = 6, classes: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(size, dim, generator=g, dtype=torch.float64),
            torch.randint(0, classes, (size,), generator=g),
        )
        for _ in range(count)
    ]


def test_ring_buffer_slots_and_contents() -> None:
    memory = EmbeddingMemory(10)
    x = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    assert memory.enqueue(x[:4], torch.arange(4)).tolist() == [0, 1, 2, 3]
    assert len(memory) == 4 and memory.contents()[0].shape == (4, 2)
    assert memory.enqueue(x, torch.arange(6)).tolist() == [4, 5, 6, 7, 8, 9]
    assert memory.enqueue(x[:4], torch.arange(4)).tolist() == [0, 1, 2, 3]  # wraps over the oldest
    emb, labels = memory.contents()
    assert len(memory) == 10 and labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 5]
    assert not emb.requires_grad
    with pytest.raises(ValueError, match="smaller than the batch"):
        memory.enqueue(torch.zeros(11, 2), torch.zeros(11, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        EmbeddingMemory(3).contents()
    assert "embeddings" not in memory.state_dict()


def test_tcm_with_memory_matches_brute_force_and_excludes_self() -> None:
    loss_fn = with_memory(TCMLoss(margin_pos=0.6, margin_neg=0.1), memory_size=20)
    arrived_emb, arrived_labels = [], []
    for emb, labels in batches(4):
        arrived_emb.append(emb)
        arrived_labels.append(labels)
        x = emb.clone().requires_grad_()
        got = loss_fn(x, labels)
        # simulate the ring buffer: arrival a sits in slot a % 20
        everything, every_label = torch.cat(arrived_emb), torch.cat(arrived_labels)
        filled = min(len(everything), 20)
        ref, ref_labels = torch.zeros(filled, 6, dtype=emb.dtype), torch.zeros(filled, dtype=torch.long)
        for a in range(len(everything)):
            ref[a % 20], ref_labels[a % 20] = everything[a], every_label[a]
        torch.testing.assert_close(loss_fn.memory.contents()[0], ref)
        self_cols = [a % 20 for a in range(len(everything) - 8, len(everything))]
        expected = brute_tcm(emb, labels, ref, ref_labels, self_cols, mp=0.6, mn=0.1)
        torch.testing.assert_close(got, expected)
        got.backward()
        assert torch.isfinite(x.grad).all()


def test_contrastive_with_memory_matches_pml_cross_batch_memory() -> None:
    ours = with_memory(ContrastiveLoss(), memory_size=24)
    theirs = CrossBatchMemory(ContrastiveLoss(), embedding_size=6, memory_size=24)
    for emb, labels in batches(5):
        torch.testing.assert_close(ours(emb.float(), labels), theirs(emb.float(), labels))


def test_composite_with_memory_and_reference_enqueue() -> None:
    loss_fn = with_memory(with_tcm(SmoothAPLoss()), memory_size=32)
    for emb, labels in batches(3, seed=1):
        assert torch.isfinite(loss_fn(emb, labels))
    # ref_emb (e.g. every process's batch, gathered) is what gets enqueued; self_index locates the batch in it
    memory_loss = with_memory(TCMLoss(), memory_size=64)
    (emb, labels), (other, other_labels) = batches(2, seed=2)
    gathered, gathered_labels = torch.cat([other, emb]), torch.cat([other_labels, labels])
    got = memory_loss(emb, labels, ref_emb=gathered, ref_labels=gathered_labels, self_index=8)
    expected = TCMLoss()(emb, labels, ref_emb=gathered, ref_labels=gathered_labels, self_index=8)
    torch.testing.assert_close(got, expected)
    assert len(memory_loss.memory) == 16


def test_memory_rejects_losses_without_reference_support() -> None:
    with pytest.raises(ValueError, match="cannot use a reference set"):
        with_memory(ArcFaceLoss(num_classes=3, embedding_size=4), 16)
