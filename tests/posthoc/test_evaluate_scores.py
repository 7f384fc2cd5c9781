"""evaluate_scores: the metrics of a score matrix are those of embeddings where the scores are cosines, do
not move under an increasing affine map, and compare_scores pairs two score matrices."""

from __future__ import annotations

import numpy as np
import pytest

from tcdml.errors import TcdmlInputError
from tcdml.metrics import evaluate
from tcdml.posthoc import fit_asnorm
from tcdml.posthoc.evaluate import compare_scores, cosine_matrix, evaluate_scores
from tests.posthoc.regions import two_regions


@pytest.fixture(scope="module")
def sample():
    return two_regions(3)


def test_cosine_scores_give_the_embedding_metrics(sample) -> None:
    x, y = sample
    expected = evaluate(x, y, mode="exact").to_dict()
    got = evaluate_scores(cosine_matrix(x), y, mode="exact").to_dict()
    for key in ("recall@1", "recall@2", "map@r", "opis", "eps_opis", "t_lo", "t_hi"):
        assert got[key] == pytest.approx(expected[key], rel=1e-4), key


def test_an_increasing_affine_map_changes_no_metric(sample) -> None:
    x, y = sample
    scores = cosine_matrix(x)
    first = evaluate_scores(scores, y, mode="exact")
    second = evaluate_scores(7.0 * scores - 3.0, y, mode="exact")
    assert second.opis == pytest.approx(first.opis, rel=1e-6)
    assert second.recall_at_k == first.recall_at_k
    assert second.t_lo == pytest.approx(7.0 * first.t_lo - 3.0, rel=1e-6)


def test_compare_scores_pairs_two_matrices(sample) -> None:
    x, y = sample
    raw = cosine_matrix(x)
    same = compare_scores(raw, raw, y).to_dict()
    assert same["delta_opis"] == 0.0 and same["delta_opis_ci95"] == [0.0, 0.0]
    normalised = fit_asnorm(two_regions(4)[0], top_k=10).score_matrix(x)
    changed = compare_scores(raw, normalised, y).to_dict()
    assert changed["delta_opis"] < 0 and changed["delta_opis_ci95"][1] < 0


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        (np.ones((3, 4)), "expected a square N x N matrix"),
        (np.array([[1.0, 2.0], [0.0, 1.0]]), "not symmetric"),
        (np.array([[1.0, np.inf], [np.inf, 1.0]]), "NaN or Inf"),
        ([["a", "b"], ["c", "d"]], "not a numeric N x N matrix"),
    ],
)
def test_bad_score_matrices_are_one_line(scores, message) -> None:
    with pytest.raises(TcdmlInputError, match=message):
        evaluate_scores(scores, np.array([0, 0, 1][: len(scores)]))
