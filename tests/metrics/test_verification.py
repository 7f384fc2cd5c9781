"""Verification metrics (tcdml.metrics.verification) against sklearn's ROC and a brute-force EER."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from tcdml.errors import TcdmlInputError
from tcdml.metrics import evaluate
from tcdml.metrics.catalogue import fmr_key
from tcdml.metrics.settings import EvaluationSettings
from tests.helpers import clustered_embeddings

TARGETS = (1e-3, 1e-2, 0.05)


def _pairs(x: np.ndarray, y: np.ndarray, is_query=None, is_gallery=None):
    """Every pair's score (as exact mode computes it: float32, labels sorted) and whether it is positive."""
    unit = torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float32), dim=1)
    sim = (unit @ unit.T).clamp_(-1.0, 1.0).double().numpy()
    if is_query is None:
        i, j = np.triu_indices(len(y), k=1)
    else:
        i, j = np.nonzero(is_query[:, None] & is_gallery[None, :] & ~np.eye(len(y), dtype=bool))
    return sim[i, j], (y[i] == y[j]).astype(int)


def _sorted_set(seed: int = 0):
    x, y = clustered_embeddings(
        [9, 14, 7, 12, 10, 11], dim=12, spread=[0.4, 0.7, 0.5, 0.9, 0.6, 0.8], seed=seed
    )
    order = np.argsort(y, kind="stable")
    return x[order], y[order]


def _brute_force_eer(scores: np.ndarray, positive: np.ndarray) -> float:
    """``min_t max(FAR(t), FRR(t))``, every distinct score tried as the threshold."""
    best = 1.0
    for t in np.unique(scores):
        far = np.mean(scores[positive == 0] >= t)
        frr = np.mean(scores[positive == 1] < t)
        best = min(best, max(far, frr))
    return best


def _sklearn_fnmr(scores, positive, target):
    fpr, tpr, _ = roc_curve(positive, scores, drop_intermediate=False)
    return float(np.min(1.0 - tpr[fpr <= target + 1e-12]))


@pytest.mark.parametrize("split", [False, True])
def test_exact_mode_matches_sklearn_and_a_brute_force_eer(split: bool) -> None:
    x, y = _sorted_set()
    masks = {}
    if split:
        rng = np.random.default_rng(0)
        masks = {"is_query": rng.random(len(y)) < 0.5, "is_gallery": np.ones(len(y), bool)}
    result = evaluate(x, y, mode="exact", fmr_targets=TARGETS, **masks)
    scores, positive = _pairs(x, y, masks.get("is_query"), masks.get("is_gallery"))
    checks = result.verification
    assert checks.values["auc"] == pytest.approx(roc_auc_score(positive, scores), abs=1e-9)
    fpr, tpr, _ = roc_curve(positive, scores, drop_intermediate=False)
    assert checks.values["eer"] == pytest.approx(np.min(np.maximum(fpr, 1.0 - tpr)), abs=1e-9)
    assert checks.values["eer"] == pytest.approx(_brute_force_eer(scores, positive), abs=1e-9)
    for target in TARGETS:
        assert checks.values[fmr_key(target)] == pytest.approx(
            _sklearn_fnmr(scores, positive, target), abs=1e-9
        )
    assert set(checks.resolution.values()) == {0.0}
    # The EER threshold attains it.
    t = checks.eer_threshold
    attained = max(np.mean(scores[positive == 0] >= t), np.mean(scores[positive == 1] < t))
    assert attained == pytest.approx(checks.values["eer"], abs=1e-12)


@pytest.mark.parametrize("bins", [256, 2048, 16384])
def test_histogram_mode_lies_within_its_stated_bound(bins: int) -> None:
    x, y = _sorted_set(1)
    targets = (1e-2, 0.05)
    exact = evaluate(x, y, mode="exact", fmr_targets=targets).verification.values
    result = evaluate(x, y, num_bins=bins, fmr_targets=targets).verification
    bound = result.resolution
    assert abs(result.values["auc"] - exact["auc"]) <= bound["auc"] + 1e-12
    for key in ("eer", *(fmr_key(a) for a in targets)):
        assert result.values[key] - bound[key] - 1e-12 <= exact[key] <= result.values[key] + 1e-12, key
    assert bound["auc"] > 0 and bound["eer"] >= 0


def test_per_class_auc_and_rates_at_each_targets_threshold() -> None:
    x, y = _sorted_set(2)
    result = evaluate(x, y, mode="exact", fmr_targets=TARGETS)
    scores_all, positive = _pairs(x, y)
    i, j = np.triu_indices(len(y), k=1)
    table = result.per_class
    for c, label in enumerate(table.labels):
        mine = (y[i] == label) | (y[j] == label)
        assert table.auc[c] == pytest.approx(roc_auc_score(positive[mine], scores_all[mine]), abs=1e-9)
        for target, threshold in zip(TARGETS, result.verification.fmr_thresholds, strict=True):
            far, frr = table.fmr_rates[fmr_key(target, "")]
            neg = scores_all[mine & (positive == 0)]
            pos = scores_all[mine & (positive == 1)]
            assert far[c] == pytest.approx(np.mean(neg >= threshold), abs=1e-12)
            assert frr[c] == pytest.approx(np.mean(pos < threshold), abs=1e-12)
    row = table.rows()[0]
    assert {"auc", "far@fmr=1e-3", "frr@fmr=1e-3"} <= set(row)


def test_intervals_and_keys() -> None:
    x, y = _sorted_set(3)
    out = evaluate(x, y).to_dict()
    for key in ("auc", "eer", "fnmr@fmr=1e-4", "fnmr@fmr=1e-3", "fnmr@fmr=1e-2"):
        low, high = out[f"{key}_ci95"]
        assert low <= out[key] <= high, key
    assert out["threshold@fmr=1e-3"] >= out["threshold@fmr=1e-2"]
    assert set(out["verification_resolution"]) == {
        "auc",
        "eer",
        "fnmr@fmr=1e-4",
        "fnmr@fmr=1e-3",
        "fnmr@fmr=1e-2",
    }


def test_verification_is_none_without_negative_pairs_but_keys_stay() -> None:
    x, y = _sorted_set(4)
    out = evaluate(x, np.zeros(len(y), dtype=int)).to_dict()
    assert out["auc"] is None and out["fnmr@fmr=1e-3"] is None and "auc_ci95" in out


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"fmr_targets": (0.0, 1e-3)}, "fmr_targets: 0.0 is not a rate"),
        ({"fmr_targets": (1e-3, 1.0)}, "fmr_targets: 1.0 is not a rate"),
        ({"fmr_targets": (1e-3, 1e-3)}, "given twice"),
        ({"fmr_targets": tuple(np.linspace(0.01, 0.5, 21))}, "21 targets; expected at most 20"),
        ({"num_bins": 1024}, r"num_bins=1024 is too coarse for fmr=0.0001.*num_bins >= 10,000"),
    ],
)
def test_bad_verification_settings(settings: dict, match: str) -> None:
    with pytest.raises(TcdmlInputError, match=match):
        EvaluationSettings(**settings)
    EvaluationSettings(num_bins=1024, fmr_targets=(1e-3,))  # 1,000 bins suffice for 1e-3
    EvaluationSettings(mode="exact", num_bins=64)  # exact mode reads every pair
