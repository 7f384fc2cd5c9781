"""Propose TCM margins from validation embeddings and a target FAR / FRR at one global threshold.

With cosine similarities of all unordered validation pairs {a, b}, a != b:

- ``margin_neg`` = the threshold whose false-accept rate is ``far``: the ``(1 - far)`` quantile of the
negative
  similarities. TCM's hard negatives (``s >= margin_neg``) are then exactly the pairs a threshold at the FAR
  target would falsely accept, and TCM pushes them below it.
- ``margin_pos`` = the threshold whose false-reject rate is ``frr``: the ``frr`` quantile of the positive
  similarities; TCM's hard positives (``s <= margin_pos``) are the pairs it would falsely reject.

Quantiles interpolate linearly between order statistics (numpy's default, as the calibration range in
docs/spec.md). The paper advises tuning the margins to the data because train and test drift apart: re-run
this on validation embeddings during training if needed. One line::

    loss = with_tcm(base, **propose_margins(val_emb, val_labels, far=1e-3, frr=0.05).tcm_kwargs())

The same reading happens during training with ``TCMLoss(margins="auto", target_far=..., target_frr=...)``:
``MarginTracker`` reads both quantiles off every training batch's pair similarities and keeps their
exponential moving average. Measured margins can come out **inverted** (``m+ <= m- + min_gap``: the positives
at the FRR target lie below the negatives at the FAR target, as with a weak model or strict targets); then
``ordered_margins`` moves both to ``min_gap`` apart around their midpoint, so TCM works on the overlap from
both sides (it pulls up the positives below the midpoint and pushes down the negatives above it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from tcdml.checks import check_real
from tcdml.errors import TcdmlInputError

from .similarity import check_inputs, normalize

MAX_PAIRS = 200_000_000  # 800 MB of float32 similarities; beyond that, subsample the validation set
#: Margin strategies of ``TCMLoss``: given by the user, or read off the training batches.
MARGIN_STRATEGIES = ("fixed", "auto")
#: The smallest gap ``m+ - m-`` that measured margins keep (``ordered_margins``).
DEFAULT_MIN_GAP = 0.05
#: A quantile ``q`` is measured on pairs of which at least this many lie beyond it on the thinner side.
PAIRS_BEYOND_QUANTILE = 10
#: Above this many pair similarities a batch's quantile is read from an even subsample (torch's limit: 2^24).
MAX_QUANTILE_VALUES = 1 << 24


def ordered_margins(
    margin_pos: float, margin_neg: float, min_gap: float = DEFAULT_MIN_GAP
) -> tuple[float, float]:
    """``(m+, m-)`` unchanged when ``m+ >= m- + min_gap``; otherwise both moved to ``min_gap`` apart around
    their midpoint (clipped to [-1, 1]). The rule for measured margins (module docstring)."""
    if margin_pos >= margin_neg + min_gap:
        return margin_pos, margin_neg
    middle = (margin_pos + margin_neg) / 2.0
    return min(middle + min_gap / 2.0, 1.0), max(middle - min_gap / 2.0, -1.0)


def pairs_needed(target: float) -> int:
    """How many pairs measure the ``target`` quantile: ``PAIRS_BEYOND_QUANTILE / min(target, 1 - target)``."""
    return math.ceil(PAIRS_BEYOND_QUANTILE / min(target, 1.0 - target) - 1e-9)


def check_targets(target_far: float, target_frr: float, min_gap: float, momentum: float) -> None:
    """``ParameterError`` naming the parameter unless both targets lie in (0, 1), ``0 <= min_gap < 2`` and
    ``0 < momentum <= 1``."""
    for name, value in (("target_far", target_far), ("target_frr", target_frr)):
        check_real(name, value, low=0.0, high=1.0, open_low=True, open_high=True, what="a rate")
    check_real("min_gap", min_gap, low=0.0, high=2.0, open_high=True, what="a similarity gap")
    check_real("momentum", momentum, low=0.0, high=1.0, open_low=True, what="a weight")


class MarginTracker:
    """Margins measured on training batches: ``m- = quantile(negatives, 1 - target_far)``,
    ``m+ = quantile(positives, target_frr)`` of each batch's pair similarities, averaged with weight
    ``momentum`` on the newest batch (the first batch sets them), then ``ordered_margins``.

    State (``state``, a 3-vector: raw m+, raw m-, batches seen) lives in a buffer of the owning loss, so it is
    saved in checkpoints and resumes exactly.
    """

    def __init__(self, target_far: float, target_frr: float, momentum: float, min_gap: float) -> None:
        check_targets(target_far, target_frr, min_gap, momentum)
        self.target_far, self.target_frr = float(target_far), float(target_frr)
        self.momentum, self.min_gap = float(momentum), float(min_gap)

    @torch.no_grad()
    def update(self, state: Tensor, sim: Tensor, pos: Tensor, neg: Tensor) -> None:
        """Fold one batch (similarities and disjoint boolean pair masks) into ``state`` in place."""
        positives, negatives = sim[pos].float(), sim[neg].float()
        if positives.numel() == 0 or negatives.numel() == 0:
            return  # nothing to measure: keep the margins of the earlier batches
        measured = torch.stack(
            [_quantile(positives, self.target_frr), _quantile(negatives, 1.0 - self.target_far)]
        ).to(state)
        if state[2] == 0:
            state[:2] = measured
        else:
            state[:2].lerp_(measured, self.momentum)
        state[2] += 1

    def margins(self, state: Tensor, fallback: tuple[float, float]) -> tuple[float, float]:
        """``(m+, m-)`` to use now: the tracked ones, ordered; ``fallback`` before the first batch."""
        if state[2] == 0:
            return fallback
        return ordered_margins(float(state[0]), float(state[1]), self.min_gap)


def _quantile(values: Tensor, q: float) -> Tensor:
    if values.numel() > MAX_QUANTILE_VALUES:
        values = values[:: math.ceil(values.numel() / MAX_QUANTILE_VALUES)]
    return torch.quantile(values, q)


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
    """``margin_neg`` = the threshold at FAR ``far``, ``margin_pos`` = the threshold at FRR ``frr``, inverted
    ones resolved by ``ordered_margins`` (module docstring)."""
    check_inputs(embeddings, labels)
    for name, value in (("far", far), ("frr", frr)):
        if not 0.0 < value < 1.0:
            raise TcdmlInputError(f"{name} must lie in (0, 1), got {value}")
    labels = labels.to(embeddings.device)
    n = len(labels)
    _, counts = torch.unique(labels, return_counts=True)
    num_pos = int((counts * (counts - 1) // 2).sum())
    num_neg = n * (n - 1) // 2 - num_pos
    if num_pos == 0:
        raise TcdmlInputError("no positive pairs: every class has a single sample")
    if num_neg == 0:
        raise TcdmlInputError("no negative pairs: all samples have one label")
    if num_pos + num_neg > MAX_PAIRS:
        raise TcdmlInputError(f"{num_pos + num_neg} pairs exceed {MAX_PAIRS}: subsample the validation set")
    pos, neg = _pair_similarities(embeddings, labels)
    margin_pos, margin_neg = ordered_margins(float(np.quantile(pos, frr)), float(np.quantile(neg, 1.0 - far)))
    return MarginProposal(
        margin_pos=margin_pos,
        margin_neg=margin_neg,
        far=far,
        frr=frr,
        num_pos_pairs=num_pos,
        num_neg_pairs=num_neg,
    )
