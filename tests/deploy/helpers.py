"""Shared pieces of the export/deploy tests: calibration files, real prepared inputs, handmade checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


def write_calibration(path: Path, threshold: float = 0.5, **extra: Any) -> Path:
    """A calibration JSON shaped like ``tcdml calibrate -o``'s (FAR target)."""
    data = {
        "target": "far",
        "target_rate": 0.01,
        "threshold": threshold,
        "far": 0.0098,
        "frr": 0.21,
        "num_classes": 10,
        "class_far": {"min": 0.0, "median": 0.008, "p90": 0.02, "max": 0.05},
        "class_frr": {"min": 0.05, "median": 0.2, "p90": 0.4, "max": 0.6},
        "worst_far_classes": [],
        "worst_frr_classes": [],
        "mode": "histogram",
        **extra,
    }
    path.write_text(json.dumps(data))
    return path


def prepared_images(
    dataset: str,
    count: int,
    *,
    image_size: int,
    resize_size: int | None,
    mean,
    std,
    options: dict | None = None,
) -> np.ndarray:
    """``count`` real test images of ``dataset`` through tcdml's test transform: float32 (N, 3, S, S)."""
    from tcdml.data import TransformConfig, build_transform
    from tcdml.data.registry import build_dataset

    data = build_dataset(dataset, "unused", "test", options=options or {})
    data.transform = build_transform(
        TransformConfig(image_size=image_size, resize_size=resize_size, mean=tuple(mean), std=tuple(std)),
        train=False,
    )
    picks = np.random.default_rng(0).choice(len(data), size=min(count, len(data)), replace=False)
    return torch.stack([data[int(i)][0] for i in sorted(picks)]).numpy()


def write_checkpoint(path: Path, model: torch.nn.Module, config: dict[str, Any]) -> Path:
    """A checkpoint ``model_from_checkpoint`` reads: the model's weights under ``model.`` and the config."""
    from tcdml.training.config import TrainConfig

    values = TrainConfig.from_dict(config).to_dict()
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "tcdml_config": values}, path)
    return path


def reference(model: torch.nn.Module, inputs: Any) -> np.ndarray:
    """What tcdml embeds: the model in eval mode, without gradients."""
    model.eval()
    with torch.inference_mode():
        source = torch.from_numpy(inputs) if isinstance(inputs, np.ndarray) else inputs
        return model(source).float().numpy()
