"""Optional faiss backend for the neighbour search (``pip install tcdml[faiss]``)."""

from __future__ import annotations

import numpy as np
import torch

from tcdml.errors import TcdmlInputError
from tcdml.metrics.retrieval import topk_by_similarity


def faiss_neighbours(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    k: int,
    self_column: np.ndarray,
    gallery_index: np.ndarray,
) -> torch.Tensor:
    """(Nq, k) gallery columns of each query's k nearest neighbours by inner product, found with faiss.

    The query's own column (``self_column``, -1 if none) is skipped. Ties are broken by ``gallery_index``
    like the torch path: rows whose list is cut inside a tie are recomputed exactly with torch.
    """
    try:
        import faiss
    except ImportError:
        raise TcdmlInputError("knn_backend='faiss' needs faiss: pip install 'tcdml[faiss]'") from None
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(np.ascontiguousarray(gallery.detach().cpu().numpy(), dtype=np.float32))
    fetch = min(k + 2, gallery.shape[0])
    values, columns = index.search(
        np.ascontiguousarray(queries.detach().cpu().numpy(), dtype=np.float32), fetch
    )
    keep = columns != self_column[:, None]
    # Drop the query's own column; rows where it was not returned drop their last (extra) entry.
    keep[keep.sum(axis=1) > fetch - 1, -1] = False
    columns = columns[keep].reshape(len(columns), fetch - 1)
    values = values[keep].reshape(len(values), fetch - 1)
    result = torch.as_tensor(columns[:, :k].astype(np.int64))
    order_index = torch.as_tensor(gallery_index)
    ties = values[:, k - 1] == values[:, k] if fetch - 1 > k else np.zeros(len(values), dtype=bool)
    ties |= np.any(np.diff(values[:, :k], axis=1) == 0, axis=1)
    for row in np.nonzero(ties)[0]:
        sim = (queries[row : row + 1] @ gallery.T).cpu()
        if self_column[row] >= 0:
            sim[0, self_column[row]] = -torch.inf
        result[row] = topk_by_similarity(sim, k, order_index)[0]
    return result
