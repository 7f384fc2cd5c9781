"""Bad values given to the Python API (one ``TcdmlInputError`` each), and what must keep working.

Scale: cosine similarity does not depend on a row's length, so the same directions at 1e19 or 1e-19 (or in
float64 beyond float32's range) give the results of unit scale. Numpy scalars are numbers. Labels keep
their values (uint64 at or above 2^63 included).
"""

from __future__ import annotations

import numpy as np
import pytest

from tcdml.calibration import calibrate, calibrate_counts
from tcdml.errors import TcdmlInputError
from tcdml.io.embeddings_file import load_embeddings_file
from tcdml.metrics import evaluate
from tcdml.metrics.settings import EvaluationSettings
from tests.helpers import clustered_embeddings

X, Y = clustered_embeddings([30, 40, 25, 35], dim=8, spread=[0.3, 0.6, 0.9, 0.5], seed=1)
ONCE = evaluate(X, Y)

BAD_CALLS = {
    "eps_bool": (lambda: evaluate(X, Y, eps=True), "eps=True"),
    "eps_nan32": (lambda: evaluate(X, Y, eps=np.float32("nan")), "eps=nan"),
    "eps_string": (lambda: evaluate(X, Y, eps="0.1"), "eps='0.1'"),
    "beta_bool": (lambda: evaluate(X, Y, beta=True), "beta=True"),
    "beta_inf64": (lambda: evaluate(X, Y, beta=np.float64("inf")), "beta=inf"),
    "beta_string": (lambda: evaluate(X, Y, beta="2"), "beta='2'"),
    "far_range_short": (lambda: evaluate(X, Y, far_range=(0.1,)), "expected a pair"),
    "far_range_string": (lambda: evaluate(X, Y, far_range="ab"), "far_min='a'"),
    "far_range_nan": (lambda: evaluate(X, Y, far_range=(np.float32("nan"), 0.1)), "far_min=nan"),
    "thresholds_bool": (lambda: evaluate(X, Y, num_thresholds=True), "thresholds=True"),
    "thresholds_fraction": (lambda: evaluate(X, Y, num_thresholds=2.5), "thresholds=2.5"),
    "thresholds_huge": (lambda: evaluate(X, Y, num_thresholds=10**9), "at most 100,000"),
    "ks_string": (lambda: evaluate(X, Y, ks="12"), "k='12'"),
    "ks_fraction": (lambda: evaluate(X, Y, ks=[1.5]), "positive integers"),
    "ks_bool": (lambda: evaluate(X, Y, ks=[True]), "positive integers"),
    "ks_empty": (lambda: evaluate(X, Y, ks=[]), "positive integers"),
    "bins_fraction": (lambda: evaluate(X, Y, num_bins=16.5), "num_bins=16.5"),
    "threshold_string": (lambda: evaluate(X, Y, threshold="0.5"), "threshold='0.5'"),
    "block_bytes_zero": (lambda: evaluate(X, Y, max_block_bytes=0), "max_block_bytes=0"),
    "progress_string": (lambda: evaluate(X, Y, progress="yes"), "progress='yes'"),
    "device_number": (lambda: evaluate(X, Y, device=3.5), "device=3.5"),
    "ragged_rows": (lambda: evaluate([[1.0, 2.0], [1.0]], [0, 1]), "not a numeric N x D array"),
    "string_array": (lambda: evaluate(X.astype(str), Y), "dtype <U"),
    "num_worst_negative": (lambda: calibrate(X, Y, target_far=0.01, num_worst=-2), "num_worst=-2"),
    "num_worst_zero": (lambda: calibrate_counts(ONCE.counts, target_far=0.01, num_worst=0), "num_worst=0"),
    "num_worst_bool": (lambda: calibrate(X, Y, target_far=0.01, num_worst=True), "num_worst=True"),
    "num_worst_fraction": (lambda: calibrate(X, Y, target_far=0.01, num_worst=1.5), "num_worst=1.5"),
    "target_far_bool": (lambda: calibrate(X, Y, target_far=True), "target_far=True"),
    "target_far_nan32": (lambda: calibrate(X, Y, target_far=np.float32("nan")), "target_far=nan"),
    "target_frr_string": (lambda: calibrate(X, Y, target_frr="0.1"), "target_frr='0.1'"),
    "grid_memory": (
        lambda: EvaluationSettings(num_thresholds=100_000).check_grid_memory(10_000, available=1 << 30),
        "ask for fewer thresholds",
    ),
    "histogram_memory": (
        lambda: EvaluationSettings(num_bins=1 << 22).check_histogram_memory(10_000, available=1 << 30),
        "ask for fewer",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_api_value_is_one_line(name: str) -> None:
    call, text = BAD_CALLS[name]
    with pytest.raises(TcdmlInputError) as info:
        call()
    assert text in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("scale", [1e19, 1e-19, 1e300, 1e-300, 1e-310])
def test_results_do_not_depend_on_the_scale_of_rows(scale: float) -> None:
    base64 = X.astype(np.float64)
    rows = base64 * np.geomspace(1.0, 1e3, len(Y))[:, None] * scale  # rows of different lengths too
    reference = evaluate(base64, Y, mode="exact").to_dict()
    scaled = evaluate(rows, Y, mode="exact").to_dict()
    for key in ("opis", "eps_opis", "map@r", "recall@1", "t_lo", "t_hi"):
        assert scaled[key] == pytest.approx(reference[key], abs=1e-6), key
    for target in ({"target_far": 0.01}, {"target_frr": 0.2}):
        at_unit, at_scale = calibrate(base64, Y, **target), calibrate(rows, Y, **target)
        assert at_scale.threshold == pytest.approx(at_unit.threshold, abs=1e-6)
        assert (at_scale.far, at_scale.frr) == pytest.approx((at_unit.far, at_unit.frr), abs=1e-6)


@pytest.mark.parametrize("scale", [1e19, 1e-19])
def test_float32_rows_at_extreme_scale(scale: float) -> None:
    scaled = evaluate((X * np.float32(scale)).astype(np.float32), Y).to_dict()
    for key in ("opis", "eps_opis", "map@r", "recall@1"):
        assert scaled[key] == pytest.approx(ONCE.to_dict()[key], abs=1e-6), key


def test_numpy_scalars_are_numbers() -> None:
    result = evaluate(
        X,
        Y,
        eps=np.float32(0.1),
        beta=np.int64(1),
        far_range=(np.float32(0.01), np.float64(0.1)),
        num_thresholds=np.int64(100),
        ks=np.array([1, 2, 4, 8]),
        threshold=np.float32(0.5),
    )
    assert result.to_dict()["opis"] == pytest.approx(ONCE.to_dict()["opis"], abs=1e-6)
    expected = calibrate(X, Y, target_far=0.01)
    got = calibrate(X, Y, target_far=np.float32(0.01), num_worst=np.int64(3))
    assert got.threshold == pytest.approx(expected.threshold, abs=1e-6) and len(got.worst("far")) == 3


def test_uint64_labels_keep_their_values(tmp_path) -> None:
    big = np.uint64(2**63 + 5) + Y.astype(np.uint64)
    result = evaluate(X, big)
    assert [row["label"] for row in result.per_class.rows()] == [2**63 + 5 + k for k in range(4)]
    table = result.per_class.write_csv(tmp_path / "c.csv").read_text().splitlines()
    assert table[1].startswith(f"{2**63 + 5},")
    worst = calibrate(X, big, target_far=0.01, num_worst=4).to_dict()["worst_far_classes"]
    assert {row["label"] for row in worst} == {2**63 + 5 + k for k in range(4)}


def test_npz_member_size_is_checked_before_reading(tmp_path) -> None:
    np.savez(tmp_path / "ok.npz", embeddings=X, labels=Y, extra=np.zeros((2, 2)))
    data = load_embeddings_file(tmp_path / "ok.npz")  # arrays other than docs/spec.md's are not read
    np.testing.assert_array_equal(data.embeddings, X)
