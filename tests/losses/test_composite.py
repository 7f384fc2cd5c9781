"""with_tcm: base loss + TCM on one similarity matrix."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.losses import (
    ArcFaceLoss,
    ContrastiveLoss,
    MultiSimilarityLoss,
    TripletMarginLoss,
)
from pytorch_metric_learning.miners import MultiSimilarityMiner

from tcdml.losses import SmoothAPLoss, TCMLoss, with_tcm
from tcdml.losses.pml import SharedCosineSimilarity


def batch(n: int = 24, dim: int = 8, classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)


def test_pml_hand_case_contrastive_plus_tcm() -> None:
    # PML's TCM test: ContrastiveLoss(cosine, pos_margin=0.9, neg_margin=0.4) = 0.4866, TCM = 0.5179
    emb = torch.tensor([[0.00, 1.00], [0.43, 0.90], [1.00, 0.00], [0.50, 0.50]], requires_grad=True)
    loss_fn = with_tcm(ContrastiveLoss(distance=CosineSimilarity(), pos_margin=0.9, neg_margin=0.4))
    loss = loss_fn(emb, torch.tensor([0, 0, 1, 1]))
    assert loss.item() == pytest.approx(1.0045, abs=1e-4)
    assert loss_fn.shares_similarity
    loss.backward()
    assert torch.isfinite(emb.grad).all()


@pytest.mark.parametrize(
    "make_base",
    [
        lambda: MultiSimilarityLoss(),
        lambda: ContrastiveLoss(distance=CosineSimilarity()),
        lambda: TripletMarginLoss(),  # L2 distance: not shared, still correct
        lambda: SmoothAPLoss(),
    ],
)
def test_equals_base_plus_tcm_in_value_and_gradient(make_base) -> None:
    emb, labels = batch(seed=1)
    x1, x2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    composite = with_tcm(make_base(), margin_pos=0.5, margin_neg=0.1)
    total = composite(x1, labels)
    total.backward()
    separate = make_base()(x2, labels) + TCMLoss(margin_pos=0.5, margin_neg=0.1)(x2, labels)
    separate.backward()
    torch.testing.assert_close(total, separate)
    torch.testing.assert_close(x1.grad, x2.grad)


def test_cosine_base_reuses_the_similarity_matrix(monkeypatch) -> None:
    calls = []
    original = CosineSimilarity.compute_mat
    monkeypatch.setattr(
        CosineSimilarity, "compute_mat", lambda self, q, r: calls.append(1) or original(self, q, r)
    )
    emb, labels = batch(seed=2)
    composite = with_tcm(MultiSimilarityLoss())
    assert composite.shares_similarity
    composite(emb, labels)
    assert calls == []  # PML computed no similarity matrix of its own
    ref, ref_labels = batch(10, seed=3)
    composite(emb, labels, ref_emb=ref, ref_labels=ref_labels)
    assert calls == []


def test_reference_set_goes_to_both_and_self_pairs_are_excluded() -> None:
    emb, labels = batch(8, seed=4)
    ref, ref_labels = batch(20, seed=5)
    ref[4:12], ref_labels[4:12] = emb, labels
    composite = with_tcm(MultiSimilarityLoss(), margin_pos=0.5, margin_neg=0.1)
    got = composite(emb, labels, ref_emb=ref, ref_labels=ref_labels, self_index=4)
    # expected: PML with the self pairs removed by hand, plus TCM with the same self index
    from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

    a1, p, a2, n = lmu.get_all_pairs_indices(labels, ref_labels)
    keep = p != a1 + 4
    pairs = (a1[keep], p[keep], a2, n)
    expected = MultiSimilarityLoss()(emb, labels, pairs, ref, ref_labels) + TCMLoss(
        margin_pos=0.5, margin_neg=0.1
    )(emb, labels, ref_emb=ref, ref_labels=ref_labels, self_index=4)
    torch.testing.assert_close(got, expected)


def test_indices_tuple_goes_to_the_base_only() -> None:
    emb, labels = batch(seed=6)
    pairs = MultiSimilarityMiner(epsilon=0.1)(emb, labels)
    got = with_tcm(MultiSimilarityLoss())(emb, labels, pairs)
    expected = MultiSimilarityLoss()(emb, labels, pairs) + TCMLoss()(emb, labels)
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="indices_tuple"):
        with_tcm(SmoothAPLoss())(emb, labels, pairs)


def test_loss_with_parameters_is_trained_through_the_composite() -> None:
    emb, labels = batch(32, 8, 5, seed=7)
    emb = emb.float()
    composite = with_tcm(ArcFaceLoss(num_classes=5, embedding_size=8))
    params = list(composite.parameters())
    assert len(params) == 1 and params[0] is composite.base.W
    before = params[0].detach().clone()
    optimiser = torch.optim.SGD(composite.parameters(), lr=0.1)
    composite(emb, labels).backward()
    optimiser.step()
    assert not torch.equal(before, params[0])
    assert not composite.shares_similarity  # ArcFace compares embeddings with class weights


def test_proxy_base_ignores_the_reference_set() -> None:
    emb, labels = batch(16, 8, 4, seed=8)
    emb = emb.float()
    ref, ref_labels = batch(12, 8, 4, seed=9)
    ref = ref.float()
    arcface = ArcFaceLoss(num_classes=4, embedding_size=8)
    composite = with_tcm(arcface)
    got = composite(emb, labels, ref_emb=ref, ref_labels=ref_labels)
    expected = arcface(emb, labels) + TCMLoss()(emb, labels, ref_emb=ref, ref_labels=ref_labels)
    torch.testing.assert_close(got, expected)


def test_tcm_counts_are_exposed_and_bad_base_rejected() -> None:
    emb, labels = batch(seed=10)
    composite = with_tcm(SmoothAPLoss(), margin_pos=0.5, margin_neg=0.0)
    composite(emb, labels)
    assert composite.tcm.num_hard_pos.item() > 0 and composite.tcm.num_hard_neg.item() > 0
    with pytest.raises(ValueError, match=r"torch\.nn\.Module"):
        with_tcm(lambda e, y: e.sum())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_with_shared_pml_base(dtype) -> None:
    emb, labels = batch(32, 16, 4, seed=11)
    x = emb.float().requires_grad_()
    with torch.autocast("cpu", dtype=dtype):
        loss = with_tcm(MultiSimilarityLoss())(x, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


def test_with_tcm_leaves_the_callers_distance_alone(monkeypatch) -> None:
    """The caller's loss keeps its own distance object, before, between and after calls (also failed ones)."""
    base = MultiSimilarityLoss()
    distance = base.distance
    composite = with_tcm(base)
    assert composite.base is base and base.distance is distance and composite.shares_similarity
    seen = []
    original = MultiSimilarityLoss.compute_loss
    monkeypatch.setattr(
        MultiSimilarityLoss, "compute_loss", lambda self, *a: seen.append(self.distance) or original(self, *a)
    )
    emb, labels = batch(seed=6)
    composite(emb, labels)
    assert isinstance(seen[0], SharedCosineSimilarity) and base.distance is distance
    monkeypatch.setattr(MultiSimilarityLoss, "compute_loss", lambda self, *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        composite(emb, labels)
    assert base.distance is distance and type(base.distance) is CosineSimilarity
