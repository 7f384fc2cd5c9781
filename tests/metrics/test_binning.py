"""The pass's chunked binning (``similarity_pass._bin_counts``): its numpy path (CPU) and its torch path (GPU)
count what ``torch.histc`` and a direct count of each row's cells give."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tcdml.metrics.similarity_pass import _bin_counts


def _rows() -> torch.Tensor:
    """7 rows of float32 similarities with bin edges, -1, 1 and an excluded pair (-inf) among them."""
    rows = torch.rand((7, 3000), generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows[0, :41] = torch.linspace(-1.0, 1.0, 41)  # every edge of 40 bins, both ends included
    rows[1, :64] = torch.linspace(-1.0, 1.0, 65)[:-1]  # the edges of 64 bins
    rows[2, 5] = -torch.inf
    rows[4, 100] = -torch.inf
    return rows


SEGMENTS = [(0, 3, slice(10, 40)), (3, 7, slice(100, 1900))]
GROUPS = np.array([0, 0, 0, 1, 1, 1, 1])


def _counts(xp, rows: torch.Tensor, grid, group: np.ndarray, num_groups: int):
    data = rows.numpy() if xp is np else rows
    buffers = (xp.empty_like(data), xp.empty_like(data, dtype=xp.int64))
    group_array = group if xp is np else torch.as_tensor(group)
    every, positive = _bin_counts(xp, data, grid, (group_array, num_groups), SEGMENTS, buffers)
    return np.asarray(every), np.asarray(positive)


@pytest.mark.parametrize("xp", [np, torch], ids=["numpy", "torch"])
@pytest.mark.parametrize("bins", [40, 64, 37, 16384])
def test_class_bins_are_torch_histc_counts(xp, bins: int) -> None:
    rows = _rows()
    every, positive = _counts(xp, rows, (-1.0, bins / 2.0, bins), GROUPS, 2)
    for group, (first, stop, columns) in enumerate(SEGMENTS):
        expected = torch.histc(rows[first:stop], bins=bins, min=-1.0, max=1.0).numpy()
        np.testing.assert_array_equal(every[group], expected)
        expected = torch.histc(rows[first:stop, columns], bins=bins, min=-1.0, max=1.0).numpy()
        np.testing.assert_array_equal(positive[group], expected)


@pytest.mark.parametrize("xp", [np, torch], ids=["numpy", "torch"])
def test_sample_cells_count_each_row_at_or_above_low(xp) -> None:
    rows, low, count = _rows(), 0.3, 16
    every, positive = _counts(xp, rows, (low, count / (1.0 - low), count), np.arange(7), 7)
    for row in range(7):
        values = rows[row][rows[row] >= low]
        cells = ((values - low) * (count / (1.0 - low))).long().clamp_(0, count - 1)
        np.testing.assert_array_equal(every[row], np.bincount(cells.numpy(), minlength=count))
        columns = next(s[2] for s in SEGMENTS if s[0] <= row < s[1])
        values = rows[row, columns][rows[row, columns] >= low]
        cells = ((values - low) * (count / (1.0 - low))).long().clamp_(0, count - 1)
        np.testing.assert_array_equal(positive[row], np.bincount(cells.numpy(), minlength=count))


def test_embeddings_that_require_grad_are_evaluated_as_their_values() -> None:
    """The pass reads blocks through numpy: a tensor that requires grad (e.g. mid-training) is detached."""
    from tcdml.metrics import evaluate

    x = torch.randn(60, 8, generator=torch.Generator().manual_seed(1))
    y = np.repeat(np.arange(6), 10)
    expected = evaluate(x, y, ks=(1,), uncertainty=None)
    result = evaluate(x.clone().requires_grad_(True), y, ks=(1,), uncertainty=None)
    assert result.opis == expected.opis and result.opis_debiased == expected.opis_debiased
