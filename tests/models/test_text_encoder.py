"""The MiniLM sentence-encoder backbone: pooled features, unit-norm embeddings and partial fine-tuning
(``trainable_blocks``); its frozen-encoder cache is tested in test_feature_cache.py."""

from __future__ import annotations

import copy

import pytest
import torch

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
