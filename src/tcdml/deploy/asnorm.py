"""AS-norm scores at serve time (numpy only): what an export folder's ``scores`` section makes ``match``
and ``search`` compare with the threshold.

With ``C`` the L2-normalised cohort (M x D) and ``x`` a unit embedding, ``mu_x`` and ``sigma_x`` are the mean
and standard deviation of the ``top_k`` largest cosines ``<x, c>``, c in C, ``sigma`` floored at
``MIN_SIGMA``. The score of a pair whose cosine is ``s`` is

    s' = 1/2 [ (s - mu_a) / sigma_a + (s - mu_b) / sigma_b ]

(``tcdml.posthoc.asnorm`` fits and evaluates it; this module applies it.) For one query ``q`` and one gallery
item ``g``, ``s' >= t`` exactly when ``s >= b(q, g) = (2 t + mu_q / sigma_q + mu_g / sigma_g) / (1 / sigma_q +
1 / sigma_g)``: the per-pair cosine bound ``search`` uses to find candidates (no single cosine radius bounds
every pair, so the search is a blocked product over the whole gallery).
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tcdml.errors import TcdmlInputError

KIND = "asnorm"
#: The floor of a side's cohort standard deviation (in cosine units; a degenerate cohort would divide by 0).
MIN_SIGMA = 1e-3
#: The export folder's cohort file (float32 unit rows, ``np.save`` format).
COHORT_FILE = "asnorm_cohort.npy"
#: Unit rows of a stored cohort are accepted within this distance of norm 1.
COHORT_NORM_TOLERANCE = 1e-4
#: How many arrays' (mu, sigma) a ``ScoreNorm`` keeps (a search's queries and its gallery).
STATS_MEMO = 2


def cohort_top_k(x: np.ndarray, cohort: np.ndarray, k: int, rows: int = 4096) -> np.ndarray:
    """(N, k) the ``k`` largest similarities ``<x_i, c>`` of each unit row of ``x`` to the cohort, computed in
    the cohort's dtype (row blocks of ``rows``), returned as float64."""
    out = np.empty((len(x), k))
    for start in range(0, len(x), rows):
        sim = x[start : start + rows].astype(cohort.dtype) @ cohort.T
        out[start : start + rows] = np.partition(sim, sim.shape[1] - k, axis=1)[:, -k:]
    return out


def side_stats(x: np.ndarray, cohort: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma), each (N,): mean and standard deviation (floored at ``MIN_SIGMA``) of each row's ``k``
    largest cohort similarities."""
    top = cohort_top_k(x, cohort, k)
    return top.mean(axis=1), np.maximum(top.std(axis=1), MIN_SIGMA)


def normalised(
    s: np.ndarray, mu_a: np.ndarray, sd_a: np.ndarray, mu_b: np.ndarray, sd_b: np.ndarray
) -> np.ndarray:
    """``1/2 [(s - mu_a) / sd_a + (s - mu_b) / sd_b]`` (broadcasting), in float64."""
    s = np.asarray(s, dtype=np.float64)
    return 0.5 * ((s - mu_a) / sd_a + (s - mu_b) / sd_b)


@dataclass(frozen=True)
class ScoreNorm:
    """An export's AS-norm: the cohort (M x D float32 unit rows, as stored: the cohort cosines are float32
    products, their mean and standard deviation float64) and ``top_k``.

    ``stats`` remembers the last ``STATS_MEMO`` arrays it was given, by content (shape, dtype and a blake2b
    digest of the bytes): a gallery searched again with new queries is compared with the cohort once.
    """

    cohort: np.ndarray
    top_k: int
    _memo: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) of each row of ``x`` (``side_stats``; the same arrays again for the same content: do
        not change them)."""
        x = np.ascontiguousarray(x)
        key = (x.shape, x.dtype.str, hashlib.blake2b(x.data, digest_size=16).digest())
        with self._lock:
            found = self._memo.get(key)
            if found is not None:
                self._memo.move_to_end(key)
                return found
        found = side_stats(x, self.cohort, self.top_k)
        with self._lock:
            self._memo[key] = found
            while len(self._memo) > STATS_MEMO:
                self._memo.popitem(last=False)
        return found

    @staticmethod
    def cosine_bound(
        threshold: float, query: tuple[np.ndarray, np.ndarray], gallery: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """(Q, G) the cosine ``b(q, g)`` at or above which the pair's score reaches ``threshold``, in the
        stats' dtype."""
        (mu_q, sd_q), (mu_g, sd_g) = query, gallery
        offset = 2.0 * threshold + (mu_q / sd_q)[:, None] + (mu_g / sd_g)[None, :]
        return offset / ((1.0 / sd_q)[:, None] + (1.0 / sd_g)[None, :])


def read_cohort(content: bytes, path: Path, embedding_size: int, cohort_size: int, top_k: int) -> ScoreNorm:
    """The ``ScoreNorm`` of a cohort file's bytes (``np.save`` format, no pickle), checked: a float (M, D)
    array with M = ``cohort_size`` and D = ``embedding_size``, finite unit rows (``top_k`` in 2..M is
    checked with the manifest: ``tcdml.deploy.manifest``)."""
    try:
        array = np.load(io.BytesIO(content), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise TcdmlInputError(f"{path}: not a numpy .npy array ({exc})") from None
    expected = f"a float ({cohort_size}, {embedding_size}) array of unit rows"
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise TcdmlInputError(f"{path}: dtype {getattr(array, 'dtype', None)}, expected {expected}")
    if array.shape != (cohort_size, embedding_size):
        raise TcdmlInputError(
            f"{path}: shape {array.shape}, expected {expected} (a cohort of another model?)"
        )
    cohort = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(cohort).all()
    norms = np.linalg.norm(cohort.astype(np.float64), axis=1) if finite else np.array([np.nan])
    if not (np.abs(norms - 1.0) <= COHORT_NORM_TOLERANCE).all():
        raise TcdmlInputError(f"{path}: rows that are not finite unit vectors, expected {expected}")
    return ScoreNorm(cohort, top_k)
