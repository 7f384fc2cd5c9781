"""The MiniLM sentence-encoder backbone: pooled features, unit-norm embeddings, the frozen-encoder cache and
partial fine-tuning (``trainable_blocks``)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tcdml.errors import TcdmlInputError
from tcdml.models import EmbeddingModel, ModelConfig, build_model
from tcdml.models.text_encoder import SentenceEncoder

TEXTS = [
    "Horses; live, pure-bred breeding animals",
    "Asses; live",
    "Fish; frozen, salmonidae, excluding fillets, fish meat of 0304, and edible fish offal",
    "Asses; live",  # a repeat: the cache must hand back the same row twice
]


@pytest.fixture(scope="module")
def shared_encoder() -> SentenceEncoder:
    return SentenceEncoder()


@pytest.fixture
def encoder(shared_encoder: SentenceEncoder) -> SentenceEncoder:
    return copy.deepcopy(shared_encoder)  # tests change requires_grad and modes


def test_features_and_blocks(encoder: SentenceEncoder) -> None:
    features = encoder.eval()(TEXTS)
    assert features.shape == (4, 384) and features.dtype == torch.float32 and encoder.num_features == 384
    torch.testing.assert_close(features[1], features[3])
    assert len(encoder.blocks()) == 6 and encoder.blocks()[0] is encoder.encoder.encoder.layer[0]
    with pytest.raises(TcdmlInputError, match="list of str"):
        encoder(torch.zeros(2, 3))


def test_build_model_gives_unit_norm_embeddings() -> None:
    model = build_model(ModelConfig(backbone="minilm_l6", embedding_size=16, trainable_blocks=0))
    assert not model.channels_last and len(model.mean) == 3
    with torch.no_grad():
        out = model.eval()(TEXTS)
    assert out.shape == (4, 16) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4))


def test_cache_equals_no_cache_and_is_never_stale(encoder: SentenceEncoder) -> None:
    encoder.eval().requires_grad_(False)
    with torch.inference_mode():  # filled under inference mode (evaluation) ...
        first = encoder(TEXTS[:2])
    assert encoder._frozen_state() is not None  # frozen + eval: features come from a cache
    cached = encoder(TEXTS)  # ... read outside it, into a graph: a head on top can still train
    head = nn.Linear(384, 2)
    head(cached).sum().backward()
    torch.testing.assert_close(cached[:2], first)
    torch.testing.assert_close(cached, encoder.encode(TEXTS))
    # New weights (load_state_dict copies in place): the cached features are not used.
    state = {key: value.clone() for key, value in encoder.state_dict().items()}
    state["encoder.encoder.layer.5.output.LayerNorm.weight"] *= 2
    encoder.load_state_dict(state)
    torch.testing.assert_close(encoder(TEXTS), encoder.encode(TEXTS))
    assert not torch.allclose(encoder(TEXTS), cached)
    # Trainable or in training mode: no cache.
    encoder.requires_grad_(True)
    assert encoder(TEXTS).requires_grad and not encoder._cache
    encoder.requires_grad_(False).train()
    encoder(TEXTS)
    assert not encoder._cache


def test_frozen_encoder_trains_only_the_head(encoder: SentenceEncoder) -> None:
    model = EmbeddingModel(encoder, 8, features=384, trainable_blocks=0).eval().train()
    assert model.training and model.head.training
    assert not any(module.training for module in model.backbone.modules())  # dropout off
    model(TEXTS).sum().backward()
    assert [name for name, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    assert all(p.grad is None for p in model.backbone.parameters()) and model.head.weight.grad is not None


def test_last_blocks_fine_tune(encoder: SentenceEncoder) -> None:
    model = EmbeddingModel(encoder, 8, features=384, trainable_blocks=2).train()
    trained = [*encoder.blocks()[-2:], model.head]
    trained_params = {id(p) for module in trained for p in module.parameters()}
    model(TEXTS).sum().backward()
    for param in model.parameters():
        assert param.requires_grad == (id(param) in trained_params)
        assert (param.grad is not None) == (id(param) in trained_params)
    assert all(m.training for block in trained for m in block.modules())
    frozen = [encoder.encoder.embeddings, *encoder.blocks()[:-2]]
    assert not any(m.training for part in frozen for m in part.modules())


def test_more_blocks_than_the_backbone_has(encoder: SentenceEncoder) -> None:
    with pytest.raises(TcdmlInputError, match="trainable_blocks=7, but the backbone has 6 blocks"):
        EmbeddingModel(encoder, 8, features=384, trainable_blocks=7)


def test_unmodified_encoders_share_their_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two encoders freshly loaded from the same folder: the second one encodes nothing (a study's runs)."""
    first, second = (SentenceEncoder().eval().requires_grad_(False) for _ in range(2))
    expected = first(TEXTS)
    monkeypatch.setattr(second, "encode", lambda texts: pytest.fail(f"re-encoded {texts}"))
    torch.testing.assert_close(second(TEXTS), expected)
    # Once its weights change in place, an encoder no longer reads (or fills) the shared features.
    with torch.no_grad():
        second.encoder.encoder.layer[5].output.LayerNorm.weight.mul_(2)
    monkeypatch.undo()
    assert not torch.allclose(second(TEXTS), expected)
    torch.testing.assert_close(first(TEXTS), expected)
    # A copy of the changed encoder (its version counters restart at 0) must not look unmodified either.
    assert not torch.allclose(copy.deepcopy(second)(TEXTS), expected)
    # Nor an encoder whose weights were replaced by new tensors (version 0 again), nor another max_length.
    third = SentenceEncoder().eval().requires_grad_(False)
    halved = {key: value * 0.5 for key, value in third.state_dict().items()}
    third.load_state_dict(halved, assign=True)
    third.requires_grad_(False)
    assert not torch.allclose(third(TEXTS), expected)
    short = SentenceEncoder(max_length=4).eval().requires_grad_(False)
    torch.testing.assert_close(short(TEXTS), short.encode(TEXTS))
