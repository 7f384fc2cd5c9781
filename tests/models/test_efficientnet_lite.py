"""EfficientNet-lite0 from its packages: weights load, pooled features, blocks, embeddings via build_model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tcdml.models import ModelConfig, build_model
from tcdml.models.efficientnet_lite import LITE_MEAN, LITE_STD, EfficientNetLite0, weights_path

IMAGES = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def backbone() -> EfficientNetLite0:
    return EfficientNetLite0().eval()


def test_packaged_weights_load_into_every_parameter(backbone: EfficientNetLite0) -> None:
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    ours = backbone.state_dict()
    assert len(ours) == len(state) - 2  # everything but the classifier (_fc.weight, _fc.bias)
    torch.testing.assert_close(backbone.stem[0].weight, state["_conv_stem.weight"])
    torch.testing.assert_close(backbone.head[1].running_var, state["_bn1.running_var"])
    torch.testing.assert_close(
        backbone.mbconv[15]._project_conv.weight, state["_blocks.15._project_conv.weight"]
    )


def test_features_and_normalisation(backbone: EfficientNetLite0) -> None:
    with torch.no_grad():
        features = backbone(IMAGES)
        assert backbone(torch.rand(1, 3, 37, 45)).shape == (1, 1280)  # any input size ("same" padding)
    assert features.shape == (2, backbone.num_features) == (2, 1280)
    assert torch.isfinite(features).all() and (features >= 0).all() and (features <= 6).all()  # ReLU6
    assert backbone.mean == LITE_MEAN and backbone.std == LITE_STD


def test_blocks_are_the_stages_then_the_head(backbone: EfficientNetLite0) -> None:
    blocks = backbone.blocks()
    assert [len(block) for block in blocks[:7]] == [1, 2, 2, 3, 3, 4, 1]
    assert blocks[-1] is backbone.head
    channels = [block[-1]._bn2.num_features for block in blocks[:7]]
    assert channels == [16, 24, 40, 80, 112, 192, 320]  # input to output
    owned = {id(module) for module in backbone.modules()}
    assert all(id(m) in owned for block in blocks for m in block)


def test_unit_embeddings_through_build_model() -> None:
    model = build_model(
        ModelConfig(backbone="efficientnet_lite0", embedding_size=16, trainable_blocks=2)
    ).eval()
    assert model.mean == LITE_MEAN and model.std == LITE_STD
    with torch.no_grad():
        out = model(IMAGES)
    assert out.shape == (2, 16)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    trained = {name.split(".")[0] for name, p in model.backbone.named_parameters() if p.requires_grad}
    assert trained == {"mbconv", "head"}
    assert all(not p.requires_grad for p in model.backbone.stem.parameters())
    assert not model.train().backbone.stem.training and model.backbone.head.training


def test_random_initialisation_differs() -> None:
    torch.manual_seed(0)
    random = EfficientNetLite0(pretrained=False)
    assert isinstance(random.stem[0], nn.Conv2d)
    assert not torch.equal(random.stem[0].weight, EfficientNetLite0().stem[0].weight)
