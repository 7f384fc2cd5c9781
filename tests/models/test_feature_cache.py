"""``CachedFeatures``: a frozen encoder's features once per text, equal to computing them, never stale."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tcdml.models import CachedFeatures, ModelConfig, build_model

TEXTS = ["Horses; live", "Asses; live", "Fish; frozen", "Asses; live"]  # a repeat: same row twice


class CharEncoder(nn.Module):
    """A tiny text encoder: a linear map of letter counts; ``calls`` lists the texts it encoded."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(26, 5)
        self.calls: list[list[str]] = []

    def forward(self, texts: list[str]) -> torch.Tensor:
        self.calls.append(list(texts))
        counts = torch.zeros(len(texts), 26)
        for row, text in enumerate(texts):
            for char in text.lower():
                if char.isascii() and char.isalpha():
                    counts[row, ord(char) - ord("a")] += 1
        return self.linear(counts.to(self.linear.weight.device))


def frozen(encoder: nn.Module) -> nn.Module:
    return encoder.eval().requires_grad_(False)


def test_equals_the_encoder_and_encodes_each_text_once() -> None:
    encoder = frozen(CharEncoder())
    cached = CachedFeatures(encoder, key=("char", 1))
    with torch.inference_mode():  # filled under inference mode (evaluation) ...
        first = cached(TEXTS[:2])
    features = cached(TEXTS)  # ... read outside it, into a graph: a head on top can still train
    nn.Linear(5, 2)(features).sum().backward()
    torch.testing.assert_close(features[:2], first)
    torch.testing.assert_close(features, encoder(TEXTS))
    assert encoder.calls[:2] == [TEXTS[:2], ["Fish; frozen"]]
    assert cached([]).shape == (0, 5)


def test_never_stale() -> None:
    encoder = frozen(CharEncoder())
    cached = CachedFeatures(encoder, key=("char", 2))
    before = cached(TEXTS)
    state = {key: value.clone() for key, value in encoder.state_dict().items()}
    state["linear.weight"] *= 2
    encoder.load_state_dict(state)  # copies in place: new versions
    torch.testing.assert_close(cached(TEXTS), encoder(TEXTS))
    assert not torch.allclose(cached(TEXTS), before)
    encoder.requires_grad_(True)  # trainable: computed every time, nothing kept
    assert cached(TEXTS).requires_grad and not cached._own
    encoder.requires_grad_(False).train()  # training mode (dropout): likewise
    encoder.calls.clear()
    cached(TEXTS)
    cached(TEXTS)
    assert len(encoder.calls) == 2 and not cached._own


def test_equal_keys_share_while_the_weights_are_unchanged() -> None:
    torch.manual_seed(0)
    first = frozen(CharEncoder())
    second = copy.deepcopy(first)  # the same weights, under the same key
    expected = CachedFeatures(first, key=("char", 3))(TEXTS)
    shared = CachedFeatures(second, key=("char", 3))
    torch.testing.assert_close(shared(TEXTS), expected)
    assert second.calls == []  # read from the features of the first
    with torch.no_grad():
        second.linear.weight.mul_(2)  # changed in place: no longer what the key names
    assert not torch.allclose(shared(TEXTS), expected)
    torch.testing.assert_close(CachedFeatures(first, key=("char", 3))(TEXTS), expected)
    # A copy of the wrapper (version counters restart at 0) keeps a store of its own.
    assert not torch.allclose(copy.deepcopy(shared)(TEXTS), expected)
    other = CachedFeatures(frozen(CharEncoder()), key=("char", 4))  # another key: its own features
    assert not torch.allclose(other(TEXTS), expected)


def test_frozen_minilm_models_of_a_study_encode_each_text_once(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ModelConfig(backbone="minilm_l6", embedding_size=8, trainable_blocks=0)
    first, second = build_model(config).eval(), build_model(config).eval()
    assert first.feature_cache is not None and first.feature_cache.encoder is first.backbone
    assert set(first.state_dict()) == set(build_model(ModelConfig(backbone="minilm_l6")).state_dict())
    expected = first.feature_cache(TEXTS)
    torch.testing.assert_close(expected, first.backbone(TEXTS))
    monkeypatch.setattr(second.backbone, "encode", lambda texts: pytest.fail(f"re-encoded {texts}"))
    torch.testing.assert_close(second.feature_cache(TEXTS), expected)
    trained = build_model(ModelConfig(backbone="minilm_l6", embedding_size=8, trainable_blocks=1))
    assert trained.feature_cache is None
