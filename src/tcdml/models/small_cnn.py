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
    A ``Backbone``: ``num_features`` is the output width (``hidden``), ``mean`` / ``std`` the input
    normalisation (MNIST's), ``blocks()`` the conv stages and the Linear-BN-ReLU layer.

    Every BatchNorm keeps running statistics, so in eval mode a sample's features do not depend on the
    rest of its batch (until tcdml 0.1 the convolutional BatchNorms used batch statistics even in eval
    mode: embeddings changed with ``--batch-size``; such checkpoints no longer load).
    """

    mean = MNIST_MEAN
    std = MNIST_STD

    def __init__(
        self, in_channels: int = 3, widths: tuple[int, int, int] = (32, 64, 128), hidden: int = 64
    ) -> None:
        super().__init__()
        stages: list[list[nn.Module]] = []
        previous = in_channels
        for index, width in enumerate(widths):
            stage = [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            if index < len(widths) - 1:
                stage.append(nn.MaxPool2d(2))
            stages.append(stage)
            previous = width
        self.features = nn.Sequential(*[layer for stage in stages for layer in stage])
        self.stage_sizes = tuple(len(stage) for stage in stages)
        self.project = nn.Sequential(
            nn.Linear(previous, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)
        )
        self.num_features = hidden

    def blocks(self) -> list[nn.Module]:
        """The conv-BN-ReLU(-pool) stages (``nn.Sequential`` views of ``features``), then ``project``."""
        starts = [sum(self.stage_sizes[:i]) for i in range(len(self.stage_sizes))]
        stages = [self.features[start : start + n] for start, n in zip(starts, self.stage_sizes, strict=True)]
        return [*stages, self.project]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, num_features) features."""
        return self.project(self.features(images).mean(dim=(2, 3)))
