"""The one catalogue of tcdml's metrics: each metric's key, direction, display name and display scale.

Every list of metrics reads it: ``compare``'s verdicts, the CLI tables, the study and demo tables, adapt's
selection, and (for the lead to switch over) training's monitor and logged metrics. A key may be a family
member: ``recall@4`` is a member of ``recall@k``, ``fnmr@fmr=1e-3`` of ``fnmr@fmr``.

Add a metric (docs/extend.md): one ``Metric`` entry here, the code computing it in ``tcdml.metrics``, and its
key in ``EvaluationResult.to_dict()``; every table and verdict then knows it::

    >>> metric("fnmr@fmr=1e-3").higher_is_better, metric("recall@4").display, metric("opis").display
    (False, 'R@4', 'OPIS x1e-3')
    >>> metric("opis").verdict((-0.002, -0.001))
    'better'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tcdml.errors import TcdmlInputError

#: The default calibration range (far_min, far_max): one constant for every default that names it.
DEFAULT_FAR_RANGE: tuple[float, float] = (1e-2, 1e-1)
#: The default FMR (= FAR) targets of the FNMR@FMR metrics.
DEFAULT_FMR_TARGETS: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
#: The verdict of an interval that holds 0.
NO_CHANGE = "no detectable change"


@dataclass(frozen=True)
class Metric:
    """One metric: ``key`` (the JSON key, or a family's stem), ``higher_is_better``, ``name`` (short, for
    prose and verdict lists), ``scale`` (a table shows ``value * scale``, e.g. 1e3 for OPIS), ``group``
    (evaluate's table section) and ``undefined_with_opis`` (read off the calibration range: None where OPIS
    is undefined)."""

    key: str
    higher_is_better: bool
    name: str
    scale: float = 1.0
    group: str = "retrieval"
    undefined_with_opis: bool = False

    @property
    def display(self) -> str:
        """A table's name: ``name``, with the unit of the scaled values (``OPIS x1e-3``)."""
        if self.scale == 1.0:
            return self.name
        return f"{self.name} x1e{-round(math.log10(self.scale))}"

    @property
    def direction(self) -> str:
        """``"max"`` or ``"min"`` (what a checkpoint monitor wants)."""
        return "max" if self.higher_is_better else "min"

    def verdict(self, ci: tuple[float, float]) -> str:
        """The verdict on this metric's change B minus A with interval ``ci`` (``verdict``)."""
        return verdict(ci, self.higher_is_better)

    def shown(self, value: float | None, digits: int = 4) -> str:
        """``value`` on the metric's display scale (``n/a`` for None / NaN)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "n/a"
        return f"{value * self.scale:.{digits}g}"


def _consistency(key: str, name: str, scale: float = 1e3) -> Metric:
    return Metric(key, False, name, scale, "consistency", True)


#: Every fixed metric, by key (families below).
CATALOGUE: dict[str, Metric] = {
    metric.key: metric
    for metric in (
        Metric("map@r", True, "MAP@R"),
        # The selection objective of training and adapt: J = R@1 - OPIS (undefined where OPIS is).
        Metric("recall@1-opis", True, "R@1 - OPIS", group="selection", undefined_with_opis=True),
        _consistency("opis", "OPIS"),
        _consistency("eps_opis", "eps-OPIS"),
        _consistency("opis_debiased", "OPIS debiased"),
        _consistency("opis_noise_floor", "OPIS noise floor"),
        _consistency("eps_opis_noise_floor", "eps-OPIS noise floor"),
        _consistency("opis_excess", "OPIS minus floor"),
        _consistency("eps_opis_excess", "eps-OPIS minus floor"),
        Metric("auc", True, "ROC AUC", group="verification"),
        Metric("eer", False, "EER", group="verification"),
        Metric("eer_threshold", True, "EER threshold", group="verification"),
        Metric("class_spread", False, "per-digit spread (degrees)", group="demo"),
        Metric("far_spread", False, "class FAR spread", group="demo"),
        Metric("frr_spread", False, "class FRR spread", group="demo"),
    )
}
#: Families: a key ``<stem><suffix>`` is a member (``recall@4``, ``fnmr@fmr=1e-3``).
FAMILIES: dict[str, Metric] = {
    "recall@": Metric("recall@", True, "R@"),
    "fnmr@fmr=": Metric("fnmr@fmr=", False, "FNMR @ FMR ", group="verification"),
    "threshold@fmr=": Metric("threshold@fmr=", True, "threshold @ FMR ", group="verification"),
}


#: The metrics an evaluation during training reports besides ``recall@k`` (what a checkpoint monitor may
#: name), in the order they are logged.
HEADLINE = ("map@r", "opis", "eps_opis")


#: What may select a kept model besides the headline metrics (``eval.monitor``, adapt's ``select``).
OBJECTIVE = "recall@1-opis"


def headline_metrics(ks: tuple[int, ...], *, objective: bool = False) -> dict[str, Metric]:
    """``recall@k`` for each k of ``ks``, then ``HEADLINE`` (and ``OBJECTIVE`` first when ``objective``):
    key -> catalogue entry (its ``direction`` is what a checkpoint monitor's mode needs)."""
    keys = [*((OBJECTIVE,) if objective else ()), *(f"recall@{k}" for k in ks), *HEADLINE]
    return {key: metric(key) for key in keys}


def metric(key: str) -> Metric:
    """The catalogue entry of ``key`` (a family member gets its family's direction, its own key and name)."""
    if key in CATALOGUE:
        return CATALOGUE[key]
    for stem, family in FAMILIES.items():
        if key.startswith(stem) and len(key) > len(stem):
            suffix = key[len(stem) :]
            return Metric(key, family.higher_is_better, family.name + suffix, family.scale, family.group)
    raise TcdmlInputError(f"metric {key!r}: not in the catalogue (tcdml.metrics.catalogue)")


def higher_is_better(key: str) -> bool:
    """Whether a higher value of ``key`` is better."""
    return metric(key).higher_is_better


def verdict(ci: tuple[float, float], higher_is_better: bool) -> str:
    """The one verdict rule: ``better`` / ``worse`` when the interval of B minus A excludes 0 (in the
    metric's direction), else ``no detectable change`` (also for a NaN interval)."""
    low, high = ci
    if math.isnan(low) or (low <= 0.0 <= high):
        return NO_CHANGE
    return "better" if (low > 0.0) == higher_is_better else "worse"


def fmr_key(fmr: float, stem: str = "fnmr@fmr=") -> str:
    """``fnmr@fmr=1e-3`` for 0.001: the key of an FMR target (mantissa without trailing zeros)."""
    mantissa, exponent = f"{fmr:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{stem}{mantissa}e{int(exponent)}"
