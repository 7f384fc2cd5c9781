"""Accept or reject pairs at one threshold, and find every gallery item at or above it for each query.

The formula (the same in ``match`` and ``search``, whichever search backend runs):

- the similarity of two L2-normalised float32 embeddings ``a``, ``b`` is ``s = float32(sum_k float64(a_k) *
  float64(b_k))``: their dot product (the cosine) summed in float64, then rounded to float32;
- a pair is accepted when ``float64(s) >= threshold``;
- ``search`` returns, for each query, the gallery rows accepted with it, sorted by ``s`` descending, then by
  gallery index ascending.

The search finds candidates with a float32 product (faiss ``range_search`` on an ``IndexFlatIP`` when faiss
is installed, else a blocked numpy product) at ``threshold - SLACK``, far wider than float32's rounding on
unit vectors (under 1e-5 for D = 1024), then computes ``s`` of every candidate pair with the formula above:
both backends return the same pairs and the same values, bit for bit.

With a score model (an export's ``scores``: AS-norm, ``tcdml.deploy.asnorm``) the value compared with the
threshold is the pair's normalised score ``s'`` (float64) computed from that ``s``; ``search`` sorts by ``s'``
and finds its candidates with the blocked numpy product, each pair at its own cosine bound less ``SLACK``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcdml.deploy.asnorm import ScoreNorm, normalised
from tcdml.errors import TcdmlInputError

#: Candidate margin below the threshold for the float32 search (the exact test follows).
SLACK = 1e-3
#: Unit rows are accepted within this distance of norm 1.
NORM_TOLERANCE = 1e-3
#: Bytes of one block of the numpy product (queries x gallery float32 similarities).
BLOCK_BYTES = 64 << 20


@dataclass(frozen=True)
class MatchResult:
    """``accept[i]``: pair i is accepted (``float64(similarities[i]) >= threshold``); unpacks as a pair.

    ``similarities``: the cosines (float32), or the normalised scores (float64) of an export with ``scores``.
    """

    accept: np.ndarray
    similarities: np.ndarray
    threshold: float

    def __iter__(self) -> Iterator[np.ndarray]:
        """``accept, similarities = matcher.match(a, b)``."""
        return iter((self.accept, self.similarities))

    def to_dict(self) -> dict[str, Any]:
        """``{"threshold", "accept": [bool], "similarities": [float]}``."""
        return {
            "threshold": self.threshold,
            "accept": self.accept.tolist(),
            "similarities": self.similarities.astype(float).tolist(),
        }


@dataclass(frozen=True)
class Hits:
    """One query's accepted gallery rows: ``indices`` (int64) and ``similarities`` (float32), best first."""

    indices: np.ndarray
    similarities: np.ndarray

    def __iter__(self) -> Iterator[np.ndarray]:
        """``indices, similarities = result[i]``."""
        return iter((self.indices, self.similarities))

    def to_dict(self) -> dict[str, Any]:
        """``{"indices": [int], "similarities": [float]}``."""
        return {"indices": self.indices.tolist(), "similarities": self.similarities.astype(float).tolist()}


@dataclass(frozen=True)
class SearchResult:
    """Every query's hits, stored flat: query i's are ``indices[offsets[i]:offsets[i + 1]]`` (and
    ``similarities``); ``result[i]`` is a ``Hits``, ``len(result)`` the number of queries."""

    offsets: np.ndarray
    indices: np.ndarray
    similarities: np.ndarray
    threshold: float

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, query: int) -> Hits:
        if not -len(self) <= query < len(self):
            raise IndexError(f"query {query} out of range for {len(self)} queries")
        query %= len(self)
        start, stop = self.offsets[query], self.offsets[query + 1]
        return Hits(self.indices[start:stop], self.similarities[start:stop])

    def __iter__(self) -> Iterator[Hits]:
        return (self[i] for i in range(len(self)))

    def to_dict(self) -> dict[str, Any]:
        """``{"threshold", "hits": [{"indices", "similarities"} per query]}``."""
        return {"threshold": self.threshold, "hits": [hits.to_dict() for hits in self]}


def check_embeddings(values: Any, size: int, name: str) -> np.ndarray:
    """``values`` as a C-contiguous (N, size) float32 array of finite unit rows, else ``TcdmlInputError``."""
    try:
        array = np.ascontiguousarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise TcdmlInputError(f"{name}: expected an (N, {size}) array of embeddings") from None
    if array.ndim != 2 or array.shape[1] != size:
        raise TcdmlInputError(f"{name}: shape {array.shape}, expected (N, {size}) embeddings")
    if not np.isfinite(array).all():
        row = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise TcdmlInputError(f"{name}: row {row} is not finite (NaN or inf)")
    norms = np.linalg.norm(array.astype(np.float64), axis=1)
    off = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
    if len(off):
        raise TcdmlInputError(
            f"{name}: row {int(off[0])} has norm {norms[off[0]]:.4g}, expected L2-normalised embeddings"
        )
    return array


def pair_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """s_i = float32(sum_k float64(a_ik) * float64(b_ik)) for aligned rows of ``a`` and ``b``."""
    return np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64)).astype(np.float32)


def match_embeddings(
    a: np.ndarray, b: np.ndarray, threshold: float, norm: ScoreNorm | None = None
) -> MatchResult:
    """Accept/reject the aligned pairs (a_i, b_i) of two (N, D) embedding arrays (module docstring); with
    ``norm``, on their normalised scores."""
    if a.shape != b.shape:
        raise TcdmlInputError(f"match: {a.shape[0]} and {b.shape[0]} items, expected aligned pairs (same N)")
    similarities = pair_similarities(a, b)
    if norm is not None:
        similarities = normalised(similarities, *norm.stats(a), *norm.stats(b))
    return MatchResult(similarities.astype(np.float64) >= threshold, similarities, float(threshold))


def search_embeddings(
    queries: np.ndarray,
    gallery: np.ndarray,
    threshold: float,
    *,
    backend: str = "auto",
    norm: ScoreNorm | None = None,
) -> SearchResult:
    """Every gallery row at or above ``threshold`` for each query, best first (module docstring).

    ``backend``: ``"faiss"`` (range search), ``"numpy"`` (blocked product) or ``"auto"`` (faiss when
    installed, numpy with ``norm``); the results are identical. ``norm``: rank and threshold normalised
    scores (``"faiss"`` is refused: its one search radius cannot bound them).
    """
    if backend not in {"auto", "faiss", "numpy"}:
        raise TcdmlInputError(f"search: backend={backend!r}, expected 'auto', 'faiss' or 'numpy'")
    if norm is not None and backend == "faiss":
        raise TcdmlInputError(
            "search: backend='faiss' cannot search AS-norm scores (no one cosine radius bounds them); "
            "use 'numpy' or 'auto'"
        )
    if backend == "auto":
        backend = "faiss" if norm is None and _has_faiss() else "numpy"
    stats = None if norm is None else (norm.stats(queries), norm.stats(gallery))
    if len(queries) == 0 or len(gallery) == 0:
        rows = cols = np.zeros(0, dtype=np.int64)
    elif backend == "faiss":
        rows, cols = _faiss_candidates(queries, gallery, threshold - SLACK)
    elif stats is not None:
        rows, cols = _numpy_candidates(queries, gallery, _bounds(threshold, *stats))
    else:
        rows, cols = _numpy_candidates(queries, gallery, lambda start, stop: threshold - SLACK)
    similarities = _exact(queries, gallery, rows, cols, stats)
    keep = similarities.astype(np.float64) >= threshold
    rows, cols, similarities = rows[keep], cols[keep], similarities[keep]
    order = np.lexsort((cols, -similarities.astype(np.float64), rows))  # query, then s desc, then index
    counts = np.bincount(rows, minlength=len(queries))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return SearchResult(offsets, cols[order].astype(np.int64), similarities[order], float(threshold))


def _exact(
    queries: np.ndarray,
    gallery: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    stats: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None,
) -> np.ndarray:
    """``s`` of every candidate pair (``pair_similarities``), or its AS-norm score with ``stats``, the
    candidates' embedding rows gathered ``BLOCK_BYTES`` at a time (a search with millions of hits never holds
    a copy of an embedding per hit)."""
    out = np.empty(len(rows), dtype=np.float32 if stats is None else np.float64)
    step = max(1, BLOCK_BYTES // (8 * queries.shape[1]))
    for start in range(0, len(rows), step):
        r, c = rows[start : start + step], cols[start : start + step]
        value = pair_similarities(queries[r], gallery[c])
        if stats is not None:
            (mu_q, sd_q), (mu_g, sd_g) = stats
            value = normalised(value, mu_q[r], sd_q[r], mu_g[c], sd_g[c])
        out[start : start + step] = value
    return out


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss_candidates(
    queries: np.ndarray, gallery: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """(query, gallery) pairs with float32 inner product above ``radius``, by faiss range search."""
    try:
        import faiss
    except ImportError:
        raise TcdmlInputError("search: backend='faiss' needs faiss: pip install 'tcdml[faiss]'") from None
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery)
    limits, _, found = index.range_search(queries, float(radius))
    rows = np.repeat(np.arange(len(queries), dtype=np.int64), np.diff(limits.astype(np.int64)))
    return rows, found.astype(np.int64)


def _bounds(
    threshold: float, query: tuple[np.ndarray, np.ndarray], gallery: tuple[np.ndarray, np.ndarray]
) -> Callable[[int, int], np.ndarray]:
    """The candidate radius of query rows ``start:stop`` against every gallery row: each pair's AS-norm
    cosine bound (``ScoreNorm.cosine_bound``) less ``SLACK``."""

    low = [tuple(part.astype(np.float32) for part in side) for side in (query, gallery)]

    def radius(start: int, stop: int) -> np.ndarray:  # float32: its rounding is far inside SLACK
        block = (low[0][0][start:stop], low[0][1][start:stop])
        return ScoreNorm.cosine_bound(np.float32(threshold), block, low[1]) - np.float32(SLACK)

    return radius


def _numpy_candidates(
    queries: np.ndarray, gallery: np.ndarray, radius: Callable[[int, int], float | np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(query, gallery) pairs with float32 inner product at or above ``radius(start, stop)`` (a number, or one
    per pair of the block), block of queries by block."""
    step = max(1, BLOCK_BYTES // (8 * len(gallery)))
    rows, cols = [], []
    for start in range(0, len(queries), step):
        block = queries[start : start + step] @ gallery.T
        r, c = np.nonzero(block >= radius(start, start + len(block)))
        rows.append(r.astype(np.int64) + start)
        cols.append(c.astype(np.int64))
    return np.concatenate(rows), np.concatenate(cols)
