"""In eval mode a sample's embedding must not depend on the rest of its batch (issue: `tcdml embed
--batch-size 7` gave R@1 0.12 where batch 1000 gave 0.59: small_cnn's BatchNorm used batch statistics).

Each backbone first takes a few training steps (so BatchNorm running statistics, where there are any, are not
their initial 0/1), then embeds the same samples alone, inside their batch and inside a batch of others.
"""

from __future__ import annotations

import pytest
import torch

from tcdml.models import ModelConfig, build_model
from tcdml.models.embedding import LOCAL_BACKBONES

IMAGE_BACKBONES = {
    "small_cnn": {"image": 28},
    "efficientnet_lite0": {"image": 32},
    # timm backbones, randomly initialised (no download): a CNN with BatchNorm, a ViT, a ConvNeXt (LayerNorm)
    "resnet18": {"image": 32},
    "vit_tiny_patch16_224": {"image": 32, "img_size": 32},
    "convnext_atto": {"image": 32},
}
TEXTS = [
    "Live horses",
    "Pure-bred breeding animals of the bovine species, other than dairy cattle",
    "Coffee, not roasted, not decaffeinated",
    "Motor cars principally designed for the transport of persons",
    "Tea",
    "Parts of watches, of precious metal",
    "Woven fabrics of cotton, containing 85 % or more by weight of cotton",
]


def _warm_up(model: torch.nn.Module, make_batch) -> None:
    """A few SGD steps in training mode: running statistics move away from their initial values."""
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    model.train()
    for _ in range(3):
        optimiser.zero_grad()
        model(make_batch()).pow(3).sum().backward()
        optimiser.step()
    model.eval()


def _assert_independent(model: torch.nn.Module, samples, others) -> None:
    with torch.inference_mode():
        batch = model(samples)
        mixed = model(_concat(others, samples))[len(others) :]
        alone = torch.cat([model(samples[i : i + 1]) for i in range(len(samples))])
    torch.testing.assert_close(alone, batch, atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed, batch, atol=1e-5, rtol=0)


def _concat(first, second):
    return torch.cat([first, second]) if isinstance(first, torch.Tensor) else [*first, *second]


@pytest.mark.parametrize("backbone", sorted(IMAGE_BACKBONES))
def test_image_embeddings_do_not_depend_on_the_batch(backbone: str) -> None:
    spec = dict(IMAGE_BACKBONES[backbone])
    size = spec.pop("image")
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone, embedding_size=8, **spec))
    _warm_up(model, lambda: torch.randn(6, 3, size, size) * 2 + 0.5)
    samples, others = torch.randn(5, 3, size, size), torch.randn(9, 3, size, size) * 3 - 1
    _assert_independent(model, samples, others)


def test_text_embeddings_do_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="minilm_l6", embedding_size=8, trainable_blocks=1))
    _warm_up(model, lambda: TEXTS[:4])
    # Batches of texts of different lengths pad differently: the attention mask must hide the padding.
    _assert_independent(model, TEXTS[:4], [TEXTS[5] * 6, *TEXTS[4:]])


def test_every_local_backbone_is_covered() -> None:
    assert set(LOCAL_BACKBONES) <= {*IMAGE_BACKBONES, "minilm_l6"}
