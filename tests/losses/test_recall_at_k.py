"""Recall@k surrogate against a brute-force implementation of Patel et al.'s formula; similarity mixup."""

from __future__ import annotations

import pytest
import torch

from tcdml.losses import (
    PairMasks,
    RecallAtKSurrogateLoss,
    recall_at_k_loss_from_similarity,
    similarity_matrix,
    similarity_mixup,
)
from tests.losses.brute_losses import recall_at_k as brute_recall_at_k


def batch(labels: list[int], dim: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(labels), dim, generator=g, dtype=torch.float64), torch.tensor(labels)


@pytest.mark.parametrize("ks", [(1, 2, 4, 8, 16), (1, 3)])
@pytest.mark.parametrize(
    "labels",
    [
        [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2],
        [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3],  # unequal counts and a singleton
    ],
)
def test_matches_brute_force(labels, ks) -> None:
    emb, y = batch(labels)
    x1, x2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    got = RecallAtKSurrogateLoss(ks=ks, rank_temperature=0.05)(x1, y)
    pos, neg = PairMasks.from_labels(y, y, torch.arange(len(y))).dense()
    expected = brute_recall_at_k(similarity_matrix(x2), pos, neg, ks, tau1=0.05)
    torch.testing.assert_close(got, expected)
    got.backward()
    expected.backward()
    torch.testing.assert_close(x1.grad, x2.grad)


def test_reference_set_with_offset() -> None:
    emb, y = batch([0, 1, 1, 2], seed=1)
    ref, ref_y = batch([0, 1, 2, 0, 1, 2, 3, 0, 1, 2], seed=2)
    ref[3:7], ref_y[3:7] = emb, y
    got = RecallAtKSurrogateLoss()(emb, y, ref_emb=ref, ref_labels=ref_y, self_index=3)
    pos, neg = PairMasks.from_labels(y, ref_y, torch.arange(3, 7)).dense()
    torch.testing.assert_close(got, brute_recall_at_k(similarity_matrix(emb, ref), pos, neg))


def test_hand_computed_values() -> None:
    # both queries rank their 2 positives 1st and 2nd. With sharp sigmoids, a positive at rank exactly k
    # counts 1/2 (sigmoid(0)): R_1 = 1/2 / 1, R_2 = (1 + 1/2) / 2, loss = 1 - (0.5 + 0.75) / 2 = 0.375
    sim = torch.tensor([[1.0, 0.9, 0.8, 0.1, 0.0], [0.9, 1.0, 0.8, 0.1, 0.0]])
    pos = torch.tensor([[False, True, True, False, False], [True, False, True, False, False]])
    neg = torch.tensor([[False, False, False, True, True], [False, False, False, True, True]])
    sharp = recall_at_k_loss_from_similarity(sim, pos, neg, ks=(1, 2), recall_temperature=0.01)
    assert sharp.item() == pytest.approx(0.375, abs=1e-3)
    sim[0, 3] = 0.95  # a negative first for query 0: its R_1 = 0; query 1 keeps R_1 = 1/2
    worse = recall_at_k_loss_from_similarity(sim, pos, neg, ks=(1,), recall_temperature=0.01)
    assert worse.item() == pytest.approx((1.0 + 0.5) / 2, abs=1e-3)


def test_similarity_mixup_builds_virtual_references() -> None:
    emb, y = batch([0, 0, 0, 1, 1], seed=3)
    sim = similarity_matrix(emb)
    pos, neg = PairMasks.from_labels(y, y, torch.arange(5)).dense()
    g = torch.Generator().manual_seed(0)
    alpha = torch.rand(4, generator=torch.Generator().manual_seed(0), dtype=torch.float32).double()
    mixed_sim, mixed_pos, mixed_neg = similarity_mixup(sim, pos, neg, y, g)
    pairs = [(0, 1), (0, 2), (1, 2), (3, 4)]  # same-label pairs in row-major order
    assert mixed_sim.shape == (5, 9)
    for v, (a, b) in enumerate(pairs):
        torch.testing.assert_close(mixed_sim[:, 5 + v], alpha[v] * sim[:, a] + (1 - alpha[v]) * sim[:, b])
        for q in range(5):
            involves_q = q in (a, b)
            assert bool(mixed_pos[q, 5 + v]) == (y[q] == y[a] and not involves_q)
            assert bool(mixed_neg[q, 5 + v]) == bool(y[q] != y[a])


def test_mixup_loss_runs_and_is_reproducible() -> None:
    emb, y = batch([i // 4 for i in range(24)], dim=8, seed=4)
    losses = []
    for _ in range(2):
        x = emb.clone().requires_grad_()
        loss_fn = RecallAtKSurrogateLoss(mixup=True, generator=torch.Generator().manual_seed(1))
        loss = loss_fn(x, y)
        loss.backward()
        assert torch.isfinite(x.grad).all()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1])
    assert not torch.allclose(losses[0], RecallAtKSurrogateLoss()(emb, y))


def test_gradcheck_autocast_and_errors() -> None:
    emb, y = batch([0, 0, 1, 1, 1, 2, 2], seed=5)
    emb.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda e: RecallAtKSurrogateLoss(ks=(1, 2), rank_temperature=0.5)(e, y), (emb,)
    )
    x = emb.detach().float().requires_grad_()
    with torch.autocast("cpu", dtype=torch.float16):
        loss = RecallAtKSurrogateLoss()(x, y)
    loss.backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="ks"):
        RecallAtKSurrogateLoss(ks=(0, 1))
    with pytest.raises(ValueError, match="temperature"):
        RecallAtKSurrogateLoss(recall_temperature=0)
