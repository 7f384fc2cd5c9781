"""The standard DML image transforms (torchvision.transforms.v2), sized from a small config.

- train: random resized crop to ``image_size`` (scale ``crop_scale``) + horizontal flip (``hflip``);
  ``crop_scale=(1, 1)`` means no random crop: the test geometry (a random resized crop of scale 1 would still
  stretch the image by a random aspect ratio);
- test: resize the short side to ``resize_size`` (default ``image_size / 0.875``, i.e. 256 for 224) + centre
  crop to ``image_size``.

Both end in a float tensor normalised with ``mean`` / ``std`` (ImageNet's by default, the image input
contract's ``tcdml.deploy.kinds.IMAGENET_MEAN`` / ``_STD``; use the backbone's, e.g. ``EmbeddingModel.mean`` /
``.std``, for backbones pretrained with other statistics).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tcdml.checks import is_int, is_real, require
from tcdml.deploy.kinds import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class TransformConfig:
    """Image sizes and normalisation of the DML transforms (all sizes in pixels)."""

    image_size: int = 224
    resize_size: int | None = None
    crop_scale: tuple[float, float] = (0.08, 1.0)
    hflip: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        """Each field checked; a bad one raises ``ParameterError`` naming it (``DataConfig`` says
        ``data.<field>``)."""
        size = self.image_size
        require(is_int(size) and size >= 1, "image_size", size, "an integer >= 1")
        resize = self.resize_size
        ok = resize is None or (is_int(resize) and resize >= size)
        require(ok, "resize_size", resize, f"null or an integer >= image_size ({size})")
        scale = self.crop_scale
        ok = isinstance(scale, (tuple, list)) and len(scale) == 2 and all(is_real(v) for v in scale)
        require(
            ok and 0 < scale[0] <= scale[1] <= 1, "crop_scale", scale, "[low, high] with 0 < low <= high <= 1"
        )
        require(isinstance(self.hflip, bool), "hflip", self.hflip, "true or false")
        for name, low in (("mean", None), ("std", 0.0)):  # per channel; a std divides
            values = getattr(self, name)
            ok = isinstance(values, (tuple, list)) and len(values) == 3 and all(is_real(v) for v in values)
            ok = ok and (low is None or all(v > low for v in values))
            expected = "3 numbers, one per channel" + (" (each > 0)" if low is not None else "")
            require(ok, name, values, expected)

    @property
    def test_resize(self) -> int:
        """The test transform's short-side size: ``resize_size``, default ``round(image_size / 0.875)``."""
        return self.resize_size or round(self.image_size / 0.875)


def build_transform(config: TransformConfig | None = None, *, train: bool) -> Callable[[Any], Any]:
    """The train (``train=True``) or test transform: PIL image -> normalised float tensor (3, S, S)."""
    import torch
    from torchvision.transforms import v2

    config = config or TransformConfig()
    size = config.image_size
    resize = config.test_resize
    if train and tuple(config.crop_scale) != (1.0, 1.0):
        geometry = [v2.RandomResizedCrop(size, scale=config.crop_scale, antialias=True)]
    else:
        geometry = [v2.Resize(resize, antialias=True), v2.CenterCrop(size)]
    if train and config.hflip:  # off for data whose mirror image is another class (digits, glyphs)
        geometry.append(v2.RandomHorizontalFlip())
    # Geometry on uint8 (fast path), then float + normalise.
    return v2.Compose(
        [
            v2.ToImage(),
            *geometry,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(config.mean), std=list(config.std)),
        ]
    )
