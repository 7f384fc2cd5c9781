"""propose_margins: thresholds at target FAR / FRR, against a brute-force numpy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tcdml.losses import SmoothAPLoss, propose_margins, with_tcm


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
    margin_pos, margin_neg = brute(emb, labels, far, frr)
    assert proposal.margin_pos == pytest.approx(margin_pos, abs=1e-5)
    assert proposal.margin_neg == pytest.approx(margin_neg, abs=1e-5)
    counts = torch.bincount(labels)
    assert proposal.num_pos_pairs == int((counts * (counts - 1) // 2).sum())
    assert proposal.num_pos_pairs + proposal.num_neg_pairs == 150 * 149 // 2


def test_margins_realise_the_targets_on_the_validation_set() -> None:
    emb, labels = validation(seed=1)
    proposal = propose_margins(emb, labels, far=0.05, frr=0.2)
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
