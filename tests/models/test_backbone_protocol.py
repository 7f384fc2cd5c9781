"""Every tcdml backbone implements ``Backbone``; a timm model is adapted to it (``as_backbone``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tcdml.errors import TcdmlInputError
from tcdml.models import Backbone, EmbeddingModel, as_backbone, create_backbone
from tcdml.models.backbone import IMAGENET_MEAN, TimmBackbone
from tcdml.models.embedding import LOCAL_BACKBONES


@pytest.mark.parametrize("name", sorted(LOCAL_BACKBONES))
def test_tcdml_backbones_implement_the_protocol(name: str) -> None:
    backbone = LOCAL_BACKBONES[name]()
    assert isinstance(backbone, Backbone) and as_backbone(backbone) is backbone
    assert isinstance(backbone.num_features, int) and len(backbone.mean) == len(backbone.std) == 3
    blocks = backbone.blocks()
    assert blocks and all(isinstance(block, nn.Module) for block in blocks)
    owned = {id(p) for p in backbone.parameters()}
    assert all(id(p) in owned for block in blocks for p in block.parameters())


def test_a_timm_model_is_adapted() -> None:
    vit = create_backbone("vit_tiny_patch16_224", img_size=32)
    assert not isinstance(vit, Backbone)
    view = as_backbone(vit)
    assert isinstance(view, TimmBackbone) and isinstance(view, Backbone)
    assert view.num_features == 192 and view.blocks() == list(vit.blocks)
    assert view.mean == tuple(vit.pretrained_cfg["mean"])
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(view(images), vit(images))
    with pytest.raises(TcdmlInputError, match="'resnet18' has no blocks"):
        as_backbone(create_backbone("resnet18")).blocks()


def test_a_module_of_ones_own_is_a_backbone() -> None:
    class Pixels(nn.Module):
        num_features, mean, std = 12, (0.5,) * 3, (0.5,) * 3

        def __init__(self) -> None:
            super().__init__()
            self.stage = nn.Conv2d(3, 3, 1)

        def blocks(self) -> list[nn.Module]:
            return [self.stage]

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.stage(images).flatten(1)

    model = EmbeddingModel(Pixels(), 4, trainable_blocks=1)
    assert model.mean == (0.5,) * 3 and model(torch.rand(2, 3, 2, 2)).shape == (2, 4)
    plain = nn.Flatten()  # neither a Backbone nor a timm model: a one-line error
    assert TimmBackbone(plain).mean == IMAGENET_MEAN
    with pytest.raises(TcdmlInputError, match="cannot tell the feature size of Flatten"):
        EmbeddingModel(plain, 4)
