"""The LightningDataModule: m-per-class training batches and the sharded evaluation set.

Training batches come from ``MPerClassBatchSampler`` (deterministic per (seed, epoch), dealt to processes).
Lightning never calls ``set_epoch`` on a batch sampler and may start an epoch's iteration (worker prefetch)
before the ``on_train_epoch_start`` hooks, so the batch sampler here works out the epoch itself when an
iteration begins. Every sample's augmentation draws from its own generator state, seeded from (seed, epoch,
index): an epoch's images depend on nothing else (not on the number of workers, nor on what ran before),
which is what lets a resumed run replay them exactly. (The trainer runs with
``use_distributed_sampler=False``.) Image transforms apply to image datasets only: a text dataset
(``Modality.TEXT``) yields its strings as they are, batched by the default collate into lists of ``str``.

The validation classes (``data.val_classes``, ``tcdml.data.splits.validation_classes``) are held out of the
training split: ``train_set`` holds the other classes (renumbered ``0 .. C-1``, with the train transform),
``val_set`` the held-out ones (test transform; sharded across processes like the evaluation set before).
``eval_set`` (``data.eval_split``) is read for its index only: no sample of it is loaded during training
(the final report embeds it, ``tcdml.training.trainer``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from tcdml.data import MPerClassBatchSampler, TransformConfig, build_dataset, build_transform
from tcdml.data.base import LabelledDataset, Modality
from tcdml.data.splits import ClassSubset, validation_classes
from tcdml.distributed import rank_and_world, rank_share
from tcdml.errors import TcdmlInputError
from tcdml.training.config import DataConfig


def load_split(
    config: DataConfig, split: str, transforms: TransformConfig, *, train: bool
) -> LabelledDataset:
    """The ``split`` of ``config``'s dataset (its ``dataset``, ``root`` and ``options``), with the train or
    test transform of ``transforms`` when its ``modality`` is ``Modality.IMAGE``; text datasets keep their
    samples untransformed."""
    data = build_dataset(config.dataset, config.root, split, options=config.options)
    if data.modality is Modality.IMAGE:
        data.transform = build_transform(transforms, train=train)
    return data


class MetricDataModule(pl.LightningDataModule):
    """Train and evaluation loaders of ``config``; ``mean`` / ``std`` normalise as the backbone expects."""

    def __init__(
        self, config: DataConfig, *, seed: int, mean: tuple[float, ...], std: tuple[float, ...]
    ) -> None:
        super().__init__()
        self.config = config
        self.seed = seed
        self.transforms = config.transform_config(mean, std)
        self.epoch = 0
        self.sampler: MPerClassBatchSampler | None = None

    def load_sets(self) -> None:
        """Read the splits once, hold out the validation classes and check that the training classes can fill
        a batch (``fit`` and ``tcdml train --check`` call it before anything is written: a bad file fails
        first)."""
        if hasattr(self, "train_set"):
            return
        config = self.config
        split = build_dataset(config.dataset, config.root, config.train_split, options=config.options)
        images = split.modality is Modality.IMAGE
        train = build_transform(self.transforms, train=True) if images else None
        test = build_transform(self.transforms, train=False) if images else None
        where = f"data ({config.dataset} {config.train_split} split)"
        keep = np.ones(len(split), dtype=bool)
        self.val_set: LabelledDataset | None = None
        if config.val_classes:
            name = f"data.val_classes={config.val_classes!r}: {where}"
            hint = " (data.val_classes: 0 for none: then no model selection, the last epoch is kept)"
            keep, held_out = validation_classes(
                split.labels, config.val_classes, config.val_seed, name=name, hint=hint
            )
            self.val_set = ClassSubset(split, held_out, split="validation", transform=test)
        self.train_set = ClassSubset(split, keep, split=config.train_split, transform=train)
        self._features = ClassSubset(split, keep, split=config.train_split, transform=test)
        self.eval_set = load_split(config, config.eval_split, self.transforms, train=False)
        try:  # one process's view: the batch composition is per process
            MPerClassBatchSampler(
                self.train_set.labels,
                config.classes_per_batch,
                config.samples_per_class,
                seed=self.seed,
                num_replicas=1,
                rank=0,
            )
        except TcdmlInputError as exc:
            raise TcdmlInputError(f"{where}: {exc}") from None

    def feature_set(self) -> LabelledDataset:
        """The training classes' samples with the test transform (what a ``pca`` head starts from)."""
        self.load_sets()
        return self._features

    def setup(self, stage: str | None = None) -> None:
        """Read both splits (unless read) and build the sampler once the process group exists (it shards
        by rank)."""
        config = self.config
        self.load_sets()
        self.sampler = MPerClassBatchSampler(
            self.train_set.labels, config.classes_per_batch, config.samples_per_class, seed=self.seed
        )

    def current_epoch(self) -> int:
        """The epoch whose batches start now (remembered as the sampler position).

        Read from the optimiser steps taken, one per batch: Lightning may begin iterating before it updates
        ``trainer.current_epoch`` (a run resumed at an epoch end still reports the finished epoch then).
        """
        assert self.sampler is not None, "setup() first"
        if self.trainer is not None:
            self.epoch = self.trainer.global_step // len(self.sampler)
        return self.epoch

    def train_dataloader(self) -> DataLoader:
        assert self.sampler is not None, "setup() first"
        return DataLoader(
            SeededDataset(self.train_set, self.seed),
            batch_sampler=EpochBatchSampler(self.sampler, self.current_epoch),
            num_workers=self.config.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=False,
        )

    def val_dataloader(self) -> DataLoader:
        """This process's contiguous shard of the validation set (gathered in rank order = dataset order);
        empty without validation classes."""
        data = self.val_set if self.val_set is not None else []
        shard = Subset(data, rank_share(len(data), *rank_and_world()))
        return DataLoader(shard, batch_size=self.config.eval_batch_size, num_workers=self.config.num_workers)

    def state_dict(self) -> dict[str, Any]:
        """The sampler position: its seed and the epoch it serves."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Check the saved sampler position against this run: batches and augmentations follow the seed."""
        if int(state["seed"]) != self.seed:
            raise TcdmlInputError(
                f"resume: the checkpoint was trained with seed={state['seed']}, the config has "
                f"seed={self.seed}"
            )
        self.epoch = int(state["epoch"])


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """``sampler``'s batches for the epoch ``epoch_fn()`` returns when iteration begins, as (epoch, index)."""

    def __init__(self, sampler: MPerClassBatchSampler, epoch_fn: Callable[[], int]) -> None:
        self.sampler = sampler
        self.epoch_fn = epoch_fn

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.epoch_fn()
        self.sampler.set_epoch(epoch)
        for batch in self.sampler:
            yield [(epoch, index) for index in batch]


class SeededDataset(Dataset):
    """Key (epoch, index): ``dataset[index]`` under torch's CPU generator seeded from (seed, epoch, index).

    The global generator state is restored afterwards, so loading never disturbs the training RNG.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only (what fork_rng restores): torch.manual_seed would also reseed CUDA and
            # record a stack trace per call (about 1 ms per sample).
            torch.default_generator.manual_seed(
                int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0])
            )
            return self.dataset[index]
