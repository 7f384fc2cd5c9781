"""Per-class FAR and FRR at the calibrated threshold: how unequal one global threshold is."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tcdml.calibration.threshold import CalibrationResult
from tcdml.figures import OKABE_ITO, new_figure, save_figure

#: File stem of the figure (``class_far_frr.png`` and ``class_far_frr.svg`` in the chosen folder).
CLASS_RATES_STEM = "class_far_frr"


def plot_class_rates(
    result: CalibrationResult, directory: str | os.PathLike, stem: str = CLASS_RATES_STEM
) -> list[Path]:
    """Two panels, classes sorted by rate: per-class FAR and per-class FRR, with the overall rate marked.

    Writes ``stem.png`` and ``stem.svg`` in ``directory``; returns their paths.
    """
    fig, axes = new_figure(ncols=2, width=5.5)
    panels = (
        ("far", result.class_far, result.far, OKABE_ITO[3]),
        ("frr", result.class_frr, result.frr, OKABE_ITO[0]),
    )
    for ax, (name, rates, overall, colour) in zip(axes, panels, strict=True):
        defined = np.isfinite(rates)
        order = np.argsort(-rates[defined], kind="stable")
        finite, labels = rates[defined][order], result.class_labels[defined][order]
        ranks = np.arange(1, len(finite) + 1)
        if len(finite) <= 30:  # few classes: one labelled bar each
            ax.bar(ranks, finite, color=colour, width=0.85)
            ax.set_xticks(ranks, [str(label) for label in labels])
        else:
            ax.fill_between(ranks, finite, step="mid", color=colour, alpha=0.8)
        ax.axhline(overall, color="black", lw=1.5, ls="--", label=f"overall {name.upper()} = {overall:.3g}")
        if result.target == name:
            ax.axhline(
                result.target_rate, color=OKABE_ITO[1], lw=1.5, label=f"target = {result.target_rate:g}"
            )
        ax.set_xlabel(f"classes, worst first ({len(finite)} classes)")
        ax.set_ylabel(f"per-class {name.upper()}")
        ax.set_title(f"{name.upper()} per class at t = {result.threshold:.4g}")
        ax.legend(loc="upper right")
    fig.suptitle(
        f"One threshold for every class (calibrated for {result.target.upper()} <= {result.target_rate:g})"
    )
    return save_figure(fig, directory, stem)
