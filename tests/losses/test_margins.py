"""propose_margins: thresholds at target FAR / FRR, against a brute-force numpy computation."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tcdml.losses import SmoothAPLoss, TCMLoss, propose_margins, with_tcm
from tcdml.losses.margins import DEFAULT_MIN_GAP, MarginTracker, ordered_margins, pairs_needed


def validation(n: int = 150, classes: int = 12, seed: int = 0, noise: float = 0.7):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    centres = torch.randn(classes, 8, generator=g)
    return centres[labels] + noise * torch.randn(n, 8, generator=g), labels


def brute(emb: torch.Tensor, labels: torch.Tensor, far: float, frr: float) -> tuple[float, float]:
    x = (emb / emb.norm(dim=1, keepdim=True)).double().numpy()
    y = labels.numpy()
    pos, neg = [], []
    for a in range(len(x)):
        for b in range(a + 1, len(x)):
            (pos if y[a] == y[b] else neg).append(float(x[a] @ x[b]))
    return float(np.quantile(pos, frr)), float(np.quantile(neg, 1 - far))


@pytest.mark.parametrize(("far", "frr"), [(1e-2, 1e-2), (0.1, 0.3), (1e-3, 0.05)])
def test_matches_brute_force(far: float, frr: float) -> None:
    emb, labels = validation()
    proposal = propose_margins(emb, labels, far=far, frr=frr)
    margin_pos, margin_neg = ordered_margins(*brute(emb, labels, far, frr))
    assert proposal.margin_pos == pytest.approx(margin_pos, abs=1e-5)
    assert proposal.margin_neg == pytest.approx(margin_neg, abs=1e-5)
    counts = torch.bincount(labels)
    assert proposal.num_pos_pairs == int((counts * (counts - 1) // 2).sum())
    assert proposal.num_pos_pairs + proposal.num_neg_pairs == 150 * 149 // 2


def test_margins_realise_the_targets_on_the_validation_set() -> None:
    emb, labels = validation(seed=1, noise=0.3)  # separated enough that the margins are not inverted
    proposal = propose_margins(emb, labels, far=0.05, frr=0.2)
    assert proposal.margin_pos > proposal.margin_neg + DEFAULT_MIN_GAP
    x = torch.nn.functional.normalize(emb, dim=1)
    sim = x @ x.T
    upper = torch.triu(torch.ones_like(sim, dtype=torch.bool), diagonal=1)
    same = labels[:, None] == labels[None, :]
    far = (sim[upper & ~same] >= proposal.margin_neg).float().mean().item()
    frr = (sim[upper & same] <= proposal.margin_pos).float().mean().item()
    assert far == pytest.approx(0.05, abs=0.01) and frr == pytest.approx(0.2, abs=0.02)


def test_one_liner_and_dict() -> None:
    emb, labels = validation(seed=2, noise=0.2)
    loss_fn = with_tcm(SmoothAPLoss(), **propose_margins(emb, labels, far=0.01, frr=0.05).tcm_kwargs())
    assert -1 <= loss_fn.tcm.margin_neg < loss_fn.tcm.margin_pos <= 1
    assert set(propose_margins(emb, labels).to_dict()) >= {"margin_pos", "margin_neg", "far", "frr"}


def test_errors() -> None:
    emb, labels = validation(20)
    with pytest.raises(ValueError, match="far"):
        propose_margins(emb, labels, far=0.0)
    with pytest.raises(ValueError, match="no positive pairs"):
        propose_margins(emb, torch.arange(20))
    with pytest.raises(ValueError, match="no negative pairs"):
        propose_margins(emb, torch.zeros(20, dtype=torch.long))
    with pytest.raises(ValueError, match="one label per embedding"):
        propose_margins(emb, labels[:5])


def test_inverted_margins_are_moved_apart_around_their_midpoint() -> None:
    assert ordered_margins(0.8, 0.4) == (0.8, 0.4)
    assert ordered_margins(0.3, 0.5, min_gap=0.1) == pytest.approx((0.45, 0.35))
    assert ordered_margins(0.42, 0.4, min_gap=0.1) == pytest.approx((0.46, 0.36))
    assert ordered_margins(1.0, 1.0, min_gap=0.1) == pytest.approx((1.0, 0.95))
    emb, labels = validation()
    raw = brute(emb, labels, 1e-2, 1e-2)
    assert raw[0] < raw[1]  # strict targets on overlapping classes: m+ below m-
    proposal = propose_margins(emb, labels, far=1e-2, frr=1e-2)
    assert proposal.margin_pos - proposal.margin_neg == pytest.approx(DEFAULT_MIN_GAP)
    assert (proposal.margin_pos + proposal.margin_neg) / 2 == pytest.approx(sum(raw) / 2, abs=1e-5)


def test_tracker_reads_the_quantiles_of_a_hand_made_similarity_set() -> None:
    """Positives 0.05, 0.10, ..., 1.00 and negatives -0.99 ... 0.0 (100 values): the FRR 0.25 quantile of
    the positives and the FAR 0.1 quantile of the negatives, exactly numpy's."""
    pos_values = torch.arange(1, 21, dtype=torch.float64) / 20
    neg_values = torch.linspace(-0.99, 0.0, 100, dtype=torch.float64)
    sim = torch.cat([pos_values, neg_values])[None, :]
    pos = torch.zeros_like(sim, dtype=torch.bool)
    pos[0, :20] = True
    tracker = MarginTracker(target_far=0.1, target_frr=0.25, momentum=0.5, min_gap=0.0)
    state = torch.zeros(3, dtype=torch.float64)
    tracker.update(state, sim, pos, ~pos)
    expected = (np.quantile(pos_values.numpy(), 0.25), np.quantile(neg_values.numpy(), 0.9))
    assert tracker.margins(state, (0.9, 0.5)) == pytest.approx(expected, abs=1e-6)  # float32 quantiles
    tracker.update(state, sim + 0.2, pos, ~pos)  # a second batch moves them halfway (momentum 0.5)
    assert tracker.margins(state, (0.9, 0.5)) == pytest.approx(
        (expected[0] + 0.1, expected[1] + 0.1), abs=1e-6
    )
    assert int(state[2]) == 2


def test_auto_tcm_measures_in_training_mode_only_and_saves_its_state() -> None:
    emb, labels = validation()
    loss = TCMLoss(margins="auto", target_far=0.1, target_frr=0.5)
    assert loss.current_margins == (0.9, 0.5)  # before any batch: the given ones
    loss.eval()(emb, labels)
    assert int(loss.margin_state[2]) == 0
    loss.train()(emb, labels)
    raw_pos, raw_neg = brute(emb, labels, 0.1, 0.5)
    # the batch holds each unordered pair twice (i, j) and (j, i): quantiles interpolate a little differently
    assert loss.current_margins == pytest.approx(ordered_margins(raw_pos, raw_neg), abs=1e-4)
    restored = TCMLoss(margins="auto")
    restored.load_state_dict(loss.state_dict())
    assert restored.current_margins == loss.current_margins


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"margins": "adaptive"}, "margins='adaptive': expected one of fixed, auto"),
        ({"margins": "auto", "target_far": 0.0}, "target_far=0.0: expected a rate in"),
        ({"margins": "auto", "target_frr": 1.5}, "target_frr=1.5"),
        ({"margins": "auto", "momentum": 0}, "momentum=0"),
        ({"margins": "auto", "min_gap": -0.1}, "min_gap=-0.1"),
    ],
)
def test_bad_margin_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TCMLoss(**kwargs)


def test_pairs_needed() -> None:
    assert pairs_needed(0.1) == 100 and pairs_needed(0.5) == 20 and pairs_needed(0.99) == 1000
