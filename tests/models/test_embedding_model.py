"""Embedding models from a config: unit-norm embeddings of the right size, pooling, frozen BatchNorm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tcdml.errors import TcdmlInputError
from tcdml.models import EmbeddingModel, ModelConfig, build_model

IMAGES = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def check_embeddings(model: EmbeddingModel, size: int) -> torch.Tensor:
    out = model(IMAGES)
    assert out.shape == (3, size) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    return out


@pytest.mark.parametrize(
    ("config", "channels_last"),
    [
        (ModelConfig(backbone="resnet18", embedding_size=16), True),
        (ModelConfig(backbone="resnet18", embedding_size=8, pooling="catavgmax"), True),
        (ModelConfig(backbone="vit_tiny_patch16_224", embedding_size=12, img_size=32, pooling="avg"), False),
    ],
    ids=["resnet18", "resnet18-catavgmax", "vit-tiny"],
)
def test_normalised_embeddings_of_the_configured_size(config: ModelConfig, channels_last: bool) -> None:
    torch.manual_seed(0)
    model = build_model(config).eval()
    assert model.channels_last is channels_last
    with torch.no_grad():
        check_embeddings(model, config.embedding_size)
    assert model.mean == ((0.5,) * 3 if "vit" in config.backbone else (0.485, 0.456, 0.406))


def test_autocast_still_gives_float32_unit_rows() -> None:
    model = build_model(ModelConfig(backbone="resnet18", embedding_size=16)).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        check_embeddings(model, 16)


def test_frozen_batchnorm_stays_in_eval_mode_and_fixed() -> None:
    model = build_model(ModelConfig(backbone="resnet18", embedding_size=16, freeze_bn=True))
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and model.frozen_norms() == norms
    model.eval().train()
    assert model.training and model.head.training and not any(m.training for m in norms)
    before = norms[0].running_mean.clone()
    check_embeddings(model, 16).sum().backward()
    torch.testing.assert_close(norms[0].running_mean, before)  # statistics not updated in training
    assert all(p.grad is None and not p.requires_grad for m in norms for p in m.parameters())
    assert model.backbone.conv1.weight.grad is not None and model.head.weight.grad is not None


def test_batchnorm_trains_without_freeze() -> None:
    model = build_model(ModelConfig(backbone="resnet18", embedding_size=16)).train()
    norm = model.backbone.bn1
    before = norm.running_mean.clone()
    model(IMAGES)
    assert norm.training and norm.weight.requires_grad and not torch.equal(norm.running_mean, before)


def test_config_checks() -> None:
    config = ModelConfig.from_dict(
        {"backbone": "resnet18", "embedding_size": 64}, source="configs/model/r.yaml"
    )
    assert config.to_dict()["embedding_size"] == 64 and config.freeze_bn is False
    with pytest.raises(TcdmlInputError, match=r"configs/model/r.yaml: unknown key 'embed_dim'"):
        ModelConfig.from_dict({"embed_dim": 64}, source="configs/model/r.yaml")
    with pytest.raises(TcdmlInputError, match=r"embedding_size=0"):
        ModelConfig(embedding_size=0)
    with pytest.raises(TcdmlInputError, match=r"either 'pretrained'"):
        ModelConfig(pretrained="w.pt", pretrained_from_hub=True)
    with pytest.raises(TcdmlInputError, match=r"unknown timm backbone 'resnet_nope'"):
        build_model(ModelConfig(backbone="resnet_nope"))
    with pytest.raises(TcdmlInputError, match=r"backbone 'resnet18' does not accept img_size=64"):
        build_model(ModelConfig(backbone="resnet18", img_size=64))
