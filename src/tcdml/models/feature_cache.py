"""``CachedFeatures(encoder, key=...)``: a frozen text encoder's features, computed once per text.

``CachedFeatures(encoder, key)(texts)`` equals ``encoder(texts)`` (a (B, F) float32 tensor for a list of B
``str``) and stores each text's row, so a frozen-encoder run encodes every text once. A row is reused only
while the features could not differ from a fresh computation:

- the encoder is frozen (no parameter requires grad) and in eval mode; otherwise nothing is cached (and what
  was cached by this wrapper is dropped);
- the weights are the same tensors, not updated in place since (parameters' storage and version counters:
  ``load_state_dict``, ``.to()``, an optimiser step all change them), on the same device, under the same
  autocast setting and dtype.

The cache is keyed by text and encoder identity. ``key`` is that identity: a hashable that names the
encoder's weights at the moment it is wrapped (``SentenceEncoder.cache_key()``: its folder and
``max_length``). While the weights are still those (unchanged since wrapping), wrappers with equal keys share
one process-wide store, so the runs of a study encode each text once, not once per run. After the weights
change, or in a copy of the wrapper (deepcopy, unpickling: version counters restart, so unchanged weights
could not be told from new ones), the wrapper keeps a store of its own, emptied whenever the weights change.
Rows are stored on the CPU (1.5 kB a text for MiniLM).

With a ``store`` (``tcdml.models.feature_store.FeatureStore``), rows missing from memory are looked up on
disk under the encoder's content key (a hash of its weights and settings, ``feature_store.encoder_key``),
and the rows this process computes are written there: the next process encodes nothing.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable, Sequence

import torch
from torch import nn

from tcdml.models.feature_store import FeatureStore, encoder_key

#: Features of unchanged wrapped encoders, by (key, device, autocast, autocast dtype, parameter dtype).
_SHARED: dict[tuple, dict[str, torch.Tensor]] = {}
#: Wrappers built by ``__init__``; a copy is not one of them (see the module docstring).
_WRAPPED: weakref.WeakSet[CachedFeatures] = weakref.WeakSet()


class CachedFeatures:
    """``encoder(texts)`` with a per-text cache under ``key`` (module docstring); ``encoder`` is kept as is.

    Not an ``nn.Module``: it owns no weights, and a model holding one keeps the encoder's state dict.
    """

    def __init__(self, encoder: nn.Module, *, key: Hashable, store: FeatureStore | None = None) -> None:
        self.encoder = encoder
        self.key = key
        self.store = store
        self._wrapped_weights = _weights_state(encoder)
        self._own: dict[str, torch.Tensor] = {}
        self._own_state: tuple | None = None
        _WRAPPED.add(self)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """(B, F) features of ``texts``, read from the cache where allowed (module docstring)."""
        state = self._frozen_state()
        if state is None:
            self._own.clear()
        if state is None or not texts:
            return self.encoder(texts)
        if self in _WRAPPED and self._wrapped_weights == _weights_state(self.encoder):
            # Still the weights the key names: share with every wrapper of that key (same setting).
            cache = _SHARED.setdefault((self.key, *state[:3], state[3][0][1]), {})
        else:
            if state != self._own_state:  # other weights, device or precision: the stored rows are stale
                self._own.clear()
                self._own_state = state
            cache = self._own
        missing = list(dict.fromkeys(text for text in texts if text not in cache))
        if missing and self.store is not None:
            # The content key: the weights and settings themselves, so another process can find the rows.
            disk_key = encoder_key(self.encoder, state[0].split(":")[0], state[2])
            found = self.store.lookup(disk_key, missing, getattr(self.encoder, "num_features", None))
            cache.update(found)
            missing = [text for text in missing if text not in found]
        if missing:
            computed = self.encoder(missing).cpu()
            cache.update(zip(missing, computed, strict=True))
            if self.store is not None:
                self.store.save(disk_key, missing, computed)
        device = next(self.encoder.parameters()).device
        # torch.stack makes a new tensor, also outside inference mode: features cached under
        # torch.inference_mode() (evaluation) can then feed a trained head.
        return torch.stack([cache[text] for text in texts]).to(device)

    def _frozen_state(self) -> tuple | None:
        """What the cached rows depend on, or None when they may not be cached (trainable or training)."""
        params = list(self.encoder.parameters())
        if self.encoder.training or any(p.requires_grad for p in params):
            return None
        device = params[0].device
        autocast = torch.is_autocast_enabled(device.type)
        dtype = torch.get_autocast_dtype(device.type) if autocast else None
        return (str(device), autocast, dtype, tuple((p.data_ptr(), p.dtype, p._version) for p in params))


def _weights_state(encoder: nn.Module) -> tuple:
    """Each parameter's storage and version counter: both unchanged means no tensor was replaced
    (``load_state_dict(assign=True)``, ``.to()``) or updated in place through autograd-visible ops (writes
    through ``.data`` are invisible to version counters)."""
    return tuple((p.data_ptr(), p._version) for p in encoder.parameters())
