"""Figures: written as PNG + SVG, for few and for many classes."""

from __future__ import annotations

import numpy as np
import pytest

from tcdml.calibration import calibrate
from tcdml.calibration.plots import plot_class_rates
from tcdml.metrics import evaluate
from tcdml.metrics.plots import plot_utility_curves, utility_curve_grid
from tests.helpers import clustered_embeddings


@pytest.mark.parametrize("sizes", [[6, 9, 12], [4] * 80])
def test_figures_are_written(tmp_path, sizes) -> None:
    x, y = clustered_embeddings(sizes, spread=0.9, seed=len(sizes))
    result = evaluate(x, y)
    grid = utility_curve_grid(result)
    assert grid[0] <= result.t_lo and grid[-1] >= result.t_hi
    paths = plot_utility_curves(result, tmp_path, title="test")
    paths += plot_class_rates(calibrate(x, y, target_far=0.05), tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        ["utility_curves.png", "utility_curves.svg", "class_far_frr.png", "class_far_frr.svg"]
    )
    for path in paths:
        assert path.stat().st_size > 5000
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.isfinite(result.utilities).all()
