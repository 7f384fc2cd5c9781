"""Research losses of docs/study.md ("Candidates not tried before"), not shipped: registered in this process
only, then the tcdml CLI runs with them, by hand or from ``benchmarks/adapt_hscodes.py``::

    PYTHONPATH=src .venv/bin/python benchmarks/research_losses.py adapt train train.npz -o out \\
        --no-tcm --loss smooth_ap_rate_variance --loss-param lambda_var=3

``smooth_ap_rate_variance``: Smooth-AP plus the per-class TPR / TNR variance regulariser (issue 17 §2)::

    t      = quantile(s over the batch's negative pairs, 1 - target_far)   (detached: the deployed threshold)
    TPR_c  = mean over the positive pairs (a, b) with a in c of sigmoid((s_ab - t) / T)
    TNR_c  = mean over the negative pairs (a, b) with a in c of 1 - sigmoid((s_ab - t) / T)
    L      = SmoothAP + lambda_var * (Var_c TPR_c + Var_c TNR_c)

(population variances over the batch's classes that have such pairs; 0 with fewer than 2). OPIS measures the
variance over classes of an F1 of TPR_c and TNR_c over thresholds in the FAR range 1e-2 … 1e-1; this term
aims at it directly, at one threshold per batch.

``smooth_ap_tcm_ramp``: Smooth-AP + TCM (auto margins) whose weights lambda+ = lambda- grow linearly from 0 to
``lambda_max`` over the first ``ramp_epochs`` epochs, then stay there:
``lambda_e = lambda_max x min(1, (e - 1) / ramp_epochs)`` in epoch e = 1, 2, ... (an epoch begins with the
training loop's ``loss.train()`` call).
"""

from __future__ import annotations

import sys

import torch
from torch import Tensor

from tcdml.losses.base import LossModule, LossTerm, TermLoss
from tcdml.losses.registry import register_loss
from tcdml.losses.similarity import IndicesTuple, PairBatch, SelfIndex, prepare_pairs
from tcdml.losses.smooth_ap import SmoothAPLoss
from tcdml.losses.tcm import TCMLoss


def rate_variance(
    sim: Tensor, pos: Tensor, neg: Tensor, labels: Tensor, target_far: float, temperature: float
) -> Tensor:
    """``Var_c TPR_c + Var_c TNR_c`` at the batch's threshold for ``target_far`` (module docstring).

    ``sim`` (N, M) similarities on the graph, ``pos`` / ``neg`` (N, M) disjoint boolean pair masks, ``labels``
    (N,) the rows' classes. A 0-d tensor on ``sim``'s graph; 0 without negatives or with < 2 classes.
    """
    zero = sim.sum() * 0.0
    if not bool(neg.any()):
        return zero
    with torch.no_grad():
        threshold = torch.quantile(sim.detach()[neg].float(), 1.0 - target_far).to(sim.dtype)
    accept = torch.sigmoid((sim - threshold) / temperature)
    classes = torch.unique(labels, return_inverse=True)[1]
    member = torch.nn.functional.one_hot(classes).T.to(sim.dtype)  # (C, N): row a belongs to class c
    pos_f, neg_f = pos.to(sim.dtype), neg.to(sim.dtype)
    total = zero
    for hits, mask in ((accept * pos_f, pos_f), ((1.0 - accept) * neg_f, neg_f)):
        counts = member @ mask.sum(1)
        rates = (member @ hits.sum(1))[counts > 0] / counts[counts > 0]
        if rates.numel() >= 2:
            total = total + rates.var(unbiased=False)
    return total


class RateVarianceLoss(LossModule):
    """Smooth-AP (``temperature`` 0.01, tcdml's default) + ``lambda_var`` x ``rate_variance`` at the batch
    threshold for ``target_far`` with sigmoid temperature ``soft_temperature``; all pairs of the batch."""

    def __init__(
        self, lambda_var: float = 3.0, target_far: float = 0.03, soft_temperature: float = 0.05
    ) -> None:
        super().__init__()
        self.base = SmoothAPLoss()
        self.lambda_var, self.target_far = float(lambda_var), float(target_far)
        self.soft_temperature = float(soft_temperature)

    def compute_terms(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
        self_index: SelfIndex = None,
    ) -> list[LossTerm]:
        """Smooth-AP's term and the variance term, from one similarity matrix."""
        pairs = prepare_pairs(embeddings, labels, None, ref_emb, ref_labels, self_index)
        assert labels is not None
        pos, neg = pairs.masks.dense()
        variance = rate_variance(pairs.sim, pos, neg, labels, self.target_far, self.soft_temperature)
        return [*self.base.terms_from_pairs(pairs), LossTerm(variance, None, self.lambda_var)]


class TCMRampLoss(TermLoss):
    """Smooth-AP + TCM auto (``target_far``, ``target_frr``) with lambda+ = lambda- ramped linearly from 0 to
    ``lambda_max`` over ``ramp_epochs`` epochs (module docstring)."""

    def __init__(
        self, lambda_max: float = 3.0, ramp_epochs: int = 10, target_far: float = 0.1, target_frr: float = 0.5
    ) -> None:
        super().__init__()
        self.base = SmoothAPLoss()
        self.tcm = TCMLoss(0.0, 0.0, margins="auto", target_far=target_far, target_frr=target_frr)
        self.lambda_max, self.ramp_epochs, self.epoch = float(lambda_max), int(ramp_epochs), 0

    def train(self, mode: bool = True) -> TCMRampLoss:
        """Training mode; each call with ``mode`` True begins an epoch and sets TCM's weights for it."""
        if mode:
            self.epoch += 1
            weight = self.lambda_max * min(1.0, (self.epoch - 1) / max(self.ramp_epochs, 1))
            self.tcm.lambda_pos = self.tcm.lambda_neg = weight
        return super().train(mode)

    def terms_from_pairs(self, pairs: PairBatch) -> list[LossTerm]:
        """Smooth-AP's term and TCM's two terms at this epoch's lambda (``TermLoss`` builds ``pairs``)."""
        return [*self.base.terms_from_pairs(pairs), *self.tcm.terms_from_pairs(pairs)]


register_loss(RateVarianceLoss, "smooth_ap_rate_variance")
register_loss(TCMRampLoss, "smooth_ap_tcm_ramp")


if __name__ == "__main__":
    from tcdml.cli.main import main

    sys.exit(main(sys.argv[1:]))
