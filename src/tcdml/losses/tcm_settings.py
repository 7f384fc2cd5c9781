"""``TCMSettings``: the one typed, frozen description of a TCM regulariser and its checks.

``TCMLoss`` checks its parameters through it, the training config's ``loss.tcm`` mapping is read with
``TCMSettings.from_mapping``, ``tcdml adapt`` builds one from its options, and the CLI's help texts come from
``HELP``. Every check raises ``ParameterError(name, value, expected)`` with the field's own name; a front end
renames it (``loss.tcm.target_far`` in a config, ``--target-far`` on the command line).

Fields (docs/losses.md): ``lambda_pos`` / ``lambda_neg`` (>= 0) weigh the two terms; ``margins`` is the
strategy: ``fixed`` uses ``margin_pos`` / ``margin_neg`` (cosine similarities in [-1, 1]); ``auto`` reads
them off the training batches at ``target_far`` / ``target_frr`` (rates in (0, 1)) with an exponential
moving average of weight ``momentum`` (in (0, 1]), at least ``min_gap`` (in [0, 2)) apart, the given margins
serving only before the first batch. ``check_batches`` says whether P classes x m samples per batch hold
enough pairs to read each auto target off: ``PAIRS_BEYOND_QUANTILE / min(q, 1 - q)`` pairs.

>>> TCMSettings.from_mapping({"margins": "auto", "lambda_pos": 3.0}).lambda_pos
3.0
>>> TCMSettings.from_mapping({"margin_pos": 2})
Traceback (most recent call last):
...
tcdml.errors.ParameterError: margin_pos=2: expected a cosine similarity in [-1, 1]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from tcdml.checks import check_choice, check_real, require
from tcdml.errors import ParameterError

from .margins import DEFAULT_MIN_GAP, MARGIN_STRATEGIES, check_targets, pairs_needed

#: Fields that only the ``auto`` strategy reads.
AUTO_ONLY = ("target_far", "target_frr", "momentum", "min_gap")

#: One line of help per field (the CLI's option help reads these).
HELP = {
    "lambda_pos": "Weight of the hard-positive term (>= 0).",
    "lambda_neg": "Weight of the hard-negative term (>= 0).",
    "margin_pos": "m+: positives below it are pulled up (a cosine similarity; auto: the start value).",
    "margin_neg": "m-: negatives above it are pushed down (a cosine similarity; auto: the start value).",
    "margins": "fixed: the given margins; auto: read off the training batches at the FAR/FRR targets.",
    "target_far": "auto margins: m- at this false-accept rate of the batch negatives.",
    "target_frr": "auto margins: m+ at this false-reject rate of the batch positives.",
    "momentum": "auto margins: weight of each new batch in the moving average, in (0, 1].",
    "min_gap": "auto margins: the smallest m+ - m- kept, in [0, 2).",
}


@dataclass(frozen=True)
class TCMSettings:
    """The TCM regulariser's settings (module docstring); checked when built."""

    lambda_pos: float = 1.0
    lambda_neg: float = 1.0
    margin_pos: float = 0.9
    margin_neg: float = 0.5
    margins: str = "fixed"
    target_far: float = 0.1
    target_frr: float = 0.5
    momentum: float = 0.1
    min_gap: float = DEFAULT_MIN_GAP

    def __post_init__(self) -> None:
        for name in ("lambda_pos", "lambda_neg"):
            check_real(name, getattr(self, name), low=0.0)
        for name in ("margin_pos", "margin_neg"):
            check_real(name, getattr(self, name), low=-1.0, high=1.0, what="a cosine similarity")
        check_choice("margins", self.margins, MARGIN_STRATEGIES)
        check_targets(self.target_far, self.target_frr, self.min_gap, self.momentum)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TCMSettings:
        """Settings from a plain mapping (a config's ``loss.tcm``): unknown keys and keys of the ``auto``
        strategy given with fixed margins are refused, each as a ``ParameterError`` naming the key."""
        known = [field.name for field in fields(cls)]
        for key, value in values.items():
            require(key in known, str(key), value, f"a TCM parameter (one of {', '.join(known)})")
        if values.get("margins", "fixed") == "fixed":
            for key in AUTO_ONLY:
                require(key not in values, key, values.get(key), "no value: it is for margins: auto")
        return cls(**values)

    def check_batches(self, classes_per_batch: int, samples_per_class: int) -> None:
        """``ParameterError`` naming ``target_frr`` / ``target_far`` when ``auto`` margins cannot be read off
        batches of ``classes_per_batch`` x ``samples_per_class`` samples (``pairs_needed`` distinct pairs)."""
        if self.margins != "auto":
            return
        classes, per_class = classes_per_batch, samples_per_class
        # Distinct (unordered) pairs of one batch: the batch's matrix holds each twice, adding nothing.
        positives = classes * per_class * (per_class - 1) // 2
        negatives = classes * (classes - 1) * per_class * per_class // 2
        measured = (("positive", positives, "target_frr"), ("negative", negatives, "target_far"))
        for kind, pairs, name in measured:
            needed = pairs_needed(getattr(self, name))
            if pairs < needed:
                raise ParameterError.of(
                    name,
                    getattr(self, name),
                    f"a target that batches can measure: it needs at least {needed} {kind} pairs per batch, "
                    f"{classes} classes x {per_class} samples per batch give {pairs}",
                )

    def loss_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``TCMLoss`` / ``with_tcm`` (every field)."""
        return asdict(self)

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict."""
        return asdict(self)
