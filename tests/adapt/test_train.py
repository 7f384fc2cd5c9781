"""Training: the kept epoch is the best on validation and never worse than the input; the class split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tcdml.adapt import AdaptSettings, split_classes, train_adapter
from tcdml.adapt.head import transform
from tcdml.adapt.settings import RECIPE_LAMBDA
from tcdml.adapt.train import _objective
from tcdml.errors import TcdmlInputError
from tcdml.io.yaml_file import read_yaml_mapping
from tests.helpers import fast

ROOT = Path(__file__).resolve().parents[2]


def test_split_is_seeded_disjoint_and_by_class(digits) -> None:
    labels = digits[1]
    train, val = split_classes(labels, 0.3, seed=5)
    again = split_classes(labels, 0.3, seed=5)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert np.array_equal(train, ~val)
    assert set(labels[train]).isdisjoint(labels[val])
    assert len(set(labels[val])) == 3 and len(set(labels[train])) == 7  # round(0.3 x 10)
    other = [set(labels[split_classes(labels, 0.3, seed=s)[1]]) for s in range(6)]
    assert len({frozenset(c) for c in other}) > 1  # the seed matters


def test_split_needs_four_classes_with_pairs() -> None:
    with pytest.raises(TcdmlInputError, match="3 class\\(es\\) with >= 2 samples"):
        split_classes(np.array([0, 0, 1, 1, 2, 2, 3]), 0.2, 0)


def test_training_improves_a_closed_set_validation_objective(digits) -> None:
    x, y = digits
    half = np.arange(len(y)) % 2 == 0  # same classes, other samples
    result = train_adapter(x[half], y[half], fast(), val_embeddings=x[~half], val_labels=y[~half])
    objectives = [score.objective for score in result.epochs]
    assert result.improved and result.chosen_epoch == int(np.argmax(objectives)) > 0
    assert result.chosen.objective > result.epochs[0].objective
    assert result.chosen.objective == pytest.approx(result.chosen.recall_at_1 - result.chosen.opis)
    assert result.input_score is result.epochs[0]  # the untrained head is the input
    summary = result.to_dict()
    assert summary["chosen_epoch"] == result.chosen_epoch and len(summary["validation_epochs"]) == 4
    assert summary["settings"]["tcm_params"] is None  # TCM is off by default (docs/study.md)


def test_held_out_classes_never_get_worse_than_the_input(digits) -> None:
    x, y = digits
    result = train_adapter(x, y, fast(val_ratio=0.3))
    assert result.chosen.objective >= result.epochs[0].objective
    assert result.data["validation"]["classes"] == sorted(set(y[split_classes(y, 0.3, 0)[1]]))


@pytest.mark.parametrize("changes", [{"lr": 5.0, "epochs": 2}, {"epochs": 0}])
def test_identity_is_written_when_no_epoch_beats_the_input(changes, digits) -> None:
    x, y = digits
    seen = y < 6  # open world: the classes validated on are never trained on
    result = train_adapter(x[seen], y[seen], fast(**changes), val_embeddings=x[~seen], val_labels=y[~seen])
    assert result.chosen_epoch == 0 and not result.improved
    assert all(score.objective < result.epochs[0].objective for score in result.epochs[1:])
    assert "no epoch beat the input" in result.message()
    xt = torch.from_numpy(x)
    assert torch.equal(transform(result.head, xt), F.normalize(xt, dim=1))


def test_opis_selection_requires_recall_at_least_epoch_zero() -> None:
    reference = (0.9, 0.02)
    assert _objective("opis", (0.89, 0.001), reference) == -np.inf
    assert _objective("opis", (0.9, 0.01), reference) == -0.01
    assert _objective("recall@1", (0.8, 0.5), reference) == 0.8
    assert _objective("recall@1-opis", (0.8, 0.05), reference) == pytest.approx(0.75)


def test_narrow_linear_head_reports_the_input_separately(digits) -> None:
    x, y = digits
    result = train_adapter(x, y, fast(kind="linear", embedding_size=16, epochs=1))
    assert result.input_score is not result.epochs[0]
    assert result.head(torch.from_numpy(x[:3])).shape == (3, 16)
    assert result.meta["embedding_size"] == 16 and result.meta["hidden"] is None


def test_classification_loss_gets_its_class_count(digits) -> None:
    x, y = digits
    result = train_adapter(x, y + 100, fast(loss="arcface", epochs=1, tcm=False))  # labels need not be 0..C-1
    assert result.to_dict()["settings"]["tcm_params"] is None


def test_tcm_defaults_are_the_shipped_recipes() -> None:
    auto = read_yaml_mapping(ROOT / "configs/loss/tcm.yaml")["loss"]["tcm"]
    fixed = read_yaml_mapping(ROOT / "configs/loss/tcm-fixed.yaml")["loss"]["tcm"]
    assert AdaptSettings().tcm_params() is None  # off by default: the consistency study's rule
    assert AdaptSettings(tcm=True).tcm_params() == auto
    assert AdaptSettings(tcm=True, margins="fixed").tcm_params() == {"margins": "fixed", **fixed}
    assert RECIPE_LAMBDA == {"auto": auto["lambda_pos"], "fixed": fixed["lambda_pos"]}


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"epochs": -1}, "--epochs=-1"),
        ({"batch_size": 30}, "--batch-size=30"),
        ({"val_ratio": 1.0}, "--val-ratio=1.0"),
        ({"select": "map"}, "--select='map'"),
        ({"target_far": 0.0}, "--target-far=0.0"),
    ],
)
def test_settings_refuse_bad_values(changes, text) -> None:
    with pytest.raises(TcdmlInputError, match=text.replace("[", "\\[")):
        AdaptSettings(**changes)
