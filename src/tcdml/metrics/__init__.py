"""Pure maths of tcdml: OPIS, eps-OPIS, utility curves, Recall@k, MAP@R (torch + numpy only).

``evaluate(embeddings, labels)`` runs everything in one bounded-memory pass; the functions below it
(``opis``, ``eps_opis``, ``f_beta_utility``, ``retrieval_per_query`` ...) work on plain arrays.
``tcdml.metrics.engine`` holds the stages of the pass (prepare, run over some rows, merge, finish).
"""

from tcdml.errors import TcdmlInputError
from tcdml.metrics.evaluator import evaluate
from tcdml.metrics.exact import ExactPairSimilarities
from tcdml.metrics.histogram import PairHistogram
from tcdml.metrics.opis import eps_opis, opis, opis_per_class, worst_rest_gap
from tcdml.metrics.pair_counts import PairCounts
from tcdml.metrics.result import ClassTable, EvaluationResult
from tcdml.metrics.retrieval import retrieval_per_query, topk_by_similarity
from tcdml.metrics.settings import EvaluationSettings, MetricSettings, PassSettings
from tcdml.metrics.utility import calibration_range, class_utilities, f_beta_utility, threshold_grid

__all__ = [
    "ClassTable",
    "EvaluationResult",
    "EvaluationSettings",
    "ExactPairSimilarities",
    "MetricSettings",
    "PairCounts",
    "PairHistogram",
    "PassSettings",
    "TcdmlInputError",
    "calibration_range",
    "class_utilities",
    "eps_opis",
    "evaluate",
    "f_beta_utility",
    "opis",
    "opis_per_class",
    "retrieval_per_query",
    "threshold_grid",
    "topk_by_similarity",
    "worst_rest_gap",
]
