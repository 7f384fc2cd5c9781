"""Registry: every listed base loss builds from config and trains with and without TCM."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from pytorch_metric_learning import losses as pml

from tcdml.errors import TcdmlInputError
from tcdml.losses import (
    RecallAtKSurrogateLoss,
    SmoothAPLoss,
    TCMComposite,
    TCMLoss,
    available_losses,
    build_loss,
    build_loss_from_config,
)

CLASSES, DIM = 6, 16
PROXY = {"num_classes": CLASSES, "embedding_size": DIM}
CONFIGS = {
    "smooth_ap": {},
    "recall_at_k": {"ks": [1, 2, 4]},
    "arcface": PROXY,
    "cosface": PROXY,
    "proxy_anchor": PROXY,
    "proxy_nca": PROXY,
    "normalized_softmax": PROXY,
    "soft_triple": {"num_classes": CLASSES, "embedding_size": DIM, "centers_per_class": 2},
    "multi_similarity": {},
    "contrastive": {"distance": "cosine", "pos_margin": 0.9, "neg_margin": 0.4},
    "triplet": {"margin": 0.1},
    "ntxent": {"temperature": 0.1},
    "supcon": {},
    "circle": {},
    "lifted_structure": {},
    "margin": {},
    "tuplet_margin": {},
    "fast_ap": {},
}


def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(24, DIM, generator=g), torch.arange(24) % CLASSES


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("tcm", [None, {"margin_pos": 0.8, "margin_neg": 0.3}])
def test_builds_from_config_and_trains(name: str, tcm) -> None:
    config = {"name": name, "params": CONFIGS[name]}
    if tcm is not None:
        config["tcm"] = tcm
    loss_fn = build_loss_from_config(config)
    assert isinstance(loss_fn, TCMComposite) == (tcm is not None)
    emb, labels = batch()
    emb.requires_grad_()
    params = list(loss_fn.parameters())
    optimiser = torch.optim.SGD([emb, *params], lr=0.01)
    loss = loss_fn(emb, labels)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all()
    for p in params:  # proxies / class weights get gradients: the optimiser sees them
        assert p.grad is not None
    optimiser.step()
    if tcm is not None:
        assert loss_fn.tcm.margin_pos == 0.8 and loss_fn.tcm.margin_neg == 0.3


def test_names_are_normalised_and_native_losses_win() -> None:
    assert isinstance(build_loss("ProxyAnchorLoss", **PROXY), pml.ProxyAnchorLoss)
    assert isinstance(build_loss("proxy-anchor", **PROXY), pml.ProxyAnchorLoss)
    assert isinstance(build_loss("Triplet"), pml.TripletMarginLoss)
    assert isinstance(build_loss("SmoothAPLoss"), SmoothAPLoss)
    assert isinstance(build_loss("pml:SmoothAP"), pml.SmoothAPLoss)
    assert isinstance(build_loss("tcm", margin_pos=0.8), TCMLoss)
    assert isinstance(build_loss("recall@k".replace("@", "_at_")), RecallAtKSurrogateLoss)
    assert {"smoothap", "recallatk", "tcm", "arcface", "multisimilarity"} <= set(available_losses())


def test_tcm_true_uses_defaults_and_distance_strings() -> None:
    loss_fn = build_loss("contrastive", tcm=True, distance="cosine")
    assert loss_fn.shares_similarity and loss_fn.tcm.margin_pos == 0.9


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "no_such_loss"}, "unknown loss"),
        ({"name": "arcface"}, "needs parameter"),
        ({"name": "smooth_ap", "params": {"temprature": 0.1}}, "bad parameters"),
        ({"name": "smooth_ap", "tcm": {"margin": 0.1}}, "bad tcm parameters"),
        ({"name": "smooth_ap", "weight": 1}, "unknown loss config key"),
        ({"params": {}}, "needs a 'name'"),
        ({"name": "smooth_ap", "params": [1]}, "must be a mapping"),
        ({"name": "contrastive", "params": {"distance": "manhattan"}}, "unknown distance"),
        ({"name": "tcm", "tcm": True}, "TCM loss itself"),
    ],
)
def test_config_errors(config, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_loss_from_config(config)


def test_tcdml_losses_imports_lightly() -> None:
    code = (
        "import sys; from tcdml.losses import TCMLoss, SmoothAPLoss, propose_margins; "
        "print('pytorch_metric_learning' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_new_loss_is_one_register_call(monkeypatch) -> None:
    """Registered once, a loss builds by name from config, with TCM, and is listed with its parameters."""
    from tcdml.losses import TermLoss, register_loss, registry
    from tcdml.losses.base import LossTerm

    class MeanPositiveDistance(TermLoss):
        def __init__(self, scale: float) -> None:
            super().__init__()
            self.scale = scale

        def terms_from_pairs(self, pairs):
            pos, _ = pairs.masks.dense()
            return [LossTerm(self.scale * (1 - pairs.sim[pos]).sum(), pos.sum())]

    monkeypatch.setattr(registry, "NATIVE", dict(registry.NATIVE))  # the test's registration stays here
    register_loss(MeanPositiveDistance, "mean_positive_distance")
    assert "meanpositivedistance" in available_losses()
    assert registry.required_params("MeanPositiveDistance") == ["scale"]
    config = {"name": "mean-positive-distance", "params": {"scale": 2.0}, "tcm": True}
    loss_fn = build_loss_from_config(config)
    assert isinstance(loss_fn, TCMComposite) and isinstance(loss_fn.base, MeanPositiveDistance)
    emb, labels = batch()
    assert torch.isfinite(loss_fn(emb, labels))
    with pytest.raises(TcdmlInputError, match="taken by SmoothAPLoss"):
        register_loss(MeanPositiveDistance, "smooth_ap")
    with pytest.raises(TcdmlInputError, match="needs parameter"):
        build_loss("mean_positive_distance")
