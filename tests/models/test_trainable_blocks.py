"""``ModelConfig.trainable_blocks`` on timm and tcdml backbones: what trains, what stays frozen, bad input."""

from __future__ import annotations

import pytest
import torch

from tcdml.errors import TcdmlInputError
from tcdml.models import ModelConfig, build_model


def test_vit_trains_its_last_block_and_the_head() -> None:
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(backbone="vit_tiny_patch16_224", embedding_size=8, img_size=32, trainable_blocks=1)
    ).train()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    last = model.backbone.blocks[-1]
    trained = {id(p) for p in [*last.parameters(), *model.head.parameters()]}
    assert all(p.requires_grad == (id(p) in trained) for p in model.parameters())
    assert all((p.grad is not None) == (id(p) in trained) for p in model.parameters())
    assert last.training and not model.backbone.blocks[0].training and not model.backbone.norm.training


def test_none_trains_everything_and_zero_freezes_the_backbone() -> None:
    everything = build_model(ModelConfig(backbone="small_cnn", embedding_size=4))
    assert all(p.requires_grad for p in everything.parameters())
    frozen = build_model(ModelConfig(backbone="small_cnn", embedding_size=4, trainable_blocks=0)).train()
    assert not any(p.requires_grad for p in frozen.backbone.parameters()) and frozen.head.weight.requires_grad
    assert not any(m.training for m in frozen.backbone.modules()) and frozen.head.training


def test_bad_trainable_blocks() -> None:
    with pytest.raises(TcdmlInputError, match="trainable_blocks=-1"):
        ModelConfig(backbone="small_cnn", trainable_blocks=-1)
    with pytest.raises(TcdmlInputError, match="backbone 'resnet18' has no blocks"):
        build_model(ModelConfig(backbone="resnet18", embedding_size=4, trainable_blocks=1))
    with pytest.raises(TcdmlInputError, match="trainable_blocks=5, but the backbone has 4 blocks"):
        build_model(ModelConfig(backbone="small_cnn", embedding_size=4, trainable_blocks=5))


def test_small_cnn_trains_its_last_block_and_the_head() -> None:
    model = build_model(ModelConfig(backbone="small_cnn", embedding_size=4, trainable_blocks=1)).train()
    model(torch.randn(4, 3, 28, 28)).sum().backward()
    trained = {id(p) for p in [*model.backbone.project.parameters(), *model.head.parameters()]}
    assert all((p.grad is not None) == (id(p) in trained) for p in model.parameters())
    assert model.backbone.project.training and not model.backbone.features.training


@pytest.mark.parametrize("option", [{"pooling": "max"}, {"img_size": 64}, {"drop_path_rate": 0.1}])
def test_local_backbones_refuse_timm_only_options(option: dict) -> None:
    """small_cnn & co. would silently ignore timm's options: a one-line error instead."""
    with pytest.raises(TcdmlInputError, match=f"does not take {next(iter(option))}"):
        build_model(ModelConfig(backbone="small_cnn", embedding_size=4, **option))
