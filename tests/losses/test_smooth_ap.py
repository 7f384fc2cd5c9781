"""Smooth-AP against a brute-force implementation of Brown et al.'s formula."""

from __future__ import annotations

import pytest
import torch

from tcdml.losses import PairMasks, SmoothAPLoss, similarity_matrix, smooth_ap_loss_from_similarity
from tests.losses.brute_losses import smooth_ap as brute_smooth_ap


def batch(labels: list[int], dim: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(labels), dim, generator=g, dtype=torch.float64), torch.tensor(labels)


@pytest.mark.parametrize("temperature", [0.01, 0.5])
@pytest.mark.parametrize(
    "labels",
    [
        [0, 0, 0, 1, 1, 1, 2, 2, 2],  # equal counts
        [0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3],  # unequal counts, a singleton class (no positives: left out)
    ],
)
def test_matches_brute_force(labels, temperature) -> None:
    emb, y = batch(labels)
    x1, x2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    got = SmoothAPLoss(temperature)(x1, y)
    pos, neg = PairMasks.from_labels(y, y, torch.arange(len(y))).dense()
    expected = brute_smooth_ap(similarity_matrix(x2), pos, neg, temperature)
    torch.testing.assert_close(got, expected)
    got.backward()
    expected.backward()
    torch.testing.assert_close(x1.grad, x2.grad)


def test_reference_set_with_self_pairs() -> None:
    emb, y = batch([0, 1, 1, 2, 0, 2], seed=1)
    ref, ref_y = batch([0, 1, 2, 0, 1, 2, 3, 0, 0, 0], seed=2)
    ref[[9, 2, 5, 0, 7, 3]] = emb
    ref_y[[9, 2, 5, 0, 7, 3]] = y
    self_index = torch.tensor([9, 2, 5, 0, 7, 3])
    got = SmoothAPLoss()(emb, y, ref_emb=ref, ref_labels=ref_y, self_index=self_index)
    pos, neg = PairMasks.from_labels(y, ref_y, self_index).dense()
    expected = brute_smooth_ap(similarity_matrix(emb, ref), pos, neg)
    torch.testing.assert_close(got, expected)


def test_perfect_ranking_gives_zero_and_pure_function() -> None:
    sim = torch.tensor([[1.0, 0.9, 0.1, 0.0], [0.9, 1.0, 0.2, 0.1]])
    pos = torch.tensor([[False, True, False, False], [True, False, False, False]])
    neg = torch.tensor([[False, False, True, True], [False, False, True, True]])
    assert smooth_ap_loss_from_similarity(sim, pos, neg).item() == pytest.approx(0.0, abs=1e-6)
    # one negative above the positive: AP = 1/2 for that query (sigmoid(5) = 0.993 is not quite a step)
    sim[0, 2] = 0.95
    assert smooth_ap_loss_from_similarity(sim, pos, neg).item() == pytest.approx(0.25, abs=2e-3)


def test_gradients_finite_and_gradcheck() -> None:
    emb, y = batch([0, 0, 1, 1, 1, 2, 2], seed=3)
    emb.requires_grad_()
    assert torch.autograd.gradcheck(lambda e: SmoothAPLoss(0.5)(e, y), (emb,))
    big, labels = batch([i // 3 for i in range(60)] + [20] * 7, dim=16, seed=4)
    big.requires_grad_()
    SmoothAPLoss()(big, labels).backward()
    assert torch.isfinite(big.grad).all() and big.grad.abs().sum() > 0


def test_autocast_and_errors() -> None:
    emb, y = batch([0, 0, 1, 1, 2, 2], seed=5)
    x = emb.float().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = SmoothAPLoss()(x, y)
    loss.backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="temperature"):
        SmoothAPLoss(0.0)
    with pytest.raises(ValueError, match="indices_tuple"):
        SmoothAPLoss()(emb, y, (torch.tensor([0]), torch.tensor([1]), torch.tensor([2])))
