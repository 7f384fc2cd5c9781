"""The one metric catalogue (tcdml.metrics.catalogue) and the lists that read it."""

from __future__ import annotations

import pytest

from tcdml.errors import TcdmlInputError
from tcdml.metrics.catalogue import (
    CATALOGUE,
    DEFAULT_FAR_RANGE,
    NO_CHANGE,
    fmr_key,
    headline_metrics,
    metric,
    verdict,
)


def test_fmr_keys_are_short_and_exact() -> None:
    assert [fmr_key(a) for a in (1e-4, 1e-3, 1e-2, 2.5e-3, 0.05)] == [
        "fnmr@fmr=1e-4",
        "fnmr@fmr=1e-3",
        "fnmr@fmr=1e-2",
        "fnmr@fmr=2.5e-3",
        "fnmr@fmr=5e-2",
    ]
    assert fmr_key(1e-3, "threshold@fmr=") == "threshold@fmr=1e-3"


def test_families_directions_and_display() -> None:
    assert metric("recall@8").higher_is_better and metric("recall@8").display == "R@8"
    assert not metric("fnmr@fmr=1e-3").higher_is_better
    assert metric("opis").display == "OPIS x1e-3" and metric("opis").shown(0.0123) == "12.3"
    assert metric("eer").direction == "min" and metric("auc").direction == "max"
    with pytest.raises(TcdmlInputError, match="'nope': not in the catalogue"):
        metric("nope")


def test_one_verdict_rule() -> None:
    assert verdict((0.01, 0.02), True) == "better" and verdict((0.01, 0.02), False) == "worse"
    assert verdict((-0.01, 0.02), True) == NO_CHANGE and verdict((float("nan"),) * 2, False) == NO_CHANGE
    assert metric("eer").verdict((-0.02, -0.01)) == "better"


def test_the_lists_read_the_catalogue() -> None:
    from tcdml.experiments.demo_report import TABLE_ROWS
    from tcdml.experiments.study_table import DISPLAY_SCALE, TABLE_METRICS
    from tcdml.metrics.compare import HIGHER_IS_BETTER
    from tcdml.metrics.settings import MetricSettings

    for key, _, higher in (*TABLE_ROWS, *TABLE_METRICS):
        assert higher == metric(key).higher_is_better, key
    assert all(higher == metric(key).higher_is_better for key, higher in HIGHER_IS_BETTER.items())
    assert DISPLAY_SCALE == {"opis": 1e3, "eps_opis": 1e3}
    assert MetricSettings().far_range == DEFAULT_FAR_RANGE
    assert list(headline_metrics((1, 4))) == ["recall@1", "recall@4", "map@r", "opis", "eps_opis"]
    assert all(entry.key == key for key, entry in CATALOGUE.items())
