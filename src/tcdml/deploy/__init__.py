"""Serve a ``tcdml export`` folder: ``load_matcher(DIR)`` -> ``threshold``, ``embed``, ``match``, ``search``.

Light on purpose: numpy and ``tcdml.errors`` at import; onnxruntime (or torch for a TorchScript model),
``tokenizers`` (text models) and faiss (optional, for ``search``) load on use. No Lightning, timm or
transformers. docs/deploy.md describes the folder, its manifest and the matching formula.
"""

from tcdml.deploy.manifest import MANIFEST_NAME, Manifest, read_manifest
from tcdml.deploy.matcher import Matcher, load_matcher
from tcdml.deploy.similarity import Hits, MatchResult, SearchResult

__all__ = [
    "MANIFEST_NAME",
    "Hits",
    "Manifest",
    "MatchResult",
    "Matcher",
    "SearchResult",
    "load_matcher",
    "read_manifest",
]
