"""The one pass over the query x gallery similarity matrix, in row blocks (never N x N in memory).

Samples are first reordered by class, so the rows of a block form a few class segments and a class's
positive columns are one contiguous slice. From each block the pass accumulates

* per-class histograms of positive and negative pair similarities (``torch.histc``'s bins, one ``bincount``
  per chunk of rows), and
* per-query Recall@k hits and AP@R from the block's top neighbours (rows are complete within a block), and
* (optional) per-sample histograms of each sample's positive and negative pair similarities in a few coarse
  cells, what the sample jackknife of ``opis_debiased`` reads (``tcdml.metrics.jackknife``).

A pass over a subset of rows gives a ``PassState`` (``tcdml.metrics.state``); states over disjoint rows merge,
which is how several processes or GPUs share the work (see ``tcdml.metrics.engine`` and
``tcdml.metrics.distributed``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import psutil
import torch

from tcdml.metrics.retrieval import retrieval_per_query, topk_by_similarity
from tcdml.metrics.state import PassState

#: torch.histc counts in float32: each call sees at most 2**24 values so every count stays exact.
_HISTC_MAX_VALUES = 1 << 24


@dataclass
class PreparedSet:
    """Queries and gallery, L2-normalised and reordered by class (ids ``0..C-1``), on the compute device."""

    queries: torch.Tensor
    gallery: torch.Tensor
    query_classes: np.ndarray
    gallery_classes: np.ndarray
    query_index: np.ndarray
    gallery_index: np.ndarray
    self_column: np.ndarray
    class_labels: np.ndarray
    class_sizes: np.ndarray
    all_pairs: bool
    num_samples: int
    #: ``negative_quantile_estimate``'s values, by quantile.
    pilot_quantiles: dict[float, float] = field(default_factory=dict, repr=False)

    @property
    def num_queries(self) -> int:
        """Nq, the query rows (all samples without a query / gallery split)."""
        return len(self.query_classes)

    @cached_property
    def num_relevant(self) -> np.ndarray:
        """(Nq,) R of each query: gallery members of its class other than itself."""
        per_class = np.bincount(self.gallery_classes, minlength=len(self.class_labels))
        return per_class[self.query_classes] - (self.self_column >= 0)

    @cached_property
    def positive_classes(self) -> np.ndarray:
        """Class ids with positive pairs (a query with another member of its class in the gallery)."""
        return np.unique(self.query_classes[self.num_relevant > 0])

    @cached_property
    def sample_classes(self) -> np.ndarray:
        """(num_samples,) the class id of every sample, -1 for one neither query nor gallery."""
        out = np.full(self.num_samples, -1)
        out[self.gallery_index] = self.gallery_classes
        out[self.query_index] = self.query_classes
        return out

    @cached_property
    def sample_slots(self) -> np.ndarray:
        """The sample index of each row of the per-sample histograms: the query rows, then (with a
        query/gallery split) the gallery columns; a sample both query and gallery has two."""
        if self.all_pairs:
            return self.query_index
        return np.concatenate([self.query_index, self.gallery_index])

    @cached_property
    def slot_totals(self) -> tuple[np.ndarray, np.ndarray]:
        """Per row of the per-sample histograms (``sample_slots``): its sample's positive and negative pairs
        at that end (a query row: the gallery members of its class other than itself, and the others)."""
        num_classes = len(self.class_labels)
        in_gallery = np.bincount(self.gallery_classes, minlength=num_classes)
        positives = [self.num_relevant]
        negatives = [len(self.gallery_classes) - in_gallery[self.query_classes]]
        if not self.all_pairs:
            in_queries = np.bincount(self.query_classes, minlength=num_classes)
            is_query = np.zeros(self.num_samples, dtype=bool)
            is_query[self.query_index] = True
            positives.append(in_queries[self.gallery_classes] - is_query[self.gallery_index])
            negatives.append(self.num_queries - in_queries[self.gallery_classes])
        return np.concatenate(positives).astype(np.float64), np.concatenate(negatives).astype(np.float64)

    def negative_quantile_estimate(self, q: float, rows: int = 256) -> float:
        """The ``q`` quantile of the negative similarities of ``rows`` query rows drawn with a fixed seed
        (a pilot, before the pass: the same on every process); -1 without negatives there."""
        if q not in self.pilot_quantiles:
            drawn = np.sort(np.random.default_rng(0).permutation(self.num_queries)[:rows])
            sim = (self.queries[torch.as_tensor(drawn, device=self.queries.device)] @ self.gallery.T).cpu()
            negative = self.query_classes[drawn][:, None] != self.gallery_classes[None, :]
            values = sim.double().numpy()[negative]
            self.pilot_quantiles[q] = float(np.quantile(values, q)) if len(values) else -1.0
        return self.pilot_quantiles[q]

    @cached_property
    def num_negative_pairs(self) -> int:
        """(query, gallery) pairs of different classes: ``sum_c q_c (G - g_c)``."""
        num_classes = len(self.class_labels)
        queries = np.bincount(self.query_classes, minlength=num_classes)
        gallery = np.bincount(self.gallery_classes, minlength=num_classes)
        return int(queries @ (len(self.gallery_classes) - gallery))

    def neighbours_needed(self, ks: tuple[int, ...], rows: slice = slice(None)) -> int:
        """How many neighbours ``rows`` need: the largest k of Recall@k, or the largest R (MAP@R)."""
        return max(max(ks), int(self.num_relevant[rows].max(initial=0)))

    def gallery_segment(self, class_id: int) -> slice:
        """The gallery columns of one class (contiguous after the reordering)."""
        start = np.searchsorted(self.gallery_classes, class_id, side="left")
        stop = np.searchsorted(self.gallery_classes, class_id, side="right")
        return slice(int(start), int(stop))


def prepare(
    embeddings: torch.Tensor,
    labels: np.ndarray,
    is_query: np.ndarray,
    is_gallery: np.ndarray,
    device: torch.device,
) -> PreparedSet:
    """Normalise, map labels to class ids, and sort queries and gallery by (class, sample index)."""
    class_labels, classes, class_sizes = np.unique(labels, return_inverse=True, return_counts=True)
    # Detached: the metrics are counts, not differentiable, and the pass reads blocks through numpy.
    normalised = torch.nn.functional.normalize(
        embeddings.detach().to(device=device, dtype=torch.float32), dim=1
    )
    query_index = np.nonzero(is_query)[0]
    gallery_index = np.nonzero(is_gallery)[0]
    query_index = query_index[np.argsort(classes[query_index], kind="stable")]
    gallery_index = gallery_index[np.argsort(classes[gallery_index], kind="stable")]
    column_of_sample = np.full(len(labels), -1)
    column_of_sample[gallery_index] = np.arange(len(gallery_index))
    all_pairs = bool(is_query.all() and is_gallery.all())
    gallery = normalised[torch.as_tensor(gallery_index, device=device)]
    queries = gallery if all_pairs else normalised[torch.as_tensor(query_index, device=device)]
    return PreparedSet(
        queries=queries,
        gallery=gallery,
        query_classes=classes[query_index],
        gallery_classes=classes[gallery_index],
        query_index=query_index,
        gallery_index=gallery_index,
        self_column=column_of_sample[query_index],
        class_labels=class_labels,
        class_sizes=class_sizes,
        all_pairs=all_pairs,
        num_samples=len(labels),
    )


def block_rows(
    num_columns: int, device: torch.device, max_block_bytes: int | None = None, k_max: int = 0
) -> int:
    """Rows per block so a block, its top-k lists and their temporaries fit the memory budget.

    Budget: ``max_block_bytes`` if given, else a quarter of the free memory of the device, at most 1 GiB.
    """
    if max_block_bytes is None:
        if device.type == "cuda":
            free = torch.cuda.mem_get_info(device)[0]
        else:
            free = psutil.virtual_memory().available
        max_block_bytes = min(free // 4, 1 << 30)
    # Per row: the float32 block and histc temporaries (~12 B per column), and the top-k values, indices
    # and float64 relevance / precision arrays (~48 B per neighbour).
    return int(max(1, max_block_bytes // (12 * num_columns + 48 * k_max)))


def run_pass(
    prepared: PreparedSet,
    rows: range,
    *,
    ks: tuple[int, ...] | None,
    num_bins: int | None,
    neighbours: torch.Tensor | None = None,
    max_block_bytes: int | None = None,
    progress: bool = False,
    sample_cells: tuple[float, int] | None = None,
) -> PassState:
    """Process query rows ``rows`` (positions in the class-sorted order) against the whole gallery.

    ``num_bins=None`` skips the histograms; ``ks=None`` skips the neighbour search (Recall@k at ``ks`` and
    MAP@R otherwise); ``neighbours`` (Nq x k) supplies precomputed neighbour columns (e.g. from faiss) instead
    of the block's top-k. ``sample_cells``: ``(low, count)``, the per-sample histograms' cells on [low, 1]
    (None: none kept). With no histogram and no neighbours, no block is computed.
    """
    from tqdm.auto import tqdm

    device = prepared.queries.device
    num_queries, num_classes = prepared.num_queries, len(prepared.class_labels)
    processed = np.zeros(num_queries, dtype=bool)
    processed[rows.start : rows.stop] = True
    if num_bins is None and ks is None:
        return PassState(None, None, None, None, processed, None, None)
    cells = sample_cells if num_bins is not None else None
    sample_shape = (len(prepared.sample_slots), cells[1] if cells else 1)
    sample_pos = torch.zeros(sample_shape, dtype=torch.float64, device=device)
    sample_neg = torch.zeros_like(sample_pos)
    pos = torch.zeros((num_classes, num_bins or 1), dtype=torch.float64, device=device)
    neg = torch.zeros_like(pos)
    hits = torch.zeros((num_queries, len(ks or ())), dtype=torch.float64, device=device)
    ap = torch.zeros(num_queries, dtype=torch.float64, device=device)
    query_classes = torch.as_tensor(prepared.query_classes, device=device)
    gallery_classes = torch.as_tensor(prepared.gallery_classes, device=device)
    gallery_index = torch.as_tensor(prepared.gallery_index, device=device)
    num_relevant = torch.as_tensor(prepared.num_relevant, device=device, dtype=torch.float64)
    k_max = prepared.neighbours_needed(ks) if ks is not None else 0
    step = block_rows(len(prepared.gallery_classes), device, max_block_bytes, k_max)
    bar = tqdm(total=len(rows), unit="query", desc="tcdml pass", disable=not progress, file=sys.stderr)
    for start in range(rows.start, rows.stop, step):
        stop = min(start + step, rows.stop)
        sim = prepared.queries[start:stop] @ prepared.gallery.T
        sim.clamp_(-1.0, 1.0)
        own = prepared.self_column[start:stop]
        has_own = np.nonzero(own >= 0)[0]
        sim[
            torch.as_tensor(has_own, device=device), torch.as_tensor(own[has_own], device=device)
        ] = -torch.inf
        if num_bins is not None:
            samples = (cells, sample_pos, sample_neg) if cells is not None else None
            _accumulate_histograms(sim, prepared, start, stop, num_bins, pos, neg, samples)
        if ks is not None:
            if neighbours is None:
                # Rows are class-sorted, so a block needs only its own classes' largest R.
                k_block = prepared.neighbours_needed(ks, slice(start, stop))
                columns = topk_by_similarity(sim, k_block, gallery_index)
            else:
                columns = neighbours[start:stop].to(device)
            relevant = gallery_classes[columns] == query_classes[start:stop, None]
            hits[start:stop], ap[start:stop] = retrieval_per_query(relevant, ks, num_relevant[start:stop])
        bar.update(stop - start)
    bar.close()
    histograms = (pos.cpu().numpy(), neg.cpu().numpy()) if num_bins is not None else (None, None)
    found = (hits.cpu().numpy(), ap.cpu().numpy()) if ks is not None else (None, None)
    samples = (sample_pos.cpu().numpy(), sample_neg.cpu().numpy()) if cells is not None else (None, None)
    return PassState(*histograms, *found, processed, *samples)


def _histc(values: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Histogram over [-1, 1] in exact float64 counts; -inf (excluded pairs) falls outside and is ignored."""
    if values.numel() == 0:
        return torch.zeros(num_bins, dtype=torch.float64, device=values.device)
    rows_per_call = max(1, _HISTC_MAX_VALUES // max(values.shape[1], 1))
    total = torch.zeros(num_bins, dtype=torch.float64, device=values.device)
    for start in range(0, values.shape[0], rows_per_call):
        total += torch.histc(values[start : start + rows_per_call], bins=num_bins, min=-1.0, max=1.0).double()
    return total


def _accumulate_histograms(
    sim: torch.Tensor,
    prepared: PreparedSet,
    start: int,
    stop: int,
    num_bins: int,
    pos: torch.Tensor,
    neg: torch.Tensor,
    samples: tuple[tuple[float, int], torch.Tensor, torch.Tensor] | None = None,
) -> None:
    """Add one block's pairs to the per-class histograms ``pos`` and ``neg`` (in place) and, with
    ``samples = ((low, count), sample_pos, sample_neg)``, to the per-sample histograms: each query row's
    pairs at or above ``low`` in ``count`` equal cells of [low, 1] (its row ``sample_slots``).

    Row ends: for a query of class c, its whole row counts for c; the part in c's gallery slice is positive,
    the rest negative. All-pairs mode stops there (the column end of a pair is another row's row end).
    With a query/gallery split, the column end counts too: a negative pair also belongs to the gallery
    sample's class (and to the gallery sample's per-sample row, ``_add_gallery_cells``).

    The row ends are counted in chunks of ``_CHUNK_VALUES`` similarities (``_bin_counts``): each value's
    histogram bin ``floor((s + 1) B / 2)`` (``torch.histc``'s, in the same float32 arithmetic: the same
    counts) and per-sample cell ``floor((s - low) count / (1 - low))``, each counted by one ``bincount``
    per chunk. On the CPU the chunks go through numpy, one thread each: torch's per-operation thread
    hand-off, paid ~14 times a chunk, cost more than the arithmetic on a busy machine.
    """
    on_cpu = sim.device.type == "cpu"
    xp: Any = np if on_cpu else torch
    block = sim.numpy() if on_cpu else sim
    block_classes = prepared.query_classes[start:stop]
    chunk = max(1, _CHUNK_VALUES // max(sim.shape[1], 1))
    buffers = (xp.empty_like(block[:chunk]), xp.empty_like(block[:chunk], dtype=xp.int64))

    def array(values: np.ndarray) -> Any:
        return values if on_cpu else torch.as_tensor(values, device=sim.device)

    for first in range(0, stop - start, chunk):
        last = min(first + chunk, stop - start)
        rows, classes = block[first:last], block_classes[first:last]
        class_ids, row_group = np.unique(classes, return_inverse=True)
        segments = [(int(i), int(j), prepared.gallery_segment(int(classes[i]))) for i, j in _runs(classes)]
        grid = (-1.0, num_bins / 2.0, num_bins)
        groups = (array(row_group.reshape(-1)), len(class_ids))
        every, positive = _bin_counts(xp, rows, grid, groups, segments, buffers)
        for group, class_id in enumerate(class_ids):  # a few classes a chunk: small in-place adds
            pos[class_id] += torch.as_tensor(positive[group], device=sim.device)
            neg[class_id] += torch.as_tensor(every[group] - positive[group], device=sim.device)
        if samples is not None:
            (low, count), sample_pos, sample_neg = samples
            cells = (low, count / (1.0 - low), count)
            groups = (array(np.arange(last - first)), last - first)
            every, positive = _bin_counts(xp, rows, cells, groups, segments, buffers)
            sample_pos[start + first : start + last] += torch.as_tensor(positive, device=sim.device)
            sample_neg[start + first : start + last] += torch.as_tensor(every - positive, device=sim.device)
    if prepared.all_pairs:
        return
    for class_id in np.unique(prepared.gallery_classes):
        columns = sim[:, prepared.gallery_segment(int(class_id))]
        other_rows = torch.as_tensor(block_classes != class_id, device=sim.device)
        neg[class_id] += _histc(columns[other_rows], num_bins)
    if samples is not None:
        _add_gallery_cells(sim, prepared, start, stop, *samples)


#: Similarities binned at once by ``_accumulate_histograms`` (bounds its float32 and int64 temporaries).
_CHUNK_VALUES = 1 << 20


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """``(first, stop)`` of each run of equal values in ``values``."""
    starts = np.flatnonzero(np.diff(values)) + 1
    return list(zip(np.r_[0, starts], np.r_[starts, len(values)], strict=True))


def _bin_counts(
    xp: Any,
    rows: Any,
    grid: tuple[float, float, int],
    groups: tuple[Any, int],
    segments: list[tuple[int, int, slice]],
    buffers: tuple[Any, Any],
) -> tuple[Any, Any]:
    """(G, bins) counts of the values of ``rows`` by group of rows and by bin ``floor((s - low) * scale)``
    of ``grid = (low, scale, bins)`` (below 0 or -inf: dropped; ``bins`` or more: the last bin); and the
    same counts of the positive values, ``rows[first:stop, columns]`` of each of ``segments``.

    ``xp``: numpy or torch, the namespace of ``rows`` (float32) and of ``groups = (group, G)``, the group of
    each row; ``buffers``: float32 and int64 scratch of at least ``rows``' shape."""
    low, scale, bins = grid
    group, num_groups = groups
    values, index = buffers[0][: len(rows)], buffers[1][: len(rows)]
    xp.subtract(rows, low, out=values)
    xp.multiply(values, scale, out=values)
    xp.floor(values, out=values)
    xp.clip(values, -1.0, bins - 1, out=values)
    index[...] = values  # exact integers: the bin, or -1 for a value dropped
    # Group g's bin b is counted at g (bins + 1) + 1 + b, its dropped values at g (bins + 1).
    index += (group * (bins + 1) + 1)[:, None]
    size = num_groups * (bins + 1)
    every = xp.bincount(index.reshape(-1), minlength=size).reshape(num_groups, bins + 1)[:, 1:]
    parts = xp.concatenate([index[first:stop, columns].reshape(-1) for first, stop, columns in segments])
    positive = xp.bincount(parts, minlength=size).reshape(num_groups, bins + 1)[:, 1:]
    return every, positive


def _add_gallery_cells(
    sim: torch.Tensor,
    prepared: PreparedSet,
    start: int,
    stop: int,
    cells: tuple[float, int],
    sample_pos: torch.Tensor,
    sample_neg: torch.Tensor,
) -> None:
    """With a query/gallery split: add each gallery column's pairs in the block at or above ``low`` to its
    per-sample histogram row ``Nq + column`` (in place), on ``cells = (low, count)`` equal cells of [low, 1]
    (the row ends are counted by ``_accumulate_histograms``)."""
    low, count = cells
    device = sim.device
    rows, columns = (sim >= low).nonzero(as_tuple=True)  # -inf (excluded pairs) falls below
    cell = ((sim[rows, columns] - low) * (count / (1.0 - low))).long().clamp_(0, count - 1)
    query_classes = torch.as_tensor(prepared.query_classes[start:stop], device=device)
    gallery_classes = torch.as_tensor(prepared.gallery_classes, device=device)
    positive = query_classes[rows] == gallery_classes[columns]
    size, first = len(prepared.gallery_classes), prepared.num_queries
    index = columns * count + cell
    every = torch.bincount(index, minlength=size * count).reshape(size, count).double()
    pos = torch.bincount(index[positive], minlength=size * count).reshape(size, count).double()
    sample_pos[first : first + size] += pos
    sample_neg[first : first + size] += every - pos
