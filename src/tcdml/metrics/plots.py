"""The utility-vs-threshold figure (the seed article's): one curve per class, their mean, the range shaded."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tcdml.figures import SEQUENTIAL_CMAP, new_figure, save_figure
from tcdml.metrics.result import EvaluationResult
from tcdml.metrics.utility import class_utilities

#: At most this many class curves are drawn (a seeded random subset beyond it); the mean uses all classes.
MAX_CURVES = 1500


#: File stem of the figure (``utility_curves.png`` and ``utility_curves.svg`` in the chosen folder).
UTILITY_STEM = "utility_curves"


def utility_curve_grid(result: EvaluationResult, num_points: int = 200) -> np.ndarray:
    """Thresholds spanning the calibration range and the curves' rise and fall around it.

    From the median negative similarity (or ``t_lo`` if lower) to the 90th percentile of positive
    similarities (or ``t_hi`` if higher).
    """
    lo = min(result.t_lo, result.counts.neg_quantile(0.5))
    hi = max(result.t_hi, result.counts.pos_quantile(0.9))
    return np.linspace(lo, min(hi, 1.0), num_points)


def plot_utility_curves(
    result: EvaluationResult, directory: str | os.PathLike, stem: str = UTILITY_STEM, title: str = ""
) -> list[Path]:
    """Draw per-class ``U_c(t)`` over thresholds, coloured by mean utility in the calibration range.

    Writes ``stem.png`` and ``stem.svg`` in ``directory``; returns their paths. Refused (one-line
    ``TcdmlInputError``) where OPIS is undefined: there is no calibration range to draw.
    """
    result.require_opis("the utility-curve figure")
    fig, ax = new_figure()
    norm = _mean_utility_norm([result])
    _draw_utility_curves(ax, result, norm, title)
    _colour_bar(fig, ax, norm)
    return save_figure(fig, directory, stem)


def plot_utility_comparison(
    a: EvaluationResult,
    b: EvaluationResult,
    directory: str | os.PathLike,
    stem: str = "utility_curves_compare",
    titles: tuple[str, str] = ("A", "B"),
) -> list[Path]:
    """Two models' utility curves side by side (the seed article's second figure), on one y-scale and one
    colour scale, so the tighter bundle is the more threshold-consistent model (both with OPIS defined)."""
    for result, title in zip((a, b), titles, strict=True):
        result.require_opis(f"the utility-curve figure of {title}")
    fig, axes = new_figure(ncols=2, width=6.5, height=5.0)
    norm = _mean_utility_norm([a, b])
    for ax, result, title in zip(axes, (a, b), titles, strict=True):
        _draw_utility_curves(ax, result, norm, title)
    axes[1].sharey(axes[0])
    _colour_bar(fig, axes[1], norm)
    return save_figure(fig, directory, stem)


def _mean_utility_norm(results: list[EvaluationResult]):
    import matplotlib as mpl

    means = np.concatenate([result.utilities.mean(axis=1) for result in results])
    return mpl.colors.Normalize(vmin=float(means.min()), vmax=float(means.max()) + 1e-12)


def _colour_bar(fig, ax, norm) -> None:
    import matplotlib as mpl

    bar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=mpl.colormaps[SEQUENTIAL_CMAP]), ax=ax)
    bar.set_label("class mean utility in range")


def _draw_utility_curves(ax, result: EvaluationResult, norm, title: str) -> None:
    """One panel: every class's curve (coloured by ``norm`` of its mean utility in range), the mean curve,
    the calibration range shaded; OPIS (with its interval and noise floor when known) in the title."""
    import matplotlib as mpl

    grid = utility_curve_grid(result)
    curves = class_utilities(result.counts, grid, result.beta)
    curves = curves[result.counts.num_pos() > 0]
    mean_in_range = result.utilities.mean(axis=1)
    shown = np.arange(len(curves))
    if len(shown) > MAX_CURVES:
        shown = np.sort(np.random.default_rng(0).choice(len(curves), MAX_CURVES, replace=False))
    cmap = mpl.colormaps[SEQUENTIAL_CMAP]
    alpha = 0.7 if len(shown) <= 50 else max(0.08, 0.7 * 50 / len(shown))
    for index in shown:
        ax.plot(grid, curves[index], color=cmap(norm(mean_in_range[index])), lw=0.9, alpha=alpha)
    ax.plot(grid, curves.mean(axis=0), color="black", lw=2.5, label="mean over classes")
    far_min, far_max = result.far_range
    ax.axvspan(
        result.t_lo,
        result.t_hi,
        color="0.6",
        alpha=0.25,
        label=f"calibration range (FAR {far_max:g} to {far_min:g})",
    )
    ax.set_xlabel("similarity threshold t (cosine; accept if s >= t)")
    ax.set_ylabel(f"utility U(t) (F{result.beta:g} of TPR, TNR)")
    ax.set_ylim(0, 1.02)
    subset = f", {len(shown)} of {len(curves)} shown" if len(shown) < len(curves) else ""
    lines = [f"{title + ': ' if title else ''}{len(curves)} classes{subset}"]
    lines.append(f"OPIS = {result.opis:.4g}, {result.eps:.0%}-OPIS = {result.eps_opis:.4g}")
    if result.opis_ci is not None:
        low, high = result.opis_ci
        floor = result.opis_noise_floor
        lines.append(f"OPIS {result.ci_level:.0%} CI [{low:.3g}, {high:.3g}], noise floor {floor:.2g}")
    ax.set_title("\n".join(lines))
    ax.legend(loc="lower left")
