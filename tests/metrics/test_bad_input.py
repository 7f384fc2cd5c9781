"""Every bad input gets one TcdmlInputError line that names the problem."""

from __future__ import annotations

import numpy as np
import pytest

from tcdml.errors import TcdmlInputError
from tcdml.metrics import evaluate
from tests.helpers import clustered_embeddings

X, Y = clustered_embeddings([6, 7, 8], seed=0)


def with_row(value: float) -> np.ndarray:
    x = X.copy()
    x[4] = value
    return x


CASES = {
    "nan": (lambda: evaluate(with_row(np.nan), Y), "NaN or Inf (first: row 4)"),
    "inf": (lambda: evaluate(with_row(np.inf), Y), "NaN or Inf"),
    "zero_row": (lambda: evaluate(with_row(0.0), Y), "all-zero row"),
    "one_dimensional": (lambda: evaluate(X[:, 0], Y), "expected a 2-D array"),
    "empty": (lambda: evaluate(np.zeros((0, 4)), np.zeros(0, dtype=int)), "empty array"),
    "label_length": (lambda: evaluate(X, Y[:-1]), "length 20 does not match 21"),
    "float_labels": (lambda: evaluate(X, Y.astype(float)), "expected integer class labels"),
    "string_labels": (lambda: evaluate(X, Y.astype(str)), "expected integer class labels"),
    "labels_2d": (lambda: evaluate(X, Y[:, None]), "expected a 1-D array"),
    "all_singletons": (lambda: evaluate(X[:5], np.arange(5)), "all 5 classes are singletons"),
    "far_order": (
        lambda: evaluate(X, Y, far_range=(0.2, 0.1)),
        "far_min=0.2 must be smaller than far_max=0.1",
    ),
    "far_outside": (lambda: evaluate(X, Y, far_range=(0.0, 0.1)), "must both lie in (0, 1)"),
    "far_one": (lambda: evaluate(X, Y, far_range=(0.1, 1.0)), "must both lie in (0, 1)"),
    "thresholds": (lambda: evaluate(X, Y, num_thresholds=1), "at least 2 thresholds"),
    "eps_zero": (lambda: evaluate(X, Y, eps=0.0), "eps=0.0 must lie in (0, 1)"),
    "eps_one": (lambda: evaluate(X, Y, eps=1.0), "eps=1.0 must lie in (0, 1)"),
    "beta": (lambda: evaluate(X, Y, beta=-1.0), "beta=-1.0 must be a positive"),
    "k_too_large": (lambda: evaluate(X, Y, ks=(1, 21)), "k=21 is larger than the 20 neighbours"),
    "k_zero": (lambda: evaluate(X, Y, ks=(0,)), "positive integers"),
    "mask_dtype": (lambda: evaluate(X, Y, is_query=np.ones(len(Y))), "expected a bool mask"),
    "mask_empty": (
        lambda: evaluate(X, Y, is_gallery=np.zeros(len(Y), bool)),
        "is_gallery: selects no sample",
    ),
    "mode": (lambda: evaluate(X, Y, mode="approx"), "mode='approx'"),
    "device": (lambda: evaluate(X, Y, device="gpu0"), "device='gpu0': not a torch device name"),
    "eps_all_worst": (lambda: evaluate(X, Y, eps=0.9), "eps=0.9 puts all 3 classes"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_clear_line(name: str) -> None:
    call, expected = CASES[name]
    with pytest.raises(TcdmlInputError) as info:
        call()
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize("mode", ["histogram", "exact"])
def test_collapsing_calibration_range(mode: str) -> None:
    """The top negatives all at one similarity: t_lo == t_hi makes OPIS undefined (None and the reason), not
    a silent NaN; the retrieval metrics are still given."""
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, -1.0], [0.0, -1.0]])
    y = np.array([0, 0, 1, 1, 2, 2])  # negatives: 8 pairs at s = 0, 4 pairs at s = -1
    result = evaluate(x, y, far_range=(0.01, 0.1), ks=(1,), mode=mode)
    assert result.opis is None and result.opis_undefined.startswith("calibration range collapses")
    assert result.recall_at_k[1] == 1.0 and result.map_at_r == 1.0
    with pytest.raises(TcdmlInputError, match=r"--plot needs OPIS .*calibration range collapses"):
        evaluate(x, y, far_range=(0.01, 0.1), ks=(1,), mode=mode, needs_opis="--plot")


def test_singletons_are_left_out_and_counted() -> None:
    x, y = clustered_embeddings([1, 1, 10, 12], seed=1)
    result = evaluate(x, y)
    assert result.num_left_out_classes == 2
    assert result.num_opis_classes == 2
    assert result.num_left_out_queries == 2
    assert result.num_queries == len(y)
    assert np.isnan(result.per_class.mean_utility[:2]).all()
