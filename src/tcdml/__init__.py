"""tcdml: threshold-consistent deep metric learning.

Measure threshold consistency (OPIS, eps-OPIS, per-class FAR/FRR) and retrieval quality (Recall@k, MAP@R),
train it away with the TCM regulariser, and ship one calibrated threshold.

Importing ``tcdml`` is cheap: heavy modules (torch kernels, matplotlib, Lightning, timm, faiss) load on use.
"""

__version__ = "0.1.0"
