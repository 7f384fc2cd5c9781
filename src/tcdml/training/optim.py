"""Optimiser with separate learning rates for backbone, head and loss parameters, and per-step schedules.

Schedules are multiplicative factors of each group's learning rate, evaluated per optimiser step: a linear
warm-up from ~0 to 1 over ``warmup_epochs``, then ``cosine`` (down to ``min_lr_factor`` at the last step),
``step`` (times ``gamma`` every ``step_epochs`` epochs) or ``constant``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from tcdml.training.config import OptimConfig


def param_groups(model: nn.Module, loss: nn.Module, config: OptimConfig) -> list[dict]:
    """Trainable parameters as groups ``backbone``, ``head`` and ``loss`` (empty groups left out).

    ``model`` must have ``backbone`` and ``head`` submodules (``tcdml.models.EmbeddingModel``); ``loss``'s
    own parameters (proxies, class weights) form the ``loss`` group at ``loss_lr``.
    """
    rates = {
        "backbone": config.lr,
        "head": config.head_lr if config.head_lr is not None else config.lr,
        "loss": config.loss_lr if config.loss_lr is not None else config.lr,
    }
    modules = {"backbone": model.backbone, "head": model.head, "loss": loss}
    groups = []
    for name, module in modules.items():
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            groups.append({"name": name, "params": params, "lr": rates[name]})
    return groups


def build_optimizer(groups: list[dict], config: OptimConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (with Nesterov-free momentum) over ``groups``, with ``config.weight_decay``."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, betas=config.betas, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def lr_factor(config: OptimConfig, steps_per_epoch: int, max_epochs: int) -> Callable[[int], float]:
    """The schedule as ``factor(step)`` for ``torch.optim.lr_scheduler.LambdaLR`` (step = optimiser steps)."""
    total = max(1, steps_per_epoch * max_epochs)
    warmup = round(config.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if config.schedule == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return config.min_lr_factor + (1 - config.min_lr_factor) * 0.5 * (
                1 + math.cos(math.pi * progress)
            )
        if config.schedule == "step":
            return config.gamma ** (step // (config.step_epochs * steps_per_epoch))
        return 1.0

    return factor
