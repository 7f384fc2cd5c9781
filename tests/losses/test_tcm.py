"""TCM regulariser: hand-computed cases, PML agreement, reference sets, empty sets, gradcheck, autocast."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.losses import ThresholdConsistentMarginLoss
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from tcdml.losses import TCMLoss, tcm_loss_from_similarity
from tcdml.losses import similarity as similarity_module
from tests.losses.brute_losses import tcm as brute_tcm

# The case in PML's own TCM test (tests/losses/test_tcm_loss.py).
PML_EMB = [[0.00, 1.00], [0.43, 0.90], [1.00, 0.00], [0.50, 0.50]]
PML_LABELS = [0, 0, 1, 1]


def batch(n: int = 24, dim: int = 6, classes: int = 4, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=dtype), torch.randint(0, classes, (n,), generator=g)


def test_pml_hand_case() -> None:
    # positives: (0,1) s=0.9023 is not hard, (2,3) s=0.7071 -> 0.1929;
    # negatives: (0,3) s=0.7071 and (1,3) s=0.9429 -> (0.2071 + 0.4429) / 2 = 0.3250; total 0.5179
    emb = torch.tensor(PML_EMB, requires_grad=True)
    loss_fn = TCMLoss()
    loss = loss_fn(emb, torch.tensor(PML_LABELS))
    assert loss.item() == pytest.approx(0.1929 + 0.3250, abs=1e-4)
    assert (loss_fn.num_hard_pos.item(), loss_fn.num_hard_neg.item()) == (2, 4)  # ordered pairs
    loss.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0


def test_tiny_hand_case_with_lambdas() -> None:
    # 1-D-like vectors at known angles: s(a,b) = cos(angle difference)
    angles = torch.tensor([0.0, 0.6, 1.2])
    emb = torch.stack([angles.cos(), angles.sin()], 1)
    labels = torch.tensor([0, 0, 1])
    loss = TCMLoss(lambda_pos=2.0, lambda_neg=3.0, margin_pos=0.9, margin_neg=0.5)(emb, labels)
    s01, s12 = torch.cos(torch.tensor([0.6, 0.6]))
    # positive (0,1): s=0.825 <= 0.9 -> 0.075; negatives (0,2): 0.362 < 0.5 no, (1,2): 0.825 -> 0.325
    expected = 2.0 * (0.9 - s01) + 3.0 * (s12 - 0.5)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_matches_pml_without_reference(seed: int) -> None:
    emb, labels = batch(40, 5, 5, seed)
    for margins in ((0.9, 0.5), (0.3, 0.1), (0.0, -0.2)):
        ours = TCMLoss(margin_pos=margins[0], margin_neg=margins[1])(emb, labels)
        pml = ThresholdConsistentMarginLoss(margin_plus=margins[0], margin_minus=margins[1])(emb, labels)
        torch.testing.assert_close(ours, pml, rtol=1e-12, atol=1e-12)


def test_matches_pml_and_brute_gradients() -> None:
    emb, labels = batch(20, 4, 3, seed=7)
    x1, x2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    TCMLoss(margin_pos=0.4, margin_neg=0.0)(x1, labels).backward()
    brute_tcm(x2, labels, x2, labels, list(range(20)), mp=0.4, mn=0.0).backward()
    torch.testing.assert_close(x1.grad, x2.grad)


def test_indices_tuple_pairs_match_pml() -> None:
    emb, labels = batch(30, 5, 4, seed=3)
    a1, p, a2, n = lmu.get_all_pairs_indices(labels)
    g = torch.Generator().manual_seed(0)
    keep_p = torch.rand(len(a1), generator=g) < 0.5
    keep_n = torch.rand(len(a2), generator=g) < 0.3
    pairs = (a1[keep_p], p[keep_p], a2[keep_n], n[keep_n])
    ours = TCMLoss(margin_pos=0.5, margin_neg=0.0)(emb, labels, pairs)
    pml = ThresholdConsistentMarginLoss(margin_plus=0.5, margin_minus=0.0)(emb, labels, pairs)
    torch.testing.assert_close(ours, pml)


def test_indices_tuple_triplets_become_pairs() -> None:
    emb, labels = batch(12, 3, 3, seed=1)
    anchors, positives, negatives = lmu.get_all_triplets_indices(labels)
    loss = TCMLoss(margin_pos=0.5, margin_neg=0.0)
    unique_pos = torch.unique(torch.stack([anchors, positives]), dim=1)
    unique_neg = torch.unique(torch.stack([anchors, negatives]), dim=1)
    expected = loss(emb, labels, (unique_pos[0], unique_pos[1], unique_neg[0], unique_neg[1]))
    torch.testing.assert_close(loss(emb, labels, (anchors, positives, negatives)), expected)


@pytest.mark.parametrize("self_index", [None, 5, "tensor"])
def test_reference_set_against_brute_force(self_index) -> None:
    emb, labels = batch(8, 4, 3, seed=11)
    ref, ref_labels = batch(20, 4, 3, seed=12)
    self_cols = [-1] * 8
    if self_index == 5:  # the batch sits at rows 5..12 of the references (a gathered set)
        ref[5:13], ref_labels[5:13] = emb, labels
        self_cols = list(range(5, 13))
    elif self_index == "tensor":  # scattered slots (a memory bank after enqueue)
        slots = torch.tensor([19, 0, 3, 7, 8, 2, 15, 11])
        ref[slots], ref_labels[slots] = emb, labels
        self_index, self_cols = slots, slots.tolist()
    x = emb.clone().requires_grad_()
    ours = TCMLoss(margin_pos=0.6, margin_neg=0.1)(
        x, labels, ref_emb=ref, ref_labels=ref_labels, self_index=self_index
    )
    expected = brute_tcm(emb, labels, ref, ref_labels, self_cols, mp=0.6, mn=0.1)
    torch.testing.assert_close(ours, expected)
    ours.backward()
    assert torch.isfinite(x.grad).all()


def test_self_pairs_excluded_when_reference_is_the_batch() -> None:
    emb, labels = batch(16, 4, 4, seed=2)
    loss = TCMLoss(margin_pos=1.0, margin_neg=0.0)  # m+ = 1: a self pair (s = 1) would count as hard
    plain = loss(emb, labels)
    same_object = loss(emb, labels, ref_emb=emb, ref_labels=labels)
    offset = loss(emb, labels, ref_emb=emb.clone(), ref_labels=labels.clone(), self_index=0)
    with_self = loss(emb, labels, ref_emb=emb.clone(), ref_labels=labels.clone())
    torch.testing.assert_close(plain, same_object)
    torch.testing.assert_close(plain, offset)
    assert not torch.allclose(plain, with_self)  # a copy without self_index is a different reference set


def test_empty_hard_sets_give_zero_on_graph() -> None:
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    loss_fn = TCMLoss(margin_pos=0.5, margin_neg=0.4)
    with pytest.warns(UserWarning, match="no similarity gap"):
        TCMLoss(margin_pos=0.5, margin_neg=0.5)
    loss = loss_fn(emb, labels)
    assert loss.item() == 0.0 and loss.requires_grad and loss.ndim == 0
    assert loss_fn.num_hard_pos.item() == 0 and loss_fn.num_hard_neg.item() == 0
    loss.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))
    single_class = TCMLoss()(emb, torch.zeros(4, dtype=torch.long))  # no negatives at all
    assert single_class.requires_grad


def test_pure_function_parts_and_counts() -> None:
    sim = torch.tensor([[1.0, 0.8, 0.6], [0.8, 1.0, 0.2]], requires_grad=True)
    pos = torch.tensor([[False, True, False], [True, False, False]])
    neg = torch.tensor([[False, False, True], [False, False, True]])
    result = tcm_loss_from_similarity(sim, pos, neg, lambda_pos=2.0, margin_pos=0.9, margin_neg=0.5)
    assert result.loss_pos.item() == pytest.approx(0.1)
    assert result.loss_neg.item() == pytest.approx(0.1)
    assert result.loss.item() == pytest.approx(2 * 0.1 + 0.1)
    assert (result.num_hard_pos.item(), result.num_hard_neg.item()) == (2, 1)
    result.loss.backward()
    expected = torch.tensor([[0.0, -1.0, 1.0], [-1.0, 0.0, 0.0]])
    torch.testing.assert_close(sim.grad, expected)
    with pytest.raises(ValueError, match="overlap"):
        tcm_loss_from_similarity(sim, pos, pos)


def test_gradcheck_float64() -> None:
    emb, labels = batch(10, 3, 3, seed=5)
    ref, ref_labels = batch(7, 3, 3, seed=6)
    loss = TCMLoss(margin_pos=0.5, margin_neg=0.0)
    emb.requires_grad_()
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (emb,))
    assert torch.autograd.gradcheck(lambda e: loss(e, labels, ref_emb=ref, ref_labels=ref_labels), (emb,))


def test_row_blocks_give_the_same_result(monkeypatch) -> None:
    emb, labels = batch(50, 5, 6, seed=9)
    x1, x2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    whole = TCMLoss(margin_pos=0.4, margin_neg=0.0)(x1, labels)
    whole.backward()
    monkeypatch.setattr(similarity_module, "BLOCK_ELEMENTS", 120)  # 2 rows per block, a ragged last one
    blocked = TCMLoss(margin_pos=0.4, margin_neg=0.0)(x2, labels)
    blocked.backward()
    torch.testing.assert_close(whole, blocked)
    torch.testing.assert_close(x1.grad, x2.grad)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast(dtype) -> None:
    emb, labels = batch(64, 16, 8, seed=4, dtype=torch.float32)
    reference = TCMLoss(margin_pos=0.3, margin_neg=0.0)(emb, labels)
    x = emb.clone().requires_grad_()
    with torch.autocast("cpu", dtype=dtype):
        loss = TCMLoss(margin_pos=0.3, margin_neg=0.0)(x, labels)
    assert loss.dtype == torch.float32 and loss.ndim == 0
    torch.testing.assert_close(loss, reference, rtol=0.03, atol=0.03)
    loss.backward()
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_half_embeddings_without_autocast() -> None:
    emb, labels = batch(32, 8, 4, seed=8, dtype=torch.float32)
    x = emb.to(torch.bfloat16).requires_grad_()
    loss = TCMLoss(margin_pos=0.3, margin_neg=0.0)(x, labels)
    loss.backward()
    assert torch.isfinite(x.grad.float()).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f, e, y: f(e, y[:-1]), "one label per embedding"),
        (lambda f, e, y: f(e[0], y), "2-D"),
        (lambda f, e, y: f(e, None), "labels are required"),
        (lambda f, e, y: f(e, y.float()), "integers"),
        (lambda f, e, y: f(e, y, ref_emb=e[:3]), "without ref_labels"),
        (lambda f, e, y: f(e, y, ref_labels=y), "without ref_emb"),
        (lambda f, e, y: f(e, y, ref_emb=e[:, :2], ref_labels=y), "dim"),
        (lambda f, e, y: f(e.clone().fill_(float("nan")), y), "NaN"),
        (lambda f, e, y: f(e, y, ref_emb=e[:3].clone(), ref_labels=y[:3], self_index=2), "outside"),
        (
            lambda f, e, y: f(e, y, ref_emb=e[:3].clone(), ref_labels=y[:3], self_index=torch.zeros(2)),
            "shape",
        ),
    ],
)
def test_bad_input_errors(call, message) -> None:
    emb, labels = batch(6, 3, 2, seed=0)
    with pytest.raises(ValueError, match=message):
        call(TCMLoss(), emb, labels)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="margin_pos"):
        TCMLoss(margin_pos=1.5)
    with pytest.raises(ValueError, match="lambda_neg"):
        TCMLoss(lambda_neg=-1.0)
