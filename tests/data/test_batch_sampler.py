"""The m-per-class batch sampler: batch composition, coverage, determinism and the distributed partition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tcdml.data import MPerClassBatchSampler
from tcdml.errors import TcdmlInputError

# Unequal classes, one smaller than m, labels neither contiguous nor sorted.
SIZES = {7: 9, 3: 4, 50: 1, 11: 6, 2: 13, 8: 5, 20: 3}
LABELS = np.random.default_rng(0).permutation(np.repeat(list(SIZES), list(SIZES.values())))


def composition(batch: list[int], labels: np.ndarray = LABELS) -> list[int]:
    _, counts = np.unique(labels[batch], return_counts=True)
    return sorted(counts.tolist())


def test_batches_hold_p_classes_times_m_and_cover_the_epoch() -> None:
    sampler = MPerClassBatchSampler(LABELS, classes_per_batch=3, samples_per_class=4, seed=1)
    chunks = sum(-(-n // 4) for n in SIZES.values())  # 14 chunks of 4 -> 4 batches of 3 classes
    assert len(sampler) == chunks // 3 == 4 and sampler.batch_size == 12
    batches = list(sampler)
    assert len(batches) == 4
    for batch in batches:
        assert len(batch) == 12 and composition(batch) == [4, 4, 4]
        assert all(isinstance(i, int) for i in batch)
    # A class with more than m samples never repeats one inside a chunk.
    for batch in batches:
        for label in set(LABELS[batch]) - {50, 20}:
            members = [i for i in batch if LABELS[i] == label]
            assert len(set(members)) == len(members)


def test_full_coverage_when_chunks_divide_evenly() -> None:
    labels = np.repeat(np.arange(6), [4, 8, 4, 2, 6, 6])  # 15 chunks of 2 = 5 batches of 3, none left over
    sampler = MPerClassBatchSampler(labels, 3, 2, seed=5)
    for epoch in range(4):
        sampler.set_epoch(epoch)
        seen = np.concatenate(list(sampler))
        assert np.array_equal(np.sort(seen), np.arange(len(labels)))  # each sample exactly once


def test_small_class_is_repeated_evenly() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])  # class 2 has one sample, m = 4
    sampler = MPerClassBatchSampler(labels, 3, 4)
    batch = next(iter(sampler))
    assert batch.count(8) == 4 and composition(batch, labels) == [4, 4, 4]


def test_deterministic_per_seed_and_epoch() -> None:
    def run(seed: int, epoch: int) -> list[list[int]]:
        sampler = MPerClassBatchSampler(LABELS, 3, 2, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert run(0, 0) == run(0, 0) and run(3, 2) == run(3, 2)
    assert run(0, 0) != run(0, 1) and run(0, 0) != run(1, 0)
    sampler = MPerClassBatchSampler(LABELS, 3, 2)
    assert list(sampler) == list(sampler)  # iterating again without set_epoch repeats the epoch
    assert all(len(run(0, e)) == len(sampler) for e in range(5))  # same length every epoch


@pytest.mark.parametrize("epoch", [0, 1, 2])
def test_distributed_ranks_get_disjoint_equal_shares(epoch: int) -> None:
    single = MPerClassBatchSampler(LABELS, 2, 2, seed=4)
    ranks = [MPerClassBatchSampler(LABELS, 2, 2, seed=4, num_replicas=2, rank=r) for r in range(2)]
    for sampler in (single, *ranks):
        sampler.set_epoch(epoch)
    shares = [list(sampler) for sampler in ranks]
    global_batches = list(single)
    assert len(global_batches) == 11  # 23 chunks of 2 // 2 classes: one batch is dropped for 2 ranks
    assert len(shares[0]) == len(shares[1]) == len(ranks[0]) == 5
    assert not {tuple(b) for b in shares[0]} & {tuple(b) for b in shares[1]}
    assert sorted(shares[0] + shares[1]) == sorted(global_batches[:10])
    assert shares[0] == global_batches[0:10:2] and shares[1] == global_batches[1:10:2]


def test_with_a_dataloader() -> None:
    dataset = TensorDataset(torch.arange(len(LABELS)), torch.as_tensor(LABELS))
    loader = DataLoader(dataset, batch_sampler=MPerClassBatchSampler(LABELS, 2, 3, seed=2))
    batches = [labels for _, labels in loader]
    assert len(batches) == len(loader) and all(torch.unique(b).numel() == 2 for b in batches)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((LABELS, 1, 2), {}, "classes_per_batch=1, expected 2..7"),
        ((LABELS, 8, 2), {}, "classes_per_batch=8, expected 2..7"),
        ((LABELS, 2, 0), {}, "samples_per_class=0, expected >= 1"),
        ((LABELS, 2, 2), {"num_replicas": 2, "rank": 2}, r"rank=2, expected 0..1"),
        ((LABELS, 7, 4), {"num_replicas": 4, "rank": 0}, "cannot give each of 4 processes one"),
        ((LABELS.astype(float), 2, 2), {}, "labels must be a 1-D integer array"),
        ((LABELS, 2, 2), {"seed": -1}, "seed=-1, expected >= 0"),
    ],
)
def test_bad_arguments(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(TcdmlInputError, match=message):
        MPerClassBatchSampler(*args, **kwargs)
