"""Propose TCM margins from validation embeddings and a target FAR / FRR at one global threshold.

With cosine similarities of all unordered validation pairs {a, b}, a != b:

- ``margin_neg`` = the threshold whose false-accept rate is ``far``: the ``(1 - far)`` quantile of the
negative
  similarities. TCM's hard negatives (``s >= margin_neg``) are then exactly the pairs a threshold at the FAR
  target would falsely accept, and TCM pushes them below it.
- ``margin_pos`` = the threshold whose false-reject rate is ``frr``: the ``frr`` quantile of the positive
  similarities; TCM's hard positives (``s <= margin_pos``) are the pairs it would falsely reject.

Quantiles interpolate linearly between order statistics (numpy's default, as the calibration range in
SPEC.md). The paper advises tuning the margins to the data because train and test drift apart: re-run this on
validation embeddings during training if needed. One line::

    loss = with_tcm(base, **propose_margins(val_emb, val_labels, far=1e-3, frr=0.05).tcm_kwargs())
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from .similarity import check_inputs, normalize

MAX_PAIRS = 200_000_000  # 800 MB of float32 similarities; beyond that, subsample the validation set


@dataclass(frozen=True)
class MarginProposal:
    """Proposed TCM margins and what they were computed from."""

    margin_pos: float
    margin_neg: float
    far: float
    frr: float
    num_pos_pairs: int
    num_neg_pairs: int

    def tcm_kwargs(self) -> dict[str, float]:
        """``{"margin_pos": ..., "margin_neg": ...}`` for ``TCMLoss`` / ``with_tcm``."""
        return {"margin_pos": self.margin_pos, "margin_neg": self.margin_neg}

    def to_dict(self) -> dict[str, float | int]:
        """All fields as a plain dict."""
        return asdict(self)


def _pair_similarities(embeddings: Tensor, labels: Tensor, rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Similarities of all unordered positive and negative pairs, as float32 numpy arrays (row blocks)."""
    x = normalize(embeddings.detach()).float()
    pos, neg = [], []
    for start in range(0, len(x), rows):
        block = x[start : start + rows] @ x.T
        cols = torch.arange(len(x), device=x.device)
        upper = cols.unsqueeze(0) > torch.arange(start, start + len(block), device=x.device).unsqueeze(1)
        same = labels[start : start + len(block)].unsqueeze(1) == labels.unsqueeze(0)
        pos.append(block[upper & same].cpu().numpy())
        neg.append(block[upper & ~same].cpu().numpy())
    return np.concatenate(pos), np.concatenate(neg)


def propose_margins(
    embeddings: Tensor, labels: Tensor, *, far: float = 1e-2, frr: float = 1e-2
) -> MarginProposal:
    """``margin_neg`` = the threshold at FAR ``far``, ``margin_pos`` = the threshold at FRR ``frr``."""
    check_inputs(embeddings, labels)
    for name, value in (("far", far), ("frr", frr)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must lie in (0, 1), got {value}")
    labels = labels.to(embeddings.device)
    n = len(labels)
    _, counts = torch.unique(labels, return_counts=True)
    num_pos = int((counts * (counts - 1) // 2).sum())
    num_neg = n * (n - 1) // 2 - num_pos
    if num_pos == 0:
        raise ValueError("no positive pairs: every class has a single sample")
    if num_neg == 0:
        raise ValueError("no negative pairs: all samples have one label")
    if num_pos + num_neg > MAX_PAIRS:
        raise ValueError(f"{num_pos + num_neg} pairs exceed {MAX_PAIRS}: subsample the validation set")
    pos, neg = _pair_similarities(embeddings, labels)
    return MarginProposal(
        margin_pos=float(np.quantile(pos, frr)),
        margin_neg=float(np.quantile(neg, 1.0 - far)),
        far=far,
        frr=frr,
        num_pos_pairs=num_pos,
        num_neg_pairs=num_neg,
    )
