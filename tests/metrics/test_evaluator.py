"""evaluate() against the brute-force reference of docs/spec.md, on varied sets; invariances; bounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tcdml.metrics import evaluate
from tests.helpers import clustered_embeddings
from tests.metrics.reference import reference_metrics

KEYS = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r")

SETS = {
    "balanced": ([30] * 8, 0.6),
    "unbalanced": ([2, 3, 5, 40, 60, 7, 25, 4], [0.3, 0.9, 0.5, 0.8, 0.4, 1.2, 0.6, 0.7]),
    "with_singletons": ([1, 1, 1, 20, 25, 30, 2, 15], 0.7),
    "many_classes": ([3] * 60 + [5] * 20, 0.8),
}


@pytest.mark.parametrize("name", sorted(SETS))
@pytest.mark.parametrize("mode", ["histogram", "exact"])
def test_agrees_with_brute_force(name: str, mode: str) -> None:
    sizes, spread = SETS[name]
    x, y = clustered_embeddings(sizes, spread=spread, seed=len(sizes))
    got = evaluate(x, y, mode=mode).to_dict()
    want = reference_metrics(x, y)
    rtol = 1e-2 if mode == "histogram" else 1e-6
    for key in ("opis", "eps_opis"):
        assert got[key] == pytest.approx(want[key], rel=rtol), key
    for key in KEYS:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert got["num_opis_classes"] == want["num_opis_classes"]
    if mode == "histogram":  # true pair counts, as in exact mode
        exact = evaluate(x, y, mode="exact").per_class
        binned = evaluate(x, y).per_class
        np.testing.assert_array_equal(binned.num_positive_pairs, exact.num_positive_pairs)
        np.testing.assert_array_equal(binned.num_negative_pairs, exact.num_negative_pairs)
    assert got["num_left_out_classes"] == len(sizes) - want["num_opis_classes"]
    tol = 2.0 / 16384 if mode == "histogram" else 1e-6
    assert got["t_lo"] == pytest.approx(want["t_lo"], abs=tol)
    assert got["t_hi"] == pytest.approx(want["t_hi"], abs=tol)


def test_histogram_within_one_percent_on_a_large_real_set(digits) -> None:
    """docs/spec.md accuracy: binned OPIS within 1 % of brute force on 1,797 real digits, beta, eps varied."""
    x, y = digits
    for beta, eps in ((1.0, 0.1), (2.0, 0.25), (0.5, 0.3)):
        got = evaluate(x, y, beta=beta, eps=eps)
        want = reference_metrics(x, y, beta=beta, eps=eps, retrieval=False)
        assert got.opis == pytest.approx(want["opis"], rel=1e-2)
        assert got.eps_opis == pytest.approx(want["eps_opis"], rel=1e-2)


def test_query_gallery_split_agrees_with_brute_force() -> None:
    x, y = clustered_embeddings([12, 18, 9, 25, 6], spread=0.7, seed=3)
    rng = np.random.default_rng(1)
    is_query = rng.random(len(y)) < 0.5
    is_gallery = ~is_query | (rng.random(len(y)) < 0.3)
    want = reference_metrics(x, y, is_query=is_query, is_gallery=is_gallery)
    for mode, rtol in (("exact", 1e-6), ("histogram", 1e-2)):
        got = evaluate(x, y, is_query=is_query, is_gallery=is_gallery, mode=mode).to_dict()
        assert got["opis"] == pytest.approx(want["opis"], rel=rtol)
        assert got["eps_opis"] == pytest.approx(want["eps_opis"], rel=rtol)
        for key in KEYS:
            assert got[key] == pytest.approx(want[key], abs=1e-12), key
    exact = evaluate(x, y, is_query=is_query, is_gallery=is_gallery, mode="exact").per_class
    binned = evaluate(x, y, is_query=is_query, is_gallery=is_gallery).per_class
    np.testing.assert_array_equal(binned.num_positive_pairs, exact.num_positive_pairs)
    np.testing.assert_array_equal(binned.num_negative_pairs, exact.num_negative_pairs)


def test_invariant_to_sample_order_and_label_renaming() -> None:
    x, y = clustered_embeddings([5, 9, 14, 3, 1, 20], spread=0.8, seed=7)
    base = evaluate(x, y).to_dict()
    perm = np.random.default_rng(0).permutation(len(y))
    renamed = np.array([1000, -5, 7, 42, 3, 99])[y]
    shuffled = evaluate(x[perm], renamed[perm]).to_dict()
    for key in ("opis", "eps_opis", "t_lo", "t_hi", "map@r", *KEYS):
        assert shuffled[key] == pytest.approx(base[key], rel=1e-9, abs=1e-12), key


def test_torch_input_and_scale_invariance() -> None:
    x, y = clustered_embeddings([10, 12, 8], seed=2)
    base = evaluate(x, y).to_dict()
    scaled = evaluate(torch.as_tensor(x) * 7.5, torch.as_tensor(y)).to_dict()
    assert scaled["opis"] == pytest.approx(base["opis"], rel=1e-5)
    assert scaled["recall@1"] == base["recall@1"]


@pytest.mark.parametrize("seed", range(5))
def test_opis_bounds(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = list(rng.integers(1, 30, size=int(rng.integers(3, 12))))
    sizes[0] = max(sizes[0], 2)
    x, y = clustered_embeddings(sizes, spread=list(rng.uniform(0.1, 2.0, len(sizes))), seed=seed)
    result = evaluate(x, y)
    assert 0.0 <= result.opis <= 1.0
    assert 0.0 <= result.eps_opis <= 1.0
    assert np.all((result.utilities >= 0) & (result.utilities <= 1))
    assert result.t_lo < result.t_hi


def test_hand_computed_retrieval() -> None:
    """Five points on a circle (degrees 0, 10, 30, 100, 105); R@1 = 2/5, R@2 = 3/5, MAP@R = 0.2 by hand."""
    angles = np.deg2rad([0.0, 10.0, 30.0, 100.0, 105.0])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    y = np.array([0, 0, 1, 1, 0])
    result = evaluate(x, y, ks=(1, 2), far_range=(0.2, 0.5), num_thresholds=5, eps=0.5)
    assert result.recall_at_k == pytest.approx({1: 0.4, 2: 0.6})
    assert result.map_at_r == pytest.approx(0.2)


def test_ties_broken_by_lower_index() -> None:
    """Duplicates tie exactly: the lower sample index ranks first, whatever the storage order."""
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.05]])
    y = np.array([0, 1, 2, 2, 0])
    # Sample 1 (class 1) has no other member: left out. Queries 2 and 3 (class 2) each tie at s = 1 between
    # sample 1 (class 1) and their class mate; the lower index (1) ranks first: a miss at k=1, a hit at k=2.
    result = evaluate(x, y, ks=(1, 2), far_range=(0.2, 0.5), num_thresholds=5, eps=0.5)
    order = np.array([3, 1, 4, 0, 2])
    reordered = evaluate(x[order], y[order], ks=(1, 2), far_range=(0.2, 0.5), num_thresholds=5, eps=0.5)
    assert result.recall_at_k[1] == pytest.approx(2 / 4)
    assert result.recall_at_k[2] == pytest.approx(1.0)
    assert result.map_at_r == pytest.approx((1 + 1 + 0.0 + 0.0) / 4)
    # Reordering changes sample indices, so the tie winner changes: compare with the reference instead.
    want = reference_metrics(x[order], y[order], ks=(1, 2), far_range=(0.2, 0.5), num_thresholds=5, eps=0.5)
    assert reordered.recall_at_k[1] == pytest.approx(want["recall@1"])


def test_per_class_table_and_counts(digits) -> None:
    x, y = digits
    result = evaluate(x, y, threshold=0.85)
    table = result.per_class
    assert table.threshold == 0.85
    assert list(table.labels) == list(range(10))
    assert table.sizes.sum() == len(y)
    # FAR and FRR read at 0.85 from the binned state match a direct count on the data.
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    c = 3
    in_c = y == c
    pos = sim[np.ix_(in_c, in_c)][np.triu_indices(in_c.sum(), 1)]
    neg = sim[np.ix_(in_c, ~in_c)].ravel()
    assert table.frr[c] == pytest.approx((pos < 0.85).mean(), abs=2e-3)
    assert table.far[c] == pytest.approx((neg >= 0.85).mean(), abs=2e-3)
    assert len(result.worst_classes(3)) == 3


def test_block_size_does_not_change_results() -> None:
    x, y = clustered_embeddings([15, 22, 9, 4], seed=5)
    one_block = evaluate(x, y).to_dict()
    tiny_blocks = evaluate(x, y, max_block_bytes=1).to_dict()
    for key in ("opis", "eps_opis", "t_lo", "t_hi", *KEYS):
        assert tiny_blocks[key] == pytest.approx(one_block[key], rel=1e-12, abs=1e-15), key


def test_faiss_backend_matches_torch(digits) -> None:
    pytest.importorskip("faiss")
    x, y = digits
    torch_result = evaluate(x, y).to_dict()
    faiss_result = evaluate(x, y, knn_backend="faiss").to_dict()
    for key in KEYS:
        assert faiss_result[key] == pytest.approx(torch_result[key], abs=1e-3), key
    assert faiss_result["opis"] == torch_result["opis"]
