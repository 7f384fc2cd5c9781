"""A small convolutional backbone for 28 x 28 digits (the MNIST demo): trains in seconds on a CPU.

``SmallCNN()(images)`` maps (B, 3, H, W) images to (B, 64) features (pooled, then Linear-BN-ReLU);
``build_model`` puts the usual linear head + L2 normalisation on top when ``ModelConfig.backbone`` is
``"small_cnn"``.
"""

from __future__ import annotations

import torch
from torch import nn

#: MNIST pixel statistics (per channel of the grey image repeated as RGB).
MNIST_MEAN = (0.1307, 0.1307, 0.1307)
MNIST_STD = (0.3081, 0.3081, 0.3081)


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU stages (32, 64, 128 channels) with max pooling, global average pooling, then a
    Linear-BN-ReLU layer (``hidden`` wide).

    The nonlinear layer matters for 2-D embeddings: with the linear head alone on the pooled features,
    ArcFace on MNIST stalls around R@1 0.6 (digits cannot pass each other on the circle); with it, R@1 ~0.9.
    ``num_features`` is the output width (``hidden``); ``pretrained_cfg`` carries the input normalisation
    (MNIST's), read by ``EmbeddingModel`` as timm backbones' is.

    Every BatchNorm keeps running statistics, so in eval mode a sample's features do not depend on the
    rest of its batch (until tcdml 0.1 the convolutional BatchNorms used batch statistics even in eval
    mode: embeddings changed with ``--batch-size``; such checkpoints no longer load).
    """

    def __init__(
        self, in_channels: int = 3, widths: tuple[int, int, int] = (32, 64, 128), hidden: int = 64
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for index, width in enumerate(widths):
            layers += [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            if index < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            previous = width
        self.features = nn.Sequential(*layers)
        self.project = nn.Sequential(
            nn.Linear(previous, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)
        )
        self.num_features = hidden
        self.pretrained_cfg = {"mean": MNIST_MEAN, "std": MNIST_STD}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, num_features) features."""
        return self.project(self.features(images).mean(dim=(2, 3)))
