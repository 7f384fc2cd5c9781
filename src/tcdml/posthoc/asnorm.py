"""Adaptive score normalisation (AS-norm, from speaker verification): one threshold on normalised scores.

Each side of a pair is compared with a **cohort** (calibration embeddings, e.g. the training set's): with
``C`` the L2-normalised cohort and ``x`` an L2-normalised embedding, ``mu_x`` and ``sigma_x`` are the mean
and standard deviation of the ``top_k`` largest cosine similarities ``<x, c>``, c in C. The normalised score
of a pair with cosine ``s = <a, b>`` is

    s' = 1/2 [ (s - mu_a) / sigma_a + (s - mu_b) / sigma_b ]

so a pair is judged against how similar each side is to its nearest impostors: in a dense region of the
embedding space (many close cohort neighbours) a high cosine counts for less than in a sparse one. This is
what makes one threshold mean the same false-accept rate across regions. ``sigma`` is floored at ``MIN_SIGMA``
(a side whose top-k cohort cosines agree to 1e-3, e.g. near-duplicates of it in the cohort, would otherwise
get scores in the hundreds of thousands). Fitting only stores the cohort; applying needs numpy only. The
cohort should not contain the embeddings being scored (their own similarity 1 would enter their top-k).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tcdml.deploy.asnorm import KIND, MIN_SIGMA, normalised, side_stats
from tcdml.errors import TcdmlInputError
from tcdml.posthoc.common import check_kind, paired_rows, stored_array, unit_rows

__all__ = ["KIND", "MIN_SIGMA", "ASNormModel", "fit_asnorm"]

#: Default cohort size per side.
DEFAULT_TOP_K = 100


@dataclass(frozen=True)
class ASNormModel:
    """A cohort (M x D, unit rows) and ``top_k``; ``scores`` / ``score_matrix`` give normalised scores."""

    cohort: np.ndarray
    top_k: int

    @property
    def embedding_size(self) -> int:
        return int(self.cohort.shape[1])

    def side_stats(self, embeddings: Any, name: str = "embeddings") -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma), each (N,): mean and standard deviation of each row's ``top_k`` cohort similarities."""
        return side_stats(unit_rows(embeddings, name, self.embedding_size), self.cohort, self.top_k)

    def scores(self, a: Any, b: Any) -> np.ndarray:
        """(N,) normalised scores of the pairs ``(a_i, b_i)`` (module docstring)."""
        x, y = unit_rows(a, "a", self.embedding_size), unit_rows(b, "b", self.embedding_size)
        paired_rows(x, y)
        s = np.einsum("ij,ij->i", x, y)
        (mu_a, sd_a), (mu_b, sd_b) = self.side_stats(x, "a"), self.side_stats(y, "b")
        return normalised(s, mu_a, sd_a, mu_b, sd_b)

    def score_matrix(self, a: Any, b: Any = None, *, name: str = "a") -> np.ndarray:
        """(N, M) normalised scores of every ``(a_i, b_j)``; ``b`` None: ``a`` against itself (symmetric).
        ``name`` names ``a`` in errors."""
        x = unit_rows(a, name, self.embedding_size)
        y = x if b is None else unit_rows(b, "b", self.embedding_size)
        mu_a, sd_a = self.side_stats(x, "a")
        mu_b, sd_b = (mu_a, sd_a) if b is None else self.side_stats(y, "b")
        return normalised(x @ y.T, mu_a[:, None], sd_a[:, None], mu_b[None, :], sd_b[None, :])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: ``kind``, ``top_k`` and the cohort as nested lists."""
        return {"kind": KIND, "top_k": self.top_k, "cohort": self.cohort.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ASNormModel:
        """The model ``to_dict`` wrote; one-line ``TcdmlInputError`` for anything else."""
        check_kind(data, KIND)
        cohort = unit_rows(stored_array(data, "cohort", 2, KIND), f"{KIND}: stored 'cohort'")
        return cls(cohort, _top_k(data.get("top_k"), len(cohort)))


def fit_asnorm(cohort_embeddings: Any, top_k: int = DEFAULT_TOP_K) -> ASNormModel:
    """An AS-norm model whose cohort is ``cohort_embeddings`` (M x D, e.g. the training embeddings)."""
    cohort = unit_rows(cohort_embeddings, "cohort embeddings")
    return ASNormModel(cohort, _top_k(top_k, len(cohort)))


def _top_k(value: Any, cohort_size: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 2 <= value <= cohort_size:
        raise TcdmlInputError(
            f"{KIND}: top_k={value!r}, expected an integer in 2..{cohort_size} (the cohort size)"
        )
    return int(value)
