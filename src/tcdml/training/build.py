"""One place that builds a training run from a config: ``build_run(config) -> Run``.

``tcdml train`` (``trainer.fit``), ``tcdml study`` and ``tcdml train --check`` go through here, in this order:

1. the data module reads the splits (``MetricDataModule.load_sets``): the validation classes are held out of
   the training split (``data.val_classes``), a training split that cannot fill a batch fails here;
2. ``fill_config``: the loss's runtime parameters by the rule ``tcdml adapt`` shares
   (``tcdml.losses.registry.fill_runtime_params``): ``num_classes`` = the training classes (after the
   validation classes are held out), ``embedding_size`` = ``model.embedding_size``, when the loss requires
   them and the config leaves them out; a value given that disagrees is a one-line error naming the key;
3. the model (``build_model``) and, for a ``pca`` head, its start from the training split's features
   (``init_head``);
4. the loss, once (``DistributedLoss`` around the registry's loss).

Steps 1-2 are ``prepare`` (no model: what ``--check`` and a study's planning need). Nothing is written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tcdml.errors import ParameterError, TcdmlInputError
from tcdml.training.config import TrainConfig
from tcdml.training.data import MetricDataModule

#: At most this many training samples (a seeded subset) give the features a ``pca`` head starts from.
PCA_SAMPLES = 10_000


@dataclass
class Run:
    """What ``build_run`` built: the filled config, the model, the loss (a ``DistributedLoss``) and the data
    module (splits read)."""

    config: TrainConfig
    model: nn.Module
    loss: nn.Module
    data: MetricDataModule


def prepare(
    config: TrainConfig, mean: tuple[float, ...] = (0.5,) * 3, std: tuple[float, ...] = (0.5,) * 3
) -> tuple[TrainConfig, MetricDataModule]:
    """The filled config and the data module with its splits read (``mean`` / ``std``: the backbone's input
    normalisation; the defaults serve checks that apply no transform)."""
    data = MetricDataModule(config.data, seed=config.seed, mean=mean, std=std)
    data.load_sets()
    return fill_config(config, data.train_set.num_classes), data


def fill_config(config: TrainConfig, num_classes: int) -> TrainConfig:
    """``config`` with its loss's runtime parameters filled (module docstring, step 2)."""
    from tcdml.losses.registry import fill_runtime_params

    loss = config.loss
    try:
        params = fill_runtime_params(
            loss.name, loss.params, num_classes=num_classes, embedding_size=config.model.embedding_size
        )
    except ParameterError as exc:
        raise TcdmlInputError(
            f"key 'loss.params.{exc.name}' = {exc.value!r}, expected {exc.expected}: the "
            f"{config.data.dataset} {config.data.train_split} split has {num_classes} training classes"
        ) from None
    if params == loss.params:
        return config
    return dataclasses.replace(config, loss=dataclasses.replace(loss, params=params))


def build_loss(config: TrainConfig) -> nn.Module:
    """The ``DistributedLoss`` around the registry loss of a filled config's ``loss`` section."""
    from tcdml.losses import DistributedLoss, build_loss_from_config

    try:
        loss = build_loss_from_config(config.loss.registry_config())
    except ValueError as exc:  # the registry's messages name the loss and the parameter
        raise TcdmlInputError(
            f"key 'loss' = {config.loss.registry_config()!r}, expected parameters that build the loss ({exc})"
        ) from None
    return DistributedLoss(loss)


def build_run(config: TrainConfig) -> Run:
    """The run of ``config`` (module docstring); raises ``TcdmlInputError`` before anything is written."""
    from tcdml.models import build_model

    model = build_model(config.model, feature_cache=config.data.feature_cache)
    config, data = prepare(config, model.mean, model.std)
    if model.head_kind == "pca":
        init_head(model, data, config.data.eval_batch_size, seed=config.data.val_seed)
    loss = build_loss(config)
    if not any(p.requires_grad for p in [*model.parameters(), *loss.parameters()]):
        raise TcdmlInputError(
            f"model.head={config.model.head!r} with model.trainable_blocks={config.model.trainable_blocks} "
            f"and loss {config.loss.name!r}: nothing to train (expected a head or trainable blocks)"
        )
    return Run(config, model, loss, data)


def init_head(model: nn.Module, data: MetricDataModule, batch_size: int, *, seed: int) -> None:
    """Start a ``pca`` head at the principal directions of the training split's features (at most
    ``PCA_SAMPLES``, a subset seeded by ``seed``), computed by the backbone as built (``model.extract``, eval
    mode, the test transform)."""
    from torch.utils.data import DataLoader, Subset

    from tcdml.models.head import set_principal

    dataset = data.feature_set()
    indices = np.arange(len(dataset))
    if len(indices) > PCA_SAMPLES:
        indices = np.sort(np.random.default_rng(seed).choice(indices, PCA_SAMPLES, replace=False))
    was_training = model.training
    model.eval()
    parts = []
    with torch.no_grad():  # not inference mode: a feature cache keeps these tensors for training
        for inputs, _ in DataLoader(Subset(dataset, indices.tolist()), batch_size=batch_size):
            parts.append(model.extract(inputs).float().cpu())
    model.train(was_training)
    set_principal(model.head, torch.cat(parts).numpy())
