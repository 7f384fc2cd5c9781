"""The MNIST demo's figures, both runs side by side, drawn through ``tcdml.figures``.

- ``plot_class_clusters``: the seed article's picture. Top row: ArcFace's class weights as arrows from the
  origin, labelled with their digit, over the density of the test embeddings (2-D: a ring coloured by the
  per-class angle densities, each scaled to peak 1 and summed, so a dark gap separates two clusters and a
  bright bridge shows where they blur; 3-D: the embeddings on the sphere). Bottom row (2-D): each digit's
  angle density (von Mises KDE on the circle), where overlaps read directly.
- ``plot_utility_comparison``: per-class utility vs threshold for each run, side by side on one scale
  (``tcdml.metrics.plots.plot_utility_comparison``, the figure ``tcdml compare --plot`` draws).

Every cluster panel's title carries the runs' mean per-digit spread (``demo_stats.class_spreads``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.experiments.demo_stats import spread_name
from tcdml.figures import OKABE_ITO, SEQUENTIAL_CMAP, new_figure, save_figure

#: Concentration of the von Mises kernel (about 3.6 degrees wide) and the angle grid.
KDE_KAPPA = 250.0
NUM_ANGLES = 720


def class_colour(label: int) -> tuple[str, str]:
    """(colour, line style) of a digit: the 8 Okabe-Ito colours, then dashed for the rest."""
    return OKABE_ITO[label % len(OKABE_ITO)], "-" if label < len(OKABE_ITO) else "--"


def spread_title(run: Any) -> str:
    """``per-digit spread 11.4 deg (circular sd)``: the run's mean per-digit spread, for a panel title."""
    return f"per-digit spread {run.spreads.mean():.1f}° ({spread_name(run.embeddings.shape[1])})"


def angle_densities(embeddings: np.ndarray, labels: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(C, len(grid)) von Mises KDE of each class's embedding angle, normalised to integrate to 1."""
    angles = np.arctan2(embeddings[:, 1], embeddings[:, 0])
    out = []
    for label in np.unique(labels):
        kernel = np.exp(KDE_KAPPA * (np.cos(grid[:, None] - angles[labels == label][None, :]) - 1))
        density = kernel.sum(axis=1)
        out.append(density / (density.sum() * (grid[1] - grid[0])))
    return np.asarray(out)


def plot_class_clusters(runs: Sequence[Any], directory: str | os.PathLike) -> list[Path]:
    """Write ``mnist_clusters.png/.svg``: class weights over the test density, one column per run."""
    size = runs[0].embeddings.shape[1]
    if size == 3:
        return _plot_sphere(runs, directory)
    fig, axes = new_figure(ncols=len(runs), nrows=2, width=6.0, height=5.6)
    grid = np.linspace(-np.pi, np.pi, NUM_ANGLES, endpoint=False)
    densities = [angle_densities(run.embeddings, run.labels, grid) for run in runs]
    top = max(float(d.max()) for d in densities)
    for column, (run, density) in enumerate(zip(runs, densities, strict=True)):
        _draw_ring(axes[0, column], run, density, grid)
        _draw_angle_curves(axes[1, column], run, density, grid, top)
    fig.suptitle(
        "MNIST test digits in a 2-D embedding: ArcFace class weights (arrows) over the class densities",
        fontsize=13,
    )
    return save_figure(fig, directory, "mnist_clusters")


def _draw_ring(ax: Any, run: Any, density: np.ndarray, grid: np.ndarray) -> None:
    import matplotlib as mpl

    peak = density / density.max(axis=1, keepdims=True)
    summed = np.clip(peak.sum(axis=0), 0, 1.5)
    radius = np.linspace(0.78, 1.0, 12)
    theta, rr = np.meshgrid(np.append(grid, np.pi), radius)
    ax.set_facecolor(mpl.colormaps[SEQUENTIAL_CMAP](0.0))
    ax.pcolormesh(
        rr * np.cos(theta), rr * np.sin(theta), summed[None, :].repeat(len(radius) - 1, 0),
        cmap=SEQUENTIAL_CMAP, vmin=0, vmax=1.2, shading="flat",
    )  # fmt: skip
    for label, weight in enumerate(run.class_weights):
        ax.annotate(
            "", xy=(0.72 * weight[0], 0.72 * weight[1]), xytext=(0, 0),
            arrowprops={"arrowstyle": "-|>", "color": "white", "lw": 1.6},
        )  # fmt: skip
        ax.text(
            1.12 * weight[0], 1.12 * weight[1], str(label), ha="center", va="center", fontsize=13,
            fontweight="bold", color="black",
        )  # fmt: skip
    ax.set_xlim(-1.25, 1.25)
    ax.set_ylim(-1.25, 1.25)
    ax.set_aspect("equal")
    ax.grid(False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{run.title}: {spread_title(run)}\nring: test embeddings' class densities (bright = dense)")


def _draw_angle_curves(ax: Any, run: Any, density: np.ndarray, grid: np.ndarray, top: float) -> None:
    degrees = np.degrees(grid)
    for label, curve in enumerate(density):
        colour, style = class_colour(label)
        ax.plot(degrees, curve, color=colour, ls=style, lw=1.4)
        peak = int(np.argmax(curve))
        ax.text(degrees[peak], curve[peak] + 0.02 * top, str(label), color=colour, ha="center", fontsize=11,
                fontweight="bold")  # fmt: skip
    ax.set_xlim(-180, 180)
    ax.set_ylim(0, 1.1 * top)
    ax.set_xticks(range(-180, 181, 60))
    ax.set_xlabel("embedding angle (degrees)")
    ax.set_ylabel("density per digit")
    ax.set_title(f"{run.title}: angle density of each digit")


def _plot_sphere(runs: Sequence[Any], directory: str | os.PathLike) -> list[Path]:
    fig, _ = new_figure(ncols=len(runs), width=6.0, height=6.0)
    for ax in list(fig.axes):
        ax.remove()
    for column, run in enumerate(runs):
        ax = fig.add_subplot(1, len(runs), column + 1, projection="3d")
        for label in np.unique(run.labels):
            colour, _ = class_colour(int(label))
            points = run.embeddings[run.labels == label]
            ax.scatter(*points.T, s=4, color=colour, alpha=0.35, depthshade=False)
        for label, weight in enumerate(run.class_weights):
            colour, _ = class_colour(label)
            ax.quiver(0, 0, 0, *weight, color=colour, lw=2, arrow_length_ratio=0.1)
            ax.text(*(1.15 * weight), str(label), color="black", fontsize=12, fontweight="bold")
        ax.set_box_aspect((1, 1, 1))
        ax.set_title(f"{run.title}: {spread_title(run)}\ntest embeddings (dots) and class weights (arrows)")
    return save_figure(fig, directory, "mnist_clusters")


def plot_utility_comparison(runs: Sequence[Any], directory: str | os.PathLike) -> list[Path]:
    """Write ``mnist_utility_curves.png/.svg``: per-digit utility vs threshold of both runs, one y-scale."""
    from tcdml.metrics.plots import plot_utility_comparison as plot_pair

    base, tcm = runs
    return plot_pair(
        base.evaluation, tcm.evaluation, directory, "mnist_utility_curves", (base.title, tcm.title)
    )
