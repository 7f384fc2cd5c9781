"""The one threshold on AS-norm scores, and the cohort file it is tied to (``tcdml calibrate --asnorm``).

``calibrate_asnorm(model, embeddings, labels, target_far=...)`` is ``tcdml.calibration.calibrate`` with the
pair cosine replaced by the pair's AS-norm score ``s'`` (``tcdml.deploy.asnorm``): over all unordered pairs of
the calibration set, the smallest ``t`` with ``FAR(t) <= target_far`` (or the largest with ``FRR(t) <=
target_frr``), found exactly (every pair score kept, ``tcdml.posthoc.evaluate.prepared_scores``), and
per-class FAR/FRR at it. The threshold is in score units.

A calibration file written this way records its cohort (``scores``: ``kind``, ``top_k``, the cohort file's
name, rows and sha256): ``tcdml export --asnorm COHORT`` ships the threshold only with that very cohort.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.calibration import CalibrationResult, calibrate_counts
from tcdml.calibration.threshold import check_target
from tcdml.deploy.asnorm import KIND, cohort_top_k
from tcdml.deploy.manifest import sha256_file
from tcdml.errors import TcdmlInputError
from tcdml.io.embeddings_file import check_input_file, load_embeddings_file
from tcdml.metrics.engine import PassSettings, missing_pairs, pair_counts, run_prepared
from tcdml.posthoc.asnorm import DEFAULT_TOP_K, ASNormModel, fit_asnorm
from tcdml.posthoc.common import unit_rows
from tcdml.posthoc.evaluate import check_sample_count, prepared_scores

#: A calibration row at this cosine or above to a cohort row is taken to be that row.
SAME_ROW = 1.0 - 1e-6


@dataclass(frozen=True)
class Cohort:
    """An embedding file read as an AS-norm cohort: its path, the AS-norm model of its embeddings and the
    file's sha256."""

    path: Path
    model: ASNormModel
    sha256: str

    def record(self) -> dict[str, Any]:
        """The calibration file's ``scores`` section: what ``tcdml export`` checks the cohort against."""
        return {
            "kind": KIND,
            "top_k": self.model.top_k,
            "cohort_file": self.path.name,
            "cohort_size": len(self.model.cohort),
            "cohort_sha256": self.sha256,
        }


def read_cohort_file(path: str | os.PathLike, top_k: int = DEFAULT_TOP_K) -> Cohort:
    """An embedding ``.npz`` (``tcdml embed`` of calibration data, e.g. the training split) as an AS-norm
    cohort of ``top_k``; a missing file, a bad array or ``top_k`` is one ``TcdmlInputError`` line naming
    it."""
    path = Path(path)
    check_input_file(path, "an embedding .npz file (the AS-norm cohort)")
    embeddings = load_embeddings_file(path).embeddings
    try:
        model = fit_asnorm(embeddings, top_k)
    except TcdmlInputError as exc:
        raise TcdmlInputError(f"{path}: {exc}") from None
    return Cohort(path, model, sha256_file(path))


def calibrate_asnorm(
    model: ASNormModel,
    embeddings: Any,
    labels: Any,
    *,
    target_far: float | None = None,
    target_frr: float | None = None,
    num_worst: int = 5,
    progress: bool | None = None,
    cohort_name: str = "the AS-norm cohort",
) -> CalibrationResult:
    """The threshold on ``model``'s AS-norm scores meeting exactly one target over all pairs of ``embeddings``
    (N x D, at most ``tcdml.posthoc.evaluate.MAX_SAMPLES``) with ``labels`` (module docstring).

    >>> import numpy as np
    >>> from tcdml.posthoc import fit_asnorm
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(size=(8, 16))
    >>> x = centres[np.repeat(np.arange(8), 6)] + 0.3 * rng.normal(size=(48, 16))
    >>> y = np.repeat(np.arange(8), 6)
    >>> model = fit_asnorm(x[24:], top_k=5)
    >>> result = calibrate_asnorm(model, x[:24], y[:24], target_far=0.05)
    >>> result.far <= 0.05, result.mode
    (True, 'exact')
    """
    check_target(target_far, target_frr)  # before the N x N scores
    check_sample_count(len(embeddings), "embeddings")
    width = np.shape(embeddings)[-1] if np.ndim(embeddings) == 2 else None
    if width is not None and width != model.embedding_size:
        raise TcdmlInputError(
            f"{width}-d embeddings, but {cohort_name} holds {model.embedding_size}-d ones (another model's?)"
        )
    x = unit_rows(embeddings, "embeddings", model.embedding_size)
    _warn_if_in_cohort(x, model, cohort_name)
    prepared, back = prepared_scores(model.score_matrix(x, name="embeddings"), labels)
    problem = missing_pairs(prepared)
    if problem is not None:
        raise TcdmlInputError(f"{problem}: no threshold to calibrate")
    settings = PassSettings(mode="exact", progress=progress)
    counts = pair_counts(prepared, run_prepared(prepared, settings))
    result = calibrate_counts(
        counts,
        target_far=target_far,
        target_frr=target_frr,
        mode="exact",
        num_worst=num_worst,
        cosine=False,
    )
    return replace(result, threshold=float(back(result.threshold)))


def _warn_if_in_cohort(x: np.ndarray, model: ASNormModel, cohort_name: str) -> None:
    """Warn (one line) when calibration rows are also cohort rows: their own similarity 1 would enter their
    top-k, so their scores, and the threshold, would not be those of new samples."""
    inside = int((cohort_top_k(x, model.cohort, 1)[:, 0] >= SAME_ROW).sum())
    if inside:
        warnings.warn(
            f"{inside} of {len(x)} calibration embeddings are also in {cohort_name} (their own similarity 1 "
            "enters their AS-norm statistics): calibrate on samples the cohort does not hold",
            stacklevel=3,
        )
