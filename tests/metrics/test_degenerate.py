"""Degenerate sets degrade, not die (docs/spec.md): where OPIS is undefined the retrieval metrics are still
returned, OPIS and everything read off the calibration range is None, and ``opis_undefined`` says why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tcdml.cli.main import main
from tcdml.errors import TcdmlInputError
from tcdml.io import save_embeddings_file
from tcdml.metrics import evaluate
from tcdml.metrics.compare import compare
from tcdml.metrics.plots import plot_utility_curves
from tests.badinput.harness import expect_clean_failure
from tests.helpers import clustered_embeddings

X, Y = clustered_embeddings([6, 7, 8], seed=0)
#: Read off the calibration range: None where OPIS is undefined.
UNDEFINED_KEYS = (
    "opis",
    "eps_opis",
    "opis_ci95",
    "eps_opis_ci95",
    "opis_noise_floor",
    "eps_opis_noise_floor",
    "opis_excess",
    "eps_opis_excess",
    "t_lo",
    "t_hi",
    "num_thresholds",
    "threshold",
    "worst_classes",
)

# name -> (labels, is_query, is_gallery, the reason's text)
SETS = {
    "single_class": (np.zeros(len(Y), int), None, None, "labels: a single class (0): no negative pairs"),
    "one_class_with_positives": (
        np.r_[np.zeros(6, int), np.arange(1, 16)],
        None,
        None,
        "only one class (0) has positive pairs",
    ),
    "no_negatives_in_split": (
        Y,
        Y == 2,
        Y == 2,
        "the queries and the gallery: a single class (2): no negative pairs",
    ),
}


@pytest.mark.parametrize("name", sorted(SETS))
@pytest.mark.parametrize("mode", ["histogram", "exact"])
def test_retrieval_metrics_survive_an_undefined_opis(name: str, mode: str) -> None:
    labels, is_query, is_gallery, reason = SETS[name]
    result = evaluate(X, labels, is_query=is_query, is_gallery=is_gallery, mode=mode, ks=(1, 4))
    assert result.opis_undefined.startswith(reason) and "\n" not in result.opis_undefined
    assert result.opis is None and result.eps_opis is None and result.per_class is None
    assert result.utilities is None and result.thresholds is None and result.opis_ci is None
    assert 0.0 < result.recall_at_k[1] <= 1.0 and 0.0 < result.map_at_r <= 1.0
    out = result.to_dict()
    assert json.loads(json.dumps(out, allow_nan=False)) == out  # strict JSON: null, never NaN
    assert all(out[key] is None for key in UNDEFINED_KEYS), {key: out[key] for key in UNDEFINED_KEYS}
    assert out["opis_undefined"] == result.opis_undefined and out["recall@1"] == result.recall_at_k[1]
    assert set(out) == set(evaluate(X, Y, ks=(1, 4)).to_dict()), "the keys do not depend on the set"
    with pytest.raises(TcdmlInputError, match="the utility-curve figure needs OPIS"):
        plot_utility_curves(result, "unused")


def test_a_defined_opis_says_so_with_null() -> None:
    out = evaluate(X, Y).to_dict()
    assert out["opis_undefined"] is None and out["opis"] > 0.0 and len(out["worst_classes"]) == 3


def test_single_class_retrieval_is_perfect() -> None:
    result = evaluate(X, np.zeros(len(Y), int), ks=(1, 4))
    assert result.recall_at_k == {1: 1.0, 4: 1.0} and result.map_at_r == 1.0
    assert result.num_classes == 1 and result.num_opis_classes == 1


def test_no_positive_pairs_at_all_is_still_refused() -> None:
    with pytest.raises(TcdmlInputError, match=r"singletons .* neither retrieval nor OPIS is defined"):
        evaluate(X, np.arange(len(Y)))


def test_compare_with_an_undefined_opis_compares_retrieval_only() -> None:
    labels = SETS["one_class_with_positives"][0]
    noisy = X + np.random.default_rng(1).normal(size=X.shape).astype(np.float32) * 0.3
    result = compare(X, noisy, labels)
    for name in ("opis", "eps_opis"):
        delta = result.deltas[name]
        assert delta.value is None and delta.ci is None and delta.verdict is None
        assert delta.undefined.startswith("models A and B: only one class (0)")
    recall = result.deltas["recall@1"]
    # one class has positive pairs: every resample draws it, so the interval is the point itself
    assert recall.ci == pytest.approx((recall.value, recall.value)) and recall.verdict == "worse"
    out = result.to_dict()
    assert out["delta_opis"] is None and out["delta_opis_ci95"] is None and out["verdict_opis"] is None
    assert out["opis_undefined"] == result.deltas["opis"].undefined
    assert out["a"]["opis"] is None and out["b"]["opis_undefined"].startswith("only one class")
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    with pytest.raises(TcdmlInputError, match="--plot needs OPIS"):
        compare(X, noisy, labels, needs_opis="--plot")


def test_compare_with_one_side_collapsed_names_the_side() -> None:
    # A: the collapsing set of test_bad_input (negatives at two values only); B: spread out.
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, -1.0], [0.0, -1.0]])
    y = np.array([0, 0, 1, 1, 2, 2])
    other = x + np.random.default_rng(0).normal(size=x.shape) * 0.3
    result = compare(x, other, y, ks=(1,))
    assert result.a.opis is None and result.b.opis is not None
    assert result.deltas["opis"].undefined.startswith("model A: calibration range collapses")


@pytest.fixture
def single_class_file(tmp_path: Path) -> Path:
    return save_embeddings_file(tmp_path / "one.npz", X, np.zeros(len(Y), int))


def test_cli_evaluate_json_on_a_degenerate_set(single_class_file: Path, capsys) -> None:
    assert main(["evaluate", str(single_class_file), "--format", "json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["opis"] is None and out["eps_opis"] is None and out["recall@1"] == 1.0
    assert out["opis_undefined"] == "labels: a single class (0): no negative pairs" and captured.err == ""


def test_cli_evaluate_table_on_a_degenerate_set(single_class_file: Path, capsys) -> None:
    assert main(["evaluate", str(single_class_file)]) == 0
    assert "opis_undefined" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "named"),
    [(["--plot", "fig"], "--plot needs OPIS"), (["--per-class", "c.csv"], "--per-class needs OPIS")],
)
def test_cli_outputs_that_need_opis_fail_in_one_line(
    single_class_file: Path, tmp_path: Path, options: list[str], named: str, capsys
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    argv = ["evaluate", single_class_file, "--format", "json", options[0], out / options[1]]
    expect_clean_failure(argv, capsys, watched=[out, single_class_file], contains=[named, "a single class"])


def test_cli_compare_on_a_degenerate_set(single_class_file: Path, tmp_path: Path, capsys) -> None:
    assert main(["compare", str(single_class_file), str(single_class_file), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["delta_opis"] is None and out["delta_recall@1"] == 0.0
    assert out["opis_undefined"].startswith("models A and B: labels: a single class")
    figures = tmp_path / "figures"
    argv = ["compare", single_class_file, single_class_file, "--plot", figures]
    expect_clean_failure(argv, capsys, watched=[figures], contains="--plot needs OPIS")
