"""The evaluator's seam: metric vs pass settings, the public stage API (tcdml.metrics.engine), the merge
declaration of PassState, and cheap arguments checked before any block is computed."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from tcdml.calibration import calibrate
from tcdml.errors import TcdmlInputError
from tcdml.metrics import EvaluationSettings, MetricSettings, PassSettings, evaluate, similarity_pass
from tcdml.metrics.compare import compare
from tcdml.metrics.engine import check_evaluation, finish, pair_counts, prepare_inputs, run_prepared
from tcdml.metrics.state import PassState, merge_rules, mergeable, merged_by
from tests.helpers import clustered_embeddings

X, Y = clustered_embeddings([9, 14, 3, 20, 1, 11], spread=0.8, seed=4)
SRC = Path(__file__).resolve().parents[2] / "src" / "tcdml"

# parameter -> a bad value; each group checks its own parameters, the combination checks all of them
METRIC_BAD = {
    "ks": (0,),
    "far_range": (0.2, 0.1),
    "beta": -1.0,
    "eps": 1.0,
    "num_thresholds": 1,
    "threshold": 2.0,
    "uncertainty": "many",
    "fmr_targets": (1e-3, 1e-3),
}
PASS_BAD = {
    "mode": "approx",
    "num_bins": 3,
    "knn_backend": "annoy",
    "device": "gpu0",
    "max_block_bytes": 0,
    "progress": "yes",
}
# how the one-line message names the parameter (the CLI's names where they differ)
NAMED = {"ks": "k=", "far_range": "far", "num_thresholds": "thresholds=", "progress": "progress="}


def test_the_groups_split_the_parameters_without_overlap() -> None:
    metric = [f.name for f in fields(MetricSettings)]
    engine = [f.name for f in fields(PassSettings)]
    assert set(metric) == set(METRIC_BAD) and set(engine) == set(PASS_BAD)
    assert [f.name for f in fields(EvaluationSettings)] == metric + engine
    settings = EvaluationSettings(ks=(8, 1), mode="exact", num_bins=64)
    assert settings.ks == (1, 8) and settings.mode == "exact" and settings.num_bins == 64
    assert isinstance(settings, MetricSettings) and isinstance(settings, PassSettings)


@pytest.mark.parametrize(
    ("kind", "name", "value"),
    [(MetricSettings, n, v) for n, v in METRIC_BAD.items()]
    + [(PassSettings, n, v) for n, v in PASS_BAD.items()],
)
def test_every_knob_is_checked_by_its_group_in_one_line(kind: type, name: str, value: object) -> None:
    for cls in (kind, EvaluationSettings):
        with pytest.raises(TcdmlInputError) as info:
            cls(**{name: value})
        message = str(info.value)
        assert NAMED.get(name, name) in message and "\n" not in message, message
    other = PassSettings if kind is MetricSettings else MetricSettings
    with pytest.raises(TypeError):
        other(**{name: value})  # a metric parameter is not a pass knob, and the other way round


def test_memory_checks_are_split_too() -> None:
    with pytest.raises(TcdmlInputError, match="thresholds=100000"):
        MetricSettings(num_thresholds=100_000).check_grid_memory(10_000, available=1 << 30)
    with pytest.raises(TcdmlInputError, match="num_bins=4194304"):
        PassSettings(num_bins=1 << 22).check_histogram_memory(10_000, available=1 << 30)
    PassSettings(mode="exact", num_bins=1 << 22).check_histogram_memory(10_000, available=1 << 30)


def test_calibrate_takes_pass_settings_and_no_ks(digits) -> None:
    x, y = digits
    by_keywords = calibrate(x, y, target_far=1e-2, num_bins=4096)
    by_settings = calibrate(x, y, target_far=1e-2, settings=PassSettings(num_bins=4096))
    assert by_keywords.threshold == by_settings.threshold
    with pytest.raises(TypeError):
        calibrate(x, y, target_far=1e-2, ks=(1,))  # a metric parameter: not calibrate's
    with pytest.raises(TcdmlInputError, match="expected PassSettings"):
        calibrate(x, y, target_far=1e-2, settings=MetricSettings())


def test_calibration_pass_searches_no_neighbours() -> None:
    settings = PassSettings()
    prepared = prepare_inputs(X, Y, None, None, settings)
    state = run_prepared(prepared, settings)
    assert state.hits is None and state.ap is None and state.pos_hist is not None and state.complete
    exact = run_prepared(prepared, PassSettings(mode="exact"))
    assert all(getattr(exact, name) is None for name in ("pos_hist", "neg_hist", "hits", "ap"))
    assert pair_counts(prepared, exact).total_neg() == pair_counts(prepared, state).total_neg()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tcdml.metrics"):
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_calibration_and_distributed_use_only_the_engine_api() -> None:
    for path in (SRC / "calibration" / "threshold.py", SRC / "metrics" / "distributed.py"):
        stages = {name for name in _imports(path) if "prepare" in name or "run_" in name or "finish" in name}
        assert stages and all(name.startswith("tcdml.metrics.engine.") for name in stages), (path, stages)
    for path in SRC.rglob("*.py"):
        if "metrics" not in path.parts:
            private = {name for name in _imports(path) if name.rsplit(".", 1)[1].startswith("_")}
            assert not private, (path, private)


def test_merge_of_row_splits_is_the_one_pass_state() -> None:
    settings = EvaluationSettings()
    prepared = prepare_inputs(X, Y, None, None, settings)
    whole = run_prepared(prepared, settings, ks=settings.ks)
    splits = ((0, 17), (17, 30), (30, prepared.num_queries))
    parts = [run_prepared(prepared, settings, range(a, b), ks=settings.ks) for a, b in splits]
    merged = parts[2].merge(parts[0]).merge(parts[1])  # any order
    for name in merge_rules(PassState):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name), err_msg=name)
    # the same through reduce, with a "process group" of one (the sum over one process is the identity)
    reduced = whole.reduce(lambda array: array)
    for name in merge_rules(PassState):
        np.testing.assert_array_equal(getattr(reduced, name), getattr(whole, name), err_msg=name)
    with pytest.raises(ValueError, match="same query rows twice"):
        whole.reduce(lambda array: 2 * array)  # two processes that both ran every row
    with pytest.raises(ValueError, match="does not cover every query row"):
        finish(prepared, parts[0], settings)
    with pytest.raises(ValueError, match="'pos_hist' differ"):
        parts[0].merge(run_prepared(prepared, PassSettings(num_bins=64), range(17, 30), ks=settings.ks))


def test_every_field_of_the_state_declares_its_merge() -> None:
    rules = merge_rules(PassState)
    assert rules == {
        "pos_hist": "sum",
        "neg_hist": "sum",
        "hits": "sum",
        "ap": "sum",
        "processed": "rows",
    } | {
        "sample_pos": "sum",
        "sample_neg": "sum",
    }
    assert [f.name for f in fields(PassState)] == list(rules)
    with pytest.raises(TypeError, match="neighbours declare no merge rule"):

        @mergeable
        class Extended(PassState):  # a new field, its merge forgotten
            neighbours: np.ndarray

    @mergeable
    class Declared(PassState):
        neighbours: np.ndarray = merged_by("sum")

    assert merge_rules(Declared)["neighbours"] == "sum"
    with pytest.raises(ValueError, match="merge rule 'max'"):
        merged_by("max")


@pytest.fixture
def no_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a similarity block is computed."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a block was computed before the arguments were checked")

    monkeypatch.setattr(similarity_pass, "block_rows", refuse)
    monkeypatch.setattr(similarity_pass, "_accumulate_histograms", refuse)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: evaluate(X, Y, ks=(1, 58)), "k=58 is larger than the 57 neighbours"),
        (lambda: evaluate(X, Y, eps=0.95), "eps=0.95 puts all 5 classes"),
        (lambda: evaluate(X, np.zeros(len(Y), int), needs_opis="--plot"), "--plot needs OPIS"),
        (lambda: evaluate(X[:4], np.arange(4)), "singletons"),
        (lambda: calibrate(X, Y, target_far=2.0), "target_far=2.0"),
        (lambda: calibrate(X, Y, target_far=0.1, num_worst=0), "num_worst=0"),
        (lambda: calibrate(X, np.zeros(len(Y), int), target_far=0.1), "no negative pairs"),
        (lambda: calibrate(X, np.arange(len(Y)), target_frr=0.1), "no positive pairs"),
        (lambda: compare(X, X, Y, ks=(1, 58)), "k=58"),
        (lambda: compare(X, X[:, :3].copy() * np.nan, Y), "model B: embeddings"),
    ],
)
def test_cheap_arguments_are_checked_before_the_pass(call, message: str, no_pass: None) -> None:
    with pytest.raises(TcdmlInputError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_check_evaluation_is_the_pre_pass_check() -> None:
    settings = EvaluationSettings(ks=(1, 100))
    prepared = prepare_inputs(X, Y, None, None, settings)
    with pytest.raises(TcdmlInputError, match="k=100"):
        check_evaluation(prepared, settings)
