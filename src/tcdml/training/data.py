"""The LightningDataModule: m-per-class training batches and the sharded evaluation set.

Training batches come from ``MPerClassBatchSampler`` (deterministic per (seed, epoch), dealt to processes).
Lightning never calls ``set_epoch`` on a batch sampler and may start an epoch's iteration (worker prefetch)
before the ``on_train_epoch_start`` hooks, so the batch sampler here works out the epoch itself when an
iteration begins. Every sample's augmentation draws from its own generator state, seeded from (seed, epoch,
index): an epoch's images depend on nothing else (not on the number of workers, nor on what ran before),
which is what lets a resumed run replay them exactly. (The trainer runs with
``use_distributed_sampler=False``.) Image transforms apply to image datasets only: a text dataset
(``Modality.TEXT``) yields its strings as they are, batched by the default collate into lists of ``str``.
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
from tcdml.distributed import rank_and_world, rank_share
from tcdml.errors import TcdmlInputError
from tcdml.training.config import DataConfig, TrainConfig


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
        """Read both splits once and check that the train split can fill a batch (``fit`` and
        ``tcdml train --check`` call it before anything is written: a bad file fails first)."""
        if not hasattr(self, "train_set"):
            config = self.config
            self.train_set = load_split(config, config.train_split, self.transforms, train=True)
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
                raise TcdmlInputError(f"data ({config.dataset} {config.train_split} split): {exc}") from None

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
        """This process's contiguous shard of the evaluation set (gathered in rank order = dataset order)."""
        shard = Subset(self.eval_set, rank_share(len(self.eval_set), *rank_and_world()))
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


def check_data(config: TrainConfig) -> None:
    """Read the train and evaluation splits and check the batch composition (``tcdml train --check``).

    The transforms are built but not applied, so the backbone's normalisation does not matter here.
    """
    MetricDataModule(config.data, seed=config.seed, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)).load_sets()
