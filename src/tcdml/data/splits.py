"""Validation classes held out of a training split, and a view of a dataset on some of its classes.

``validation_classes(labels, size, seed)`` is the one rule ``tcdml train`` (``data.val_classes``) and
``tcdml adapt`` (``--val-ratio``) use to pick the classes that select a model: the C classes with >= 2
samples, sorted, permuted by ``numpy.random.default_rng(seed)``; the first ``n`` are held out (all their
samples), the others train. ``size`` is a fraction (``n = min(max(2, round(size x C)), C - 2)``) or a count
(``n = size``, at most ``C - 2``), so at least 2 classes validate and at least 2 train.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tcdml.data.base import LabelledDataset, Modality
from tcdml.errors import TcdmlInputError

#: Classes with >= 2 samples a held-out validation needs: 2 to validate (a positive pair in each, negative
#: pairs across them) and 2 left to train.
MIN_CLASSES = 4


def num_validation_classes(size: float | int, eligible: int) -> int:
    """How many of ``eligible`` classes a validation ``size`` (fraction in (0, 1) or count >= 2) holds out."""
    if isinstance(size, float):
        return min(max(2, round(size * eligible)), eligible - 2)
    return int(size)


def validation_classes(
    labels: np.ndarray, size: float | int, seed: int, *, name: str = "labels", hint: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """``(train_mask, val_mask)`` over ``labels``: disjoint by class, seeded (module docstring).

    Raises ``TcdmlInputError`` naming ``name`` when fewer than ``MIN_CLASSES`` classes have >= 2 samples,
    or when a count ``size`` leaves fewer than 2 classes to train; ``hint`` ends the message (what to do).
    """
    classes, counts = np.unique(labels, return_counts=True)
    eligible = classes[counts >= 2]
    if len(eligible) < MIN_CLASSES:
        raise TcdmlInputError(
            f"{name}: {len(eligible)} class(es) with >= 2 samples; holding out validation classes needs at "
            f"least {MIN_CLASSES} (2 to validate: a positive pair in each and negative pairs across them; 2 "
            f"to train){hint}"
        )
    count = num_validation_classes(size, len(eligible))
    if count > len(eligible) - 2:
        raise TcdmlInputError(
            f"{name}: holding out {count} validation classes leaves {len(eligible) - count} of the "
            f"{len(eligible)} classes with >= 2 samples to train (expected at most {len(eligible) - 2}){hint}"
        )
    held_out = eligible[np.random.default_rng(seed).permutation(len(eligible))[:count]]
    val = np.isin(labels, held_out)
    return ~val, val


class ClassSubset(LabelledDataset):
    """The samples of ``dataset`` where ``mask`` is true, their classes renumbered ``0 .. C'-1`` in the order
    of their labels in ``dataset``; samples are ``dataset.load_sample`` passed through this view's own
    ``transform`` (so one split can serve training and validation with different transforms)."""

    def __init__(
        self, dataset: LabelledDataset, mask: np.ndarray, *, split: str, transform: Any = None
    ) -> None:
        self.indices = np.flatnonzero(mask)
        classes, labels = np.unique(dataset.labels[self.indices], return_inverse=True)
        super().__init__(
            [dataset.paths[i] for i in self.indices],
            labels,
            class_names=[dataset.class_names[c] for c in classes],
            name=dataset.name,
            split=split,
            transform=transform,
        )
        self.dataset = dataset

    @property
    def modality(self) -> Modality:
        return self.dataset.modality

    def load_sample(self, index: int) -> Any:
        return self.dataset.load_sample(int(self.indices[index]))
