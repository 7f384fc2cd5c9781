"""``PassState``: what a pass over some query rows accumulated, and how states of disjoint rows combine.

Every field declares its merge rule once (``merged_by``, the idea of torchmetrics' ``add_state(name, default,
dist_reduce_fx="sum")``); ``PassState.merge`` (two states in one process) and ``PassState.reduce`` (one state
per process, combined with an all-reduce sum such as ``torch.distributed.all_reduce``) are both derived from
those declarations. ``@mergeable`` refuses a state class with a field that declares none. The rules:

- ``"sum"``: counts (histograms) and per-query arrays that hold zeros on the rows a state did not process;
  the union of disjoint rows is the element-wise sum. ``None`` (not computed) merges only with ``None``.
- ``"rows"``: the boolean mask of processed query rows; states merge only over disjoint rows (a row counted
  twice is an error), and the union is the logical or.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np

#: The merge rules a field of a mergeable state may declare.
MERGE_RULES = ("sum", "rows")

#: A sum of an array over every process, the same on each (e.g. a wrapped ``torch.distributed.all_reduce``).
AllReduceSum = Callable[[np.ndarray], np.ndarray]

State = TypeVar("State")


def merged_by(rule: str) -> Any:
    """A field of a ``@mergeable`` state that combines across states by ``rule`` (one of ``MERGE_RULES``)."""
    if rule not in MERGE_RULES:
        raise ValueError(f"merge rule {rule!r}: expected one of {', '.join(MERGE_RULES)}")
    return field(metadata={"merge": rule})


def mergeable(cls: type[State]) -> type[State]:
    """Make ``cls`` a dataclass whose every field declares its merge rule (``merged_by``); else TypeError."""
    cls = dataclass(cls)
    undeclared = [f.name for f in fields(cls) if f.metadata.get("merge") not in MERGE_RULES]
    if undeclared:
        raise TypeError(
            f"{cls.__name__}: field(s) {', '.join(undeclared)} declare no merge rule; "
            f"use merged_by(rule), rule one of {', '.join(MERGE_RULES)}"
        )
    return cls


def merge_rules(state_class: type) -> dict[str, str]:
    """``{field name: merge rule}`` of a ``@mergeable`` class, in field order."""
    return {f.name: f.metadata["merge"] for f in fields(state_class)}


def _mismatch(name: str) -> ValueError:
    return ValueError(f"cannot merge pass states whose '{name}' differ (not of the same prepared set)")


def _merge_sum(name: str, first: np.ndarray | None, second: np.ndarray | None) -> np.ndarray | None:
    if first is None and second is None:
        return None
    if first is None or second is None or first.shape != second.shape:
        raise _mismatch(name)
    return first + second


def _merge_rows(name: str, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    if first.shape != second.shape:
        raise _mismatch(name)
    if np.any(first & second):
        raise ValueError("cannot merge pass states that processed the same query rows twice")
    return first | second


def _reduce_sum(name: str, value: np.ndarray | None, all_reduce_sum: AllReduceSum) -> np.ndarray | None:
    return None if value is None else all_reduce_sum(np.ascontiguousarray(value, dtype=np.float64))


def _reduce_rows(name: str, value: np.ndarray, all_reduce_sum: AllReduceSum) -> np.ndarray:
    times = all_reduce_sum(value.astype(np.float64))
    if np.any(times > 1):
        raise ValueError("cannot merge pass states that processed the same query rows twice")
    return times == 1


_MERGE = {"sum": _merge_sum, "rows": _merge_rows}
_REDUCE = {"sum": _reduce_sum, "rows": _reduce_rows}


@mergeable
class PassState:
    """What a pass over some query rows of one prepared set accumulated (all arrays float64 unless said).

    ``pos_hist`` / ``neg_hist``: (C, B) per-class histograms of positive / negative pair similarities (None
    when the pass kept none: exact mode). ``hits``: (Nq, len(ks)) Recall@k hits and ``ap``: (Nq,) AP@R per
    query, zero on rows not processed (None when the pass searched no neighbours). ``processed``: (Nq,) bool,
    the rows this state covers. ``sample_pos`` / ``sample_neg``: (N, M) per-sample histograms of each sample's
    positive / negative pair similarities in M coarse cells (None when not kept), for the jackknife of
    ``opis_debiased``.
    """

    pos_hist: np.ndarray | None = merged_by("sum")
    neg_hist: np.ndarray | None = merged_by("sum")
    hits: np.ndarray | None = merged_by("sum")
    ap: np.ndarray | None = merged_by("sum")
    processed: np.ndarray = merged_by("rows")
    sample_pos: np.ndarray | None = merged_by("sum")
    sample_neg: np.ndarray | None = merged_by("sum")

    def merge(self, other: PassState) -> PassState:
        """The state of the union of two passes over disjoint rows of the same prepared set."""
        return type(self)(
            **{
                name: _MERGE[rule](name, getattr(self, name), getattr(other, name))
                for name, rule in merge_rules(type(self)).items()
            }
        )

    def reduce(self, all_reduce_sum: AllReduceSum) -> PassState:
        """The union of every process's state, given a sum of an array over the processes (collective:
        every process calls it, with states of the same prepared set, fields in the same order)."""
        return type(self)(
            **{
                name: _REDUCE[rule](name, getattr(self, name), all_reduce_sum)
                for name, rule in merge_rules(type(self)).items()
            }
        )

    @property
    def complete(self) -> bool:
        """Whether every query row has been processed (what ``finish`` needs)."""
        return bool(self.processed.all())
