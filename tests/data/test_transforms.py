"""The DML transforms: output size and normalisation, train randomness, test determinism, config checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tcdml.data import TransformConfig, build_transform
from tcdml.errors import ParameterError, TcdmlInputError

IMAGE = Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(40, 60, 3), dtype=np.uint8))


def test_test_transform_resizes_then_centre_crops() -> None:
    config = TransformConfig(image_size=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    out = build_transform(config, train=False)(IMAGE)
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert torch.equal(out, build_transform(config, train=False)(IMAGE))  # deterministic
    # resize_size default: image_size / 0.875 -> short side 18, then the centre 16 x 16.
    reference = IMAGE.resize((27, 18), Image.BILINEAR).crop((6, 1, 22, 17))
    expected = torch.as_tensor(np.array(reference)).permute(2, 0, 1).float() / 255
    assert (out - expected).abs().mean() < 0.02


def test_train_transform_is_random_and_normalised() -> None:
    transform = build_transform(TransformConfig(image_size=24), train=True)
    torch.manual_seed(0)
    first = transform(IMAGE)
    torch.manual_seed(0)
    assert torch.equal(first, transform(IMAGE))  # seeded by torch, as DataLoader workers are
    assert first.shape == (3, 24, 24) and not torch.equal(first, transform(IMAGE))
    assert first.min() < 0  # ImageNet normalisation by default


@pytest.mark.parametrize(
    "kwargs", [{"image_size": 0}, {"image_size": 224, "resize_size": 200}, {"crop_scale": (0.5, 0.2)}]
)
def test_bad_config(kwargs: dict) -> None:
    with pytest.raises(ParameterError, match=r"^(image_size|resize_size|crop_scale)=.*: expected ") as error:
        TransformConfig(**kwargs)
    assert error.value.name in kwargs and isinstance(error.value, TcdmlInputError)
    assert str(error.value).startswith(f"{error.value.name}=")


def test_hflip_can_be_switched_off() -> None:
    """Without the flip (digits), an image whose left half is bright stays so under a full-size crop."""
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, :16] = 255
    image = Image.fromarray(pixels)
    config = dict(image_size=32, crop_scale=(1.0, 1.0), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    torch.manual_seed(0)
    never = [build_transform(TransformConfig(**config, hflip=False), train=True)(image) for _ in range(20)]
    assert all(float(out[:, :, :16].mean()) > float(out[:, :, 16:].mean()) for out in never)
    flipped = [build_transform(TransformConfig(**config), train=True)(image) for _ in range(20)]
    assert any(float(out[:, :, :16].mean()) < float(out[:, :, 16:].mean()) for out in flipped)


def test_crop_scale_one_means_no_random_crop() -> None:
    """crop_scale (1, 1): the train geometry is the test geometry (no random aspect-ratio stretch)."""
    config = TransformConfig(image_size=16, crop_scale=(1.0, 1.0), hflip=False)
    train, test = build_transform(config, train=True), build_transform(config, train=False)
    torch.manual_seed(0)
    assert all(torch.equal(train(IMAGE), test(IMAGE)) for _ in range(5))
    stretched = build_transform(
        TransformConfig(image_size=16, crop_scale=(0.99, 1.0), hflip=False), train=True
    )
    assert not all(torch.equal(stretched(IMAGE), test(IMAGE)) for _ in range(5))
