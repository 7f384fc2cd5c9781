"""Pure maths of tcdml: OPIS, eps-OPIS, utility curves, Recall@k, MAP@R, verification (torch + numpy only).

``evaluate(embeddings, labels)`` runs everything in one bounded-memory pass; the functions below it
(``opis``, ``eps_opis``, ``f_beta_utility``, ``retrieval_per_query`` ...) work on plain arrays.
``tcdml.metrics.engine`` holds the stages of the pass (prepare, run over some rows, merge, finish);
``tcdml.metrics.catalogue`` the one list of metric names, directions and display names.

The names below load on first use (PEP 562), so ``tcdml.metrics.catalogue`` imports without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# ``opis`` names both a submodule and its function: bind the function now (numpy only), so importing the
# submodule later cannot leave the module object where the function is expected.
from tcdml.metrics.opis import eps_opis as eps_opis
from tcdml.metrics.opis import opis as opis
from tcdml.metrics.opis import opis_per_class as opis_per_class
from tcdml.metrics.opis import worst_rest_gap as worst_rest_gap

#: Public name -> the module defining it.
_EXPORTS = {
    "ClassTable": "result",
    "EvaluationResult": "result",
    "EvaluationSettings": "settings",
    "ExactPairSimilarities": "exact",
    "MetricSettings": "settings",
    "PairCounts": "pair_counts",
    "PairHistogram": "histogram",
    "PassSettings": "settings",
    "TcdmlInputError": "tcdml.errors",
    "calibration_range": "utility",
    "class_utilities": "utility",
    "evaluate": "evaluator",
    "f_beta_utility": "utility",
    "retrieval_per_query": "retrieval",
    "threshold_grid": "utility",
    "topk_by_similarity": "retrieval",
}
__all__ = sorted([*_EXPORTS, "eps_opis", "opis", "opis_per_class", "worst_rest_gap"])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tcdml.metrics' has no attribute {name!r}")
    where = _EXPORTS[name]
    module = import_module(where if "." in where else f"tcdml.metrics.{where}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
