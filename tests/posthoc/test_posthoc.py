"""FairCal and AS-norm: one threshold more even across regions, stored and reloaded, bad input refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tcdml.errors import TcdmlInputError
from tcdml.posthoc import ASNormModel, FairCalModel, fit_asnorm, fit_faircal
from tcdml.posthoc.asnorm import MIN_SIGMA
from tcdml.posthoc.evaluate import cosine_matrix
from tests.posthoc.regions import class_far_spread, two_regions


@pytest.fixture(scope="module")
def regions():
    """Calibration classes and disjoint test classes of the same two regions."""
    return two_regions(0), two_regions(10)


@pytest.mark.parametrize(
    ("fit", "at_most"),
    [(lambda x, y: fit_asnorm(x, top_k=20), 0.6), (lambda x, y: fit_faircal(x, y, num_clusters=2), 0.9)],
    ids=["asnorm", "faircal"],
)
def test_one_threshold_is_more_even_across_classes(regions, fit, at_most) -> None:
    """The spread of per-class FAR at the threshold of global FAR 5 % falls (measured: AS-norm 0.47x,
    FairCal 0.88x of the raw cosine's)."""
    (x, y), (test_x, test_y) = regions
    model = fit(x, y)
    raw = class_far_spread(cosine_matrix(test_x), test_y)
    calibrated = class_far_spread(model.score_matrix(test_x), test_y)
    assert calibrated < at_most * raw


@pytest.mark.parametrize(
    "fit",
    [lambda x, y: fit_asnorm(x, top_k=10), lambda x, y: fit_faircal(x, y, num_clusters=3)],
    ids=["asnorm", "faircal"],
)
def test_pair_scores_agree_with_the_matrix_and_the_json_round_trip(regions, fit) -> None:
    (x, y), (test_x, _) = regions
    model = fit(x, y)
    matrix = model.score_matrix(test_x[:20], test_x[20:50])
    assert matrix.shape == (20, 30)
    rows, cols = np.arange(20), np.arange(20) + 5
    np.testing.assert_allclose(
        model.scores(test_x[rows], test_x[20:50][cols]), matrix[rows, cols], rtol=1e-12
    )
    square = model.score_matrix(test_x)
    np.testing.assert_allclose(square, square.T, rtol=1e-12, atol=1e-12)
    again = type(model).from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_allclose(again.score_matrix(test_x), square, rtol=1e-12, atol=1e-12)


def test_asnorm_is_the_formula(regions) -> None:
    (x, _), (test_x, _) = regions
    model = fit_asnorm(x, top_k=5)
    a, b = test_x[:1], test_x[1:2]
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    cohort = np.stack([unit(r) for r in x])
    top_a = np.sort(cohort @ unit(a[0]))[-5:]
    top_b = np.sort(cohort @ unit(b[0]))[-5:]
    s = unit(a[0]) @ unit(b[0])
    sd_a, sd_b = max(top_a.std(), MIN_SIGMA), max(top_b.std(), MIN_SIGMA)
    expected = 0.5 * ((s - top_a.mean()) / sd_a + (s - top_b.mean()) / sd_b)
    assert model.scores(a, b)[0] == pytest.approx(expected, rel=1e-12)


def test_faircal_maps_never_decrease_and_average_both_sides(regions) -> None:
    (x, y), (test_x, _) = regions
    model = fit_faircal(x, y, num_clusters=2, seed=1)
    assert (model.maps[:, :2] >= 0).all()
    s = np.linspace(-0.99, 0.99, 50)
    from tcdml.posthoc.faircal import beta_map

    for params in model.maps:
        assert (np.diff(beta_map(s, params)) >= 0).all()
    a, b = test_x[:3], test_x[-3:]
    ka, kb = model.assign(a), model.assign(b)
    cos = np.sum(a / np.linalg.norm(a, axis=1)[:, None] * b / np.linalg.norm(b, axis=1)[:, None], axis=1)
    expected = 0.5 * (beta_map(cos, model.maps[ka]) + beta_map(cos, model.maps[kb]))
    np.testing.assert_allclose(model.scores(a, b), expected, rtol=1e-12)


def test_faircal_is_seeded(regions) -> None:
    (x, y), _ = regions
    first, second = fit_faircal(x, y, num_clusters=3, seed=4), fit_faircal(x, y, num_clusters=3, seed=4)
    np.testing.assert_array_equal(first.centroids, second.centroids)
    np.testing.assert_array_equal(first.maps, second.maps)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.score_matrix(np.ones((3, 7))), "7-d embeddings, but the model was fitted on 32-d"),
        (lambda m: m.scores(np.ones((3, 32)), np.ones((2, 32))), "a has 3 rows and b 2"),
        (lambda m: m.score_matrix(np.full((2, 32), np.nan)), "NaN or Inf"),
        (lambda m: m.score_matrix(np.zeros((2, 32))), "row 0 is all zeros"),
        (lambda m: m.score_matrix(np.ones(32)), "expected a non-empty 2-D array"),
    ],
)
@pytest.mark.parametrize("kind", ["asnorm", "faircal"])
def test_bad_input_is_one_line(regions, kind, call, message) -> None:
    (x, y), _ = regions
    model = fit_asnorm(x, top_k=5) if kind == "asnorm" else fit_faircal(x, y, num_clusters=2)
    with pytest.raises(TcdmlInputError, match=message) as error:
        call(model)
    assert "\n" not in str(error.value)


def test_bad_fits_and_stored_models_are_refused(regions) -> None:
    (x, y), _ = regions
    with pytest.raises(TcdmlInputError, match=r"top_k=1, expected an integer in 2\.\.180"):
        fit_asnorm(x, top_k=1)
    with pytest.raises(TcdmlInputError, match="num_clusters"):
        fit_faircal(x, y, num_clusters=0)
    with pytest.raises(TcdmlInputError, match="labels: length 3 does not match"):
        fit_faircal(x, y[:3])
    with pytest.raises(TcdmlInputError, match="fewer than 20 positive pairs"):
        fit_faircal(x, np.arange(len(x)))
    with pytest.raises(TcdmlInputError, match="expected a stored faircal model"):
        FairCalModel.from_dict(fit_asnorm(x).to_dict())
    stored = fit_faircal(x, y, num_clusters=2).to_dict()
    stored["maps"] = stored["maps"][:1]
    with pytest.raises(TcdmlInputError, match="stored 'maps' must be 2 x 3"):
        FairCalModel.from_dict(stored)
    with pytest.raises(TcdmlInputError, match="stored model has no 'cohort'"):
        ASNormModel.from_dict({"kind": "asnorm", "top_k": 5})
