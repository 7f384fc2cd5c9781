"""The one style helper behind every tcdml figure: colour-blind-safe colours, legible sizes, PNG + SVG output.

matplotlib is imported inside the functions (Agg backend), never at ``import tcdml`` time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tcdml.io.atomic import atomic_write

#: Okabe & Ito's palette, distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: A perceptually uniform colour map readable with colour-vision deficiencies.
SEQUENTIAL_CMAP = "cividis"

_RC = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": None,
    "savefig.dpi": 150,
    "svg.fonttype": "none",
}


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 7.0, height: float = 4.5) -> tuple[Any, Any]:
    """A figure with tcdml's style and ``nrows x ncols`` axes (a single ``Axes`` when 1 x 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    style = dict(_RC, **{"axes.prop_cycle": cycler(color=OKABE_ITO)})
    with plt.rc_context(style):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=True)
    for ax in fig.axes:
        _apply_axes_style(ax)
    return fig, axes


def _apply_axes_style(ax: Any) -> None:
    """Re-apply the rc style per axes (rc_context only covers creation, not later drawing)."""
    ax.grid(True, alpha=0.3)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.tick_params(labelsize=10)


#: The formats every figure is written in, one file each.
FIGURE_FORMATS = ("png", "svg")


def figure_names(stem: str) -> tuple[str, ...]:
    """The file names ``save_figure`` writes for ``stem`` (for checking them before the work starts)."""
    return tuple(f"{stem}.{suffix}" for suffix in FIGURE_FORMATS)


def save_figure(fig: Any, directory: str | os.PathLike, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` into ``directory`` (atomically) and close the figure.

    ``directory`` is created if missing (the CLI checks it first and writes through a staging folder).
    """
    import matplotlib.pyplot as plt

    directory = Path(directory)
    paths = []
    fig.tight_layout()
    for suffix in FIGURE_FORMATS:
        path = directory / f"{stem}.{suffix}"
        with atomic_write(path, "wb") as handle:
            fig.savefig(handle, format=suffix, dpi=150)
        paths.append(path)
    plt.close(fig)
    return paths
