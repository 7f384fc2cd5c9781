"""The m-per-class batch sampler: every batch holds P classes x m samples, one epoch covers the data.

How one epoch is built (the same on every process, from ``(seed, epoch)`` alone):

1. Each class's samples are shuffled and cut into chunks of m. A last, short chunk is topped up with other
   samples of the same class (drawn without replacement), so every sample appears at least once per epoch.
   A class with fewer than m samples gives one chunk in which its samples repeat as evenly as possible
   (sampling with replacement; such a batch holds duplicate images of that class).
2. With K chunks in all, the epoch has ``B = K // P`` batches. Each batch takes one chunk from each of P
   distinct classes, drawn without replacement with probability proportional to their unused chunks; a class
   with as many unused chunks as batches left is always taken (it could not be used up otherwise). So
   whenever no class has more than B chunks, every chunk is used: the ``K % P`` left over are the only
   chunks that wait for the next epoch's reshuffle. (A class with more than B chunks cannot be used up, as a
   batch takes one chunk per class; should fewer than P classes have chunks left, the batch is completed
   with fresh chunks of other classes.)
3. Under distributed training the B batches are dealt round-robin to the ``num_replicas`` processes and the
   last ``B % num_replicas`` are dropped, so the processes get disjoint batches, as many each.

Call ``set_epoch(epoch)`` before each epoch; with the same seed and epoch the batches are identical across
runs and processes. (Lightning calls ``set_epoch`` only on ``loader.sampler`` and
``loader.batch_sampler.sampler``, not on a batch sampler: call it from the training loop, e.g. in
``on_train_epoch_start``.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from tcdml.distributed import rank_and_world
from tcdml.errors import TcdmlInputError


class MPerClassBatchSampler(Sampler[list[int]]):
    """Batches of ``classes_per_batch`` (P) classes x ``samples_per_class`` (m) sample indices.

    ``labels`` are the dataset's labels (one int per sample, any values). ``num_replicas`` and ``rank``
    default to those of the initialised ``torch.distributed`` process group (1 and 0 without one).
    ``len(sampler)`` is the number of batches this process gets per epoch; it is the same in every epoch.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        classes_per_batch: int,
        samples_per_class: int,
        *,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise TcdmlInputError(
                f"sampler: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}"
            )
        group_rank, group_size = rank_and_world()
        num_replicas = group_size if num_replicas is None else num_replicas
        rank = group_rank if rank is None else rank
        _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        # Sample indices grouped by class: class c holds order[starts[c]:starts[c] + counts[c]].
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.class_indices = [order[s : s + n] for s, n in zip(starts, counts, strict=True)]
        self.classes_per_batch = classes_per_batch
        self.samples_per_class = samples_per_class
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        num_chunks = int(sum(-(-n // samples_per_class) for n in counts)) if samples_per_class > 0 else 0
        self.global_batches = num_chunks // classes_per_batch if classes_per_batch > 0 else 0
        self._check()

    def _check(self) -> None:
        if self.samples_per_class < 1:
            raise TcdmlInputError(f"sampler: samples_per_class={self.samples_per_class}, expected >= 1")
        if not 2 <= self.classes_per_batch <= len(self.class_indices):
            raise TcdmlInputError(
                f"sampler: classes_per_batch={self.classes_per_batch}, expected 2..{len(self.class_indices)} "
                "(the number of classes)"
            )
        if self.seed < 0:
            raise TcdmlInputError(f"sampler: seed={self.seed}, expected >= 0")
        if self.num_replicas < 1:
            raise TcdmlInputError(f"sampler: num_replicas={self.num_replicas}, expected >= 1")
        if not 0 <= self.rank < self.num_replicas:
            raise TcdmlInputError(f"sampler: rank={self.rank}, expected 0..{self.num_replicas - 1}")
        if len(self) == 0:
            raise TcdmlInputError(
                f"sampler: {self.global_batches} batches of {self.classes_per_batch} classes per epoch "
                f"cannot give each of {self.num_replicas} processes one"
            )

    @property
    def batch_size(self) -> int:
        """Samples per batch: classes_per_batch x samples_per_class."""
        return self.classes_per_batch * self.samples_per_class

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields (a new shuffle per epoch)."""
        if epoch < 0:
            raise TcdmlInputError(f"sampler: epoch={epoch}, expected >= 0")
        self.epoch = epoch

    def __len__(self) -> int:
        return self.global_batches // self.num_replicas

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches(self.epoch)
        usable = len(self) * self.num_replicas
        for batch in batches[self.rank : usable : self.num_replicas]:
            yield batch.tolist()

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """All batches of ``epoch`` before they are dealt to processes (identical on every process)."""
        rng = np.random.default_rng([self.seed, epoch])
        m, p = self.samples_per_class, self.classes_per_batch
        chunks = [_class_chunks(rng, indices, m) for indices in self.class_indices]
        used = np.zeros(len(chunks), dtype=np.int64)
        total = np.array([len(c) for c in chunks], dtype=np.int64)
        batches = []
        for batches_left in range(self.global_batches, 0, -1):
            left = total - used
            # Gumbel top-k: P distinct classes drawn with probability proportional to their unused chunks,
            # those that need every remaining batch first.
            keys = np.full(len(chunks), -np.inf)
            alive = left > 0
            keys[alive] = np.log(left[alive]) + rng.gumbel(size=int(alive.sum()))
            take = min(p, int(alive.sum()))
            picked = np.lexsort((-keys, left < batches_left))[:take]
            parts = [chunks[c][used[c]] for c in picked]
            used[picked] += 1
            if take < p:  # too few classes left: complete the batch with fresh chunks of other classes
                others = np.setdiff1d(np.arange(len(chunks)), picked)
                for c in rng.choice(others, size=p - take, replace=False):
                    parts.append(_class_chunks(rng, self.class_indices[c], m)[0])
            batches.append(np.concatenate(parts))
        return batches


def _class_chunks(rng: np.random.Generator, indices: np.ndarray, m: int) -> list[np.ndarray]:
    """One class's samples, shuffled, as chunks of exactly m (see the module doc for the top-up rules)."""
    perm = rng.permutation(indices)
    if len(perm) < m:
        return [np.resize(perm, m)]  # repeats the shuffled samples cyclically: counts differ by at most one
    short = len(perm) % m
    if short:
        # Fill the last chunk with samples not already in it: drawn from the full chunks before it.
        fill = rng.choice(perm[: len(perm) - short], size=m - short, replace=False)
        perm = np.concatenate([perm, fill])
    return list(perm.reshape(-1, m))
