"""``load_matcher(DIR)``: a ``tcdml export`` folder as a matcher with one calibrated threshold.

``m.embed(inputs)`` runs the exported model; ``m.match(a, b)`` accepts or rejects aligned pairs,
``m.search(queries, gallery)`` lists each query's gallery items at or above the threshold
(``tcdml.deploy.similarity`` has the formula; on AS-norm scores when the export carries a ``scores``
section). ``match`` and ``search`` take the model's inputs and embed
them; with ``embedded=True`` they take embeddings instead (e.g. a gallery embedded once with ``m.embed``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tcdml.checks import is_int
from tcdml.deploy.asnorm import ScoreNorm, read_cohort
from tcdml.deploy.formats import open_model, pick_format
from tcdml.deploy.kinds import KINDS
from tcdml.deploy.manifest import Manifest, load_folder
from tcdml.deploy.runtime import Runner, TextTokenizer
from tcdml.deploy.similarity import (
    MatchResult,
    SearchResult,
    check_embeddings,
    match_embeddings,
    search_embeddings,
)
from tcdml.errors import ParameterError, TcdmlInputError


@dataclass
class Matcher:
    """An exported model and its threshold (build it with ``load_matcher``).

    Inputs by the manifest's ``input.kind``: ``"image"``: a float32 (N, 3, S, S) array, RGB, resized,
    centre-cropped and normalised as ``input`` says (``image_size``, ``resize_size``, ``mean``, ``std``);
    ``"text"``: a list of ``str``; ``"embedding"``: a float32 (N, input_size) array (an adapter head's input).
    """

    manifest: Manifest
    backend: str
    runner: Runner = field(repr=False)
    tokenizer: TextTokenizer | None = field(default=None, repr=False)
    batch_size: int = 64
    norm: ScoreNorm | None = field(default=None, repr=False)

    @property
    def threshold(self) -> float:
        """The calibrated threshold: a pair is accepted when its similarity (its AS-norm score, when the
        export carries one: ``scores``) is at or above it."""
        return self.manifest.threshold

    @property
    def scores(self) -> str:
        """What is compared with the threshold: ``"cosine"`` or ``"asnorm"``."""
        return "cosine" if self.norm is None else "asnorm"

    @property
    def embedding_size(self) -> int:
        """D, the width of the embeddings."""
        return self.manifest.embedding_size

    @property
    def input(self) -> dict[str, Any]:
        """The input contract from the manifest (a copy)."""
        return dict(self.manifest.input)

    def embed(self, inputs: Any) -> np.ndarray:
        """(N, D) L2-normalised float32 embeddings of a batch of inputs, ``batch_size`` at a time."""
        kind = KINDS[self.manifest.kind]
        batch = kind.check_batch(inputs, self.manifest.input)
        size = self.batch_size
        if self.tokenizer is not None:
            chunks = [self.tokenizer(batch[i : i + size]) for i in range(0, len(batch), size)]
        else:
            chunks = [{kind.inputs[0]: batch[i : i + size]} for i in range(0, len(batch), size)]
        parts = [np.asarray(self.runner(chunk), dtype=np.float32) for chunk in chunks]
        if not parts:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        out = np.ascontiguousarray(np.concatenate(parts))
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            rows = np.flatnonzero(~finite)[:5].tolist()
            raise TcdmlInputError(f"embed: the model gave NaN or Inf for {int((~finite).sum())} rows {rows}")
        return out

    def _embedded(self, values: Any, embedded: bool, name: str) -> np.ndarray:
        if embedded:
            return check_embeddings(values, self.embedding_size, name)
        return self.embed(values)

    def match(self, a: Any, b: Any, *, embedded: bool = False) -> MatchResult:
        """Accept or reject the aligned pairs (a[i], b[i]): ``accept, similarities = m.match(a, b)``.

        ``embedded=True``: ``a`` and ``b`` are (N, D) unit-row embeddings rather than model inputs.
        """
        first, second = self._embedded(a, embedded, "a"), self._embedded(b, embedded, "b")
        return match_embeddings(first, second, self.threshold, self.norm)

    def search(
        self, queries: Any, gallery: Any, *, embedded: bool = False, backend: str = "auto"
    ) -> SearchResult:
        """For each query, the gallery indices and similarities at or above the threshold, sorted by
        similarity descending then index ascending (``result[i]`` unpacks as ``indices, similarities``).

        ``embedded=True``: both are (N, D) unit-row embeddings. ``backend``: ``"faiss"``, ``"numpy"`` or
        ``"auto"`` (faiss when installed; numpy for AS-norm scores); the results are the same either way.
        """
        found_queries = self._embedded(queries, embedded, "queries")
        found_gallery = self._embedded(gallery, embedded, "gallery")
        return search_embeddings(
            found_queries, found_gallery, self.threshold, backend=backend, norm=self.norm
        )


def load_matcher(
    folder: str | os.PathLike,
    *,
    backend: str | None = None,
    providers: Sequence[str] | None = None,
    batch_size: int = 64,
    manifest_sha256: str | None = None,
) -> Matcher:
    """The matcher of a ``tcdml export`` folder; every file's size and sha256 is checked against the
    manifest first, and the model (and tokenizer) run from the very bytes that were checked.

    ``backend``: a format of ``tcdml.deploy.formats``, ``"onnx"`` (onnxruntime) or ``"torchscript"`` (torch);
    None: the first the folder holds (ONNX when the folder has it).
    ``providers``: onnxruntime execution providers (default CPU). Every problem (a missing, changed or
    extra-damaged file, a malformed manifest, onnxruntime not installed) is one ``TcdmlInputError`` line.
    ``manifest_sha256``: the manifest's own hash as ``tcdml export`` printed it (any case, whitespace around
    it ignored); given, a changed manifest (e.g. its threshold) is refused too. The model's graph (input
    names, kinds and widths, output width) and one probe input are checked against the manifest.
    """
    if not (is_int(batch_size) and batch_size >= 1):
        expected = "a positive integer"
        message = f"load_matcher: batch_size={batch_size!r}, expected {expected}"
        raise ParameterError(message, "batch_size", batch_size, expected)

    def used(manifest: Manifest) -> list[str]:
        tokenizer = [manifest.input["tokenizer"]] if manifest.kind == "text" else []
        cohort = [manifest.scores["cohort"]] if manifest.scores is not None else []
        return [pick_format(manifest.model, manifest.folder, backend)[1], *tokenizer, *cohort]

    manifest, content = load_folder(folder, manifest_sha256=manifest_sha256, keep=used)
    chosen, name = pick_format(manifest.model, manifest.folder, backend)
    runner = open_model(
        chosen,
        manifest.folder / name,
        content[name],
        KINDS[manifest.kind],
        manifest.input,
        manifest.embedding_size,
        providers,
    )
    tokenizer = None
    if manifest.kind == "text":
        contract = manifest.input
        tokenizer = TextTokenizer(
            manifest.folder / contract["tokenizer"],
            content[contract["tokenizer"]],
            contract["max_length"],
            pad_id=contract.get("pad_id", 0),  # checked by parse_manifest
            pad_token=contract.get("pad_token", "[PAD]"),
        )
    norm = None
    if manifest.scores is not None:
        scores = manifest.scores
        norm = read_cohort(
            content[scores["cohort"]],
            manifest.folder / scores["cohort"],
            manifest.embedding_size,
            scores["cohort_size"],
            scores["top_k"],
        )
    return Matcher(manifest, chosen.name, runner, tokenizer, batch_size, norm)
