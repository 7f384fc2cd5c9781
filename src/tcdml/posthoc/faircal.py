"""Cluster-conditional score calibration in the spirit of FairCal (Salvador et al., ICLR 2022).

Fit, on calibration embeddings with labels (e.g. the training classes):

1. Spherical k-means of the L2-normalised embeddings into ``K`` clusters (``kmeans``: k-means++ seeding,
   Lloyd iterations on cosine similarity, centroids renormalised).
2. Per cluster k, a **beta calibration map** (Kull et al., 2017) of the pair cosine ``s`` to a probability of
   "same class", fitted on the calibration pairs with at least one end in cluster k (positives all, negatives
   a seeded uniform subsample weighted back to their full count):

       u = (s + 1) / 2,   p_k(s) = sigmoid(a_k ln u - b_k ln(1 - u) + c_k),   a_k, b_k >= 0

   (a weighted logistic regression, Newton steps; a coefficient fitted negative is dropped and the map refit,
   so every map is non-decreasing in ``s``). A cluster with fewer than ``MIN_POSITIVE_PAIRS`` positive pairs
   gets the map fitted on all clusters' pairs.

Apply (numpy only): each side of a pair goes to its nearest centroid; the calibrated score of ``(a, b)`` is
the average of its two clusters' maps, ``1/2 [p_k(a)(s) + p_k(b)(s)]``, and one threshold is applied to it.
Where clusters differ in how high impostor similarities run, their maps differ, so one threshold on the
calibrated score accepts impostors at a more even rate across regions than one threshold on ``s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tcdml.errors import TcdmlInputError
from tcdml.posthoc.common import check_kind, paired_rows, stored_array, unit_rows

KIND = "faircal"
#: A cluster needs this many positive calibration pairs for its own map (else: the global map).
MIN_POSITIVE_PAIRS = 20
#: Negative calibration pairs kept per cluster (a seeded uniform subsample, weighted back).
DEFAULT_MAX_NEGATIVES = 50_000
#: ``u`` is clipped to [EPS, 1 - EPS] before the logarithms.
EPS = 1e-6


@dataclass(frozen=True)
class FairCalModel:
    """Centroids (K x D, unit rows) and one beta map per cluster (K x 3: a, b, c)."""

    centroids: np.ndarray
    maps: np.ndarray

    @property
    def embedding_size(self) -> int:
        return int(self.centroids.shape[1])

    def assign(self, embeddings: Any, name: str = "embeddings") -> np.ndarray:
        """(N,) the cluster of each row: ``argmax_k <x, centroid_k>``."""
        return np.argmax(unit_rows(embeddings, name, self.embedding_size) @ self.centroids.T, axis=1)

    def scores(self, a: Any, b: Any) -> np.ndarray:
        """(N,) calibrated scores of the pairs ``(a_i, b_i)``: ``1/2 [p_k(a_i)(s_i) + p_k(b_i)(s_i)]``."""
        x, y = unit_rows(a, "a", self.embedding_size), unit_rows(b, "b", self.embedding_size)
        paired_rows(x, y)
        s = np.einsum("ij,ij->i", x, y)
        ka, kb = np.argmax(x @ self.centroids.T, axis=1), np.argmax(y @ self.centroids.T, axis=1)
        return 0.5 * (beta_map(s, self.maps[ka]) + beta_map(s, self.maps[kb]))

    def score_matrix(self, a: Any, b: Any = None) -> np.ndarray:
        """(N, M) calibrated scores of every ``(a_i, b_j)``; ``b`` None: ``a`` against itself."""
        x = unit_rows(a, "a", self.embedding_size)
        y = x if b is None else unit_rows(b, "b", self.embedding_size)
        s = x @ y.T
        ka, kb = np.argmax(x @ self.centroids.T, axis=1), np.argmax(y @ self.centroids.T, axis=1)
        return 0.5 * (beta_map(s, self.maps[ka][:, None, :]) + beta_map(s, self.maps[kb][None, :, :]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: ``kind``, ``centroids`` (K x D) and ``maps`` (K x 3) as nested lists."""
        return {"kind": KIND, "centroids": self.centroids.tolist(), "maps": self.maps.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FairCalModel:
        """The model ``to_dict`` wrote; one-line ``TcdmlInputError`` for anything else."""
        check_kind(data, KIND)
        centroids = unit_rows(stored_array(data, "centroids", 2, KIND), f"{KIND}: stored 'centroids'")
        maps = stored_array(data, "maps", 2, KIND)
        if maps.shape != (len(centroids), 3) or (maps[:, :2] < 0).any():
            raise TcdmlInputError(
                f"{KIND}: stored 'maps' must be {len(centroids)} x 3 (one a >= 0, b >= 0, c per centroid), "
                f"got shape {maps.shape}"
            )
        return cls(centroids, maps)


def beta_map(s: np.ndarray, params: np.ndarray) -> np.ndarray:
    """``sigmoid(a ln u - b ln(1 - u) + c)``, ``u = clip((s + 1) / 2)``; ``params[..., :]`` = (a, b, c)
    broadcast against ``s``."""
    u = np.clip((np.asarray(s, dtype=np.float64) + 1.0) / 2.0, EPS, 1.0 - EPS)
    z = params[..., 0] * np.log(u) - params[..., 1] * np.log1p(-u) + params[..., 2]
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow


def fit_faircal(
    embeddings: Any,
    labels: Any,
    *,
    num_clusters: int = 20,
    seed: int = 0,
    max_negatives: int = DEFAULT_MAX_NEGATIVES,
) -> FairCalModel:
    """Fit FairCal on calibration ``embeddings`` (N x D) and integer ``labels`` (N,) (module docstring)."""
    from tcdml.metrics.validation import as_labels, check_integer

    x = unit_rows(embeddings, "calibration embeddings")
    y = as_labels(labels, len(x))
    check_integer(num_clusters, "num_clusters", 1, len(x))
    check_integer(max_negatives, "max_negatives", 1)
    rng = np.random.default_rng(seed)
    centroids = kmeans(x, num_clusters, rng)
    cluster = np.argmax(x @ centroids.T, axis=1)
    pairs = [
        _cluster_pairs(x, y, np.nonzero(cluster == k)[0], max_negatives, rng) for k in range(num_clusters)
    ]
    if sum(int(p[1].sum()) for p in pairs) < MIN_POSITIVE_PAIRS:
        raise TcdmlInputError(
            f"labels: the calibration set has fewer than {MIN_POSITIVE_PAIRS} positive pairs; FairCal needs "
            "classes with at least 2 samples"
        )
    everything = [np.concatenate(parts) for parts in zip(*pairs, strict=True)]
    global_map = fit_beta_map(*everything)
    maps = np.stack([fit_beta_map(*p) if p[1].sum() >= MIN_POSITIVE_PAIRS else global_map for p in pairs])
    return FairCalModel(centroids, maps)


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 50) -> np.ndarray:
    """(k, D) unit centroids of spherical k-means on unit rows ``x`` (k-means++ seeding on ``1 - cos``)."""
    centroids = [x[rng.integers(len(x))]]
    distance = 1.0 - x @ centroids[0]
    for _ in range(1, k):
        weights = np.maximum(distance, 0.0)
        pick = rng.choice(len(x), p=weights / weights.sum()) if weights.sum() > 0 else rng.integers(len(x))
        centroids.append(x[pick])
        distance = np.minimum(distance, 1.0 - x @ x[pick])
    c = np.stack(centroids)
    for _ in range(iterations):
        assigned = np.argmax(x @ c.T, axis=1)
        sums = np.zeros_like(c)
        np.add.at(sums, assigned, x)
        norms = np.linalg.norm(sums, axis=1)
        empty = norms == 0  # a cluster that lost every member keeps its old centroid
        updated = np.where(empty[:, None], c, sums / np.where(empty, 1.0, norms)[:, None])
        if np.allclose(updated, c):
            break
        c = updated
    return c


def fit_beta_map(s: np.ndarray, same: np.ndarray, weight: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    """(a, b, c) of the beta map maximising the weighted log-likelihood of ``same`` (0/1) given ``s``, with
    ``a, b >= 0`` (a feature whose coefficient comes out negative is dropped and the rest refit)."""
    u = np.clip((s + 1.0) / 2.0, EPS, 1.0 - EPS)
    features = np.stack([np.log(u), -np.log1p(-u), np.ones_like(u)], axis=1)
    active = [0, 1, 2]
    while True:
        theta = _logistic_newton(features[:, active], same.astype(np.float64), weight, ridge)
        negative = [i for i, value in zip(active[:2], theta, strict=False) if value < 0 and i < 2]
        if not negative:
            params = np.zeros(3)
            params[active] = theta
            return params
        active.remove(negative[0])


def _logistic_newton(
    features: np.ndarray, target: np.ndarray, weight: np.ndarray, ridge: float, steps: int = 50
) -> np.ndarray:
    """Weighted, ridge-regularised logistic regression by Newton's method (the intercept is a feature)."""
    theta = np.zeros(features.shape[1])
    scale = weight.sum()
    for _ in range(steps):
        p = 0.5 * (1.0 + np.tanh(0.5 * (features @ theta)))
        gradient = features.T @ (weight * (p - target)) / scale + ridge * theta
        hessian = (features * (weight * p * (1.0 - p))[:, None]).T @ features / scale
        step = np.linalg.solve(hessian + ridge * np.eye(len(theta)), gradient)
        theta -= step
        if np.abs(step).max() < 1e-9:
            break
    return theta


def _cluster_pairs(
    x: np.ndarray, y: np.ndarray, members: np.ndarray, max_negatives: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(similarities, same-class flags, weights) of the pairs with at least one end in ``members`` (each
    unordered pair once), negatives subsampled to ``max_negatives`` and weighted back."""
    if len(members) == 0:
        return np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0)
    sim = x[members] @ x.T
    keep = np.ones(sim.shape, dtype=bool)
    inside = np.isin(np.arange(len(x)), members)
    # Inside the cluster, keep column j only after row i's sample (each unordered pair once, no self pair).
    keep[:, inside] = np.arange(len(x))[inside][None, :] > members[:, None]
    same = y[members][:, None] == y[None, :]
    pos = sim[keep & same]
    neg = sim[keep & ~same]
    weight = 1.0
    if len(neg) > max_negatives:
        weight = len(neg) / max_negatives
        neg = neg[rng.choice(len(neg), size=max_negatives, replace=False)]
    values = np.concatenate([pos, neg])
    flags = np.concatenate([np.ones(len(pos), dtype=bool), np.zeros(len(neg), dtype=bool)])
    weights = np.concatenate([np.ones(len(pos)), np.full(len(neg), weight)])
    return values, flags, weights
