"""Post-hoc score calibration: one threshold that means more nearly the same across classes, no retraining.

- ``fit_faircal`` / ``FairCalModel``: cluster-conditional beta calibration (FairCal, Salvador et al. 2022).
- ``fit_asnorm`` / ``ASNormModel``: adaptive score normalisation against a cohort (speaker verification).
- ``tcdml.posthoc.evaluate`` (imported on its own: it needs torch): ``evaluate_scores`` / ``compare_scores``,
  R@k, MAP@R and OPIS of a score matrix, and paired comparisons of two.
- ``tcdml.posthoc.calibrate`` (imported on its own: it needs torch): ``calibrate_asnorm``, the one
  threshold on AS-norm scores, and ``read_cohort_file`` (``tcdml calibrate --asnorm``; ``tcdml export
  --asnorm`` ships both).

Models are fitted on calibration embeddings (e.g. the training classes'), stored with ``to_dict`` (JSON-safe)
and applied with numpy only (``scores(a, b)``, ``score_matrix(a, b=None)``). See docs/posthoc.md.
"""

from tcdml.posthoc.asnorm import ASNormModel, fit_asnorm
from tcdml.posthoc.faircal import FairCalModel, fit_faircal

__all__ = [
    "ASNormModel",
    "FairCalModel",
    "fit_asnorm",
    "fit_faircal",
]
