"""Model selection on validation classes (never the test split), the start as a candidate, the runtime loss
parameters filled by one rule, and the heads that start at the encoder (issues 17 and 22)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from tcdml.cli.main import main
from tcdml.data.base import ImageListDataset
from tcdml.errors import TcdmlInputError
from tcdml.metrics.settings import MetricSettings
from tcdml.models import ModelConfig, build_model
from tcdml.models.embedding import starts_pretrained
from tcdml.models.head import principal_directions, resolve_head, set_principal
from tcdml.training.build import build_run, prepare
from tcdml.training.checkpoint import model_from_checkpoint
from tcdml.training.config import TrainConfig
from tcdml.training.evaluation import SelectOnValidation
from tcdml.training.trainer import fit
from tests.helpers import tiny_config

#: test_resnet's pooled feature width (an identity head keeps it).
FEATURES = build_model(ModelConfig(backbone="test_resnet", embedding_size=4)).features


def frozen_identity(image_tree: Path, output: Path, **sections: dict) -> dict:
    """The tiny config on a frozen backbone under an identity head: the start is the encoder itself."""
    values = tiny_config(
        image_tree,
        output,
        model={"embedding_size": FEATURES, "head": "identity", "trainable_blocks": 0},
        loss={"name": "smooth_ap", "tcm": None},
    )
    for name, changes in sections.items():
        values[name] = {**values[name], **changes}
    return values


def test_a_run_training_cannot_help_keeps_the_start(image_tree: Path, tmp_path: Path) -> None:
    # The start is already perfect on the validation classes (R@1 1, OPIS 0: J = 1), and a learning rate
    # that wrecks the head cannot beat it: only a strictly better epoch replaces the start.
    values = frozen_identity(image_tree, tmp_path / "run", optim={"lr": 1e3, "warmup_epochs": 0})
    result = fit(TrainConfig.from_dict(values))
    start, *epochs = result.selection
    assert start == [0, 1.0] and [epoch for epoch, _ in epochs] == [1, 2]
    assert all(score <= start[1] for _, score in epochs)
    assert result.kept_epoch == 0 and result.best_score == start[1]
    assert result.test["kept_epoch"] == 0
    assert json.loads((tmp_path / "run" / "test_report.json").read_text())["kept_epoch"] == 0
    # best.ckpt holds the start: the encoder's normalised features, bit for bit.
    kept, _ = model_from_checkpoint(result.best_checkpoint)
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(kept(images), F.normalize(kept.extract(images), dim=1), rtol=0, atol=0)
    last = torch.load(result.last_checkpoint, weights_only=True)["state_dict"]["model.head.weight"]
    assert not torch.equal(kept.head.weight, last)  # training did move the head: it was not kept


class Saves:
    """What ``SelectOnValidation`` needs of a trainer: ``save_checkpoint`` (recorded)."""

    def __init__(self) -> None:
        self.saved: list[str] = []

    def save_checkpoint(self, path: Path) -> None:
        self.saved.append(str(path))


@pytest.mark.parametrize(
    ("monitor", "evaluations", "kept", "saves"),
    [
        ("recall@1-opis", [(0.8, 0.1), (0.7, 0.1), (0.8, 0.2), (0.8, 0.1)], 0, 1),  # worse, worse, a tie
        ("recall@1-opis", [(0.8, 0.1), (0.9, 0.1), (0.95, 0.1)], 2, 3),
        ("recall@1-opis", [(0.8, 0.1), (0.99, float("nan"))], 0, 1),  # undefined OPIS is never selected
        ("opis", [(0.8, 0.1), (0.5, 0.05)], 1, 2),
    ],
)
def test_selection_keeps_the_strictly_best_evaluation_the_start_included(
    tmp_path: Path, monitor: str, evaluations: list, kept: int, saves: int
) -> None:
    select = SelectOnValidation(MetricSettings(), monitor, tmp_path / "best.ckpt")
    trainer = Saves()
    for epoch, (recall, opis) in enumerate(evaluations):
        select._select(trainer, epoch, {"recall@1": recall, "opis": opis, "recall@1-opis": recall - opis})
    assert select.kept_epoch == kept and [epoch for epoch, _ in select.history] == list(
        range(len(evaluations))
    )
    assert trainer.saved == [str(tmp_path / "best.ckpt")] * saves


def test_no_test_sample_is_read_before_the_final_report(
    image_tree: Path, tmp_path: Path, monkeypatch
) -> None:
    events: list[str] = []
    real = ImageListDataset.load_sample

    def spy(self: ImageListDataset, index: int):
        events.append(self.split)
        return real(self, index)

    class MarkEnd(pl.Callback):
        def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            events.append("fit ended")

    monkeypatch.setattr(ImageListDataset, "load_sample", spy)
    values = tiny_config(image_tree, tmp_path / "run", trainer={"max_epochs": 1})
    result = fit(TrainConfig.from_dict(values), callbacks=[MarkEnd()])
    end = events.index("fit ended")
    assert "train" in events[:end] and "test" not in events[:end]
    assert events[end + 1 :].count("test") == result.test["num_samples"] == 18


def test_validation_classes_are_training_classes_disjoint_from_the_rest(
    image_tree: Path, tmp_path: Path
) -> None:
    def split(**data: object) -> tuple[set, set, set]:
        values = tiny_config(image_tree, tmp_path / "run", data=data)
        module = prepare(TrainConfig.from_dict(values))[1]
        names = (module.train_set.class_names, module.val_set.class_names, module.eval_set.class_names)
        return tuple(set(part) for part in names)

    train, val, test = split()
    assert len(val) == 2 and len(train) == 3  # 20 % of 5 classes, at least 2
    assert train.isdisjoint(val) and test.isdisjoint(val) and test.isdisjoint(train)
    assert train | val == {f"class_{label}" for label in range(5)}
    assert split() == (train, val, test)  # seeded by data.val_seed, not by seed
    assert split(val_seed=0) == split()
    assert len({frozenset(split(val_seed=seed)[1]) for seed in range(6)}) > 1
    assert len(split(val_classes=3, classes_per_batch=2)[1]) == 3
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"val_classes": 1}, "key 'data.val_classes' = 1, expected a fraction in (0, 1) or a count >= 2"),
        ({"val_classes": 1.5}, "key 'data.val_classes' = 1.5"),
        ({"val_classes": True}, "key 'data.val_classes' = True"),
        ({"val_classes": 4}, "leaves 1 of the 5 classes with >= 2 samples to train (expected at most 3)"),
    ],
)
def test_bad_validation_classes_are_one_line_errors_before_anything_is_written(
    image_tree: Path, tmp_path: Path, data: dict, message: str
) -> None:
    values = tiny_config(image_tree, tmp_path / "run", data=data)
    with pytest.raises(TcdmlInputError) as error:
        fit(TrainConfig.from_dict(values))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


def test_too_few_classes_to_validate_with_says_how_many_are_needed(tmp_path: Path) -> None:
    from tests.helpers import make_image_tree

    root = make_image_tree(tmp_path / "images")
    for label in (2, 3):  # 3 training classes left: 2 to validate + 2 to train is 4
        for path in (root / "train" / f"class_{label}").iterdir():
            path.unlink()
        (root / "train" / f"class_{label}").rmdir()
    values = tiny_config(root, tmp_path / "run")
    with pytest.raises(
        TcdmlInputError, match=r"3 class\(es\) with >= 2 samples; .* needs at least 4 \(2 to "
    ):
        fit(TrainConfig.from_dict(values))
    assert not (tmp_path / "run").exists()


def test_proxy_losses_get_num_classes_and_embedding_size_filled(image_tree: Path, tmp_path: Path) -> None:
    values = tiny_config(image_tree, tmp_path / "run", loss={"name": "arcface", "tcm": None})
    config = TrainConfig.from_dict(values)
    assert "num_classes" not in config.loss.params  # loads without them
    filled = prepare(config)[0]
    assert filled.loss.params == {"num_classes": 3, "embedding_size": 16}
    run = build_run(config)
    assert run.config == filled and run.loss.loss.W.shape == (16, 3)  # the loss, built once
    result = fit(config)
    stored = torch.load(result.last_checkpoint, weights_only=True)["tcdml_config"]["loss"]["params"]
    assert stored == {"num_classes": 3, "embedding_size": 16}


def test_a_disagreeing_runtime_parameter_is_refused(image_tree: Path, tmp_path: Path, capsys) -> None:
    values = tiny_config(image_tree, tmp_path / "run", loss={"name": "arcface", "params": {"num_classes": 5}})
    with pytest.raises(TcdmlInputError) as error:
        fit(TrainConfig.from_dict(values))
    text = str(error.value)
    assert (
        text.startswith("key 'loss.params.num_classes' = 5, expected 3 (the training classes")
        and "\n" not in text
    )
    values["loss"]["params"] = {"embedding_size": 8}
    with pytest.raises(TcdmlInputError, match=r"key 'loss.params.embedding_size' = 8, expected 16 \(model"):
        TrainConfig.from_dict(values)  # at load: the model's size is in the config
    assert not (tmp_path / "run").exists()
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps(tiny_config(image_tree, tmp_path / "run", loss={"name": "proxy_anchor"})))
    assert main(["train", str(config), "--check"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["loss"]["params"] == {"num_classes": 3, "embedding_size": 16}


def test_the_identity_head_starts_exactly_at_the_encoders_normalised_features() -> None:
    model = build_model(ModelConfig(backbone="test_resnet", embedding_size=FEATURES, head="identity")).eval()
    images = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(images), F.normalize(model.extract(images), dim=1), rtol=0, atol=0)
    none = build_model(ModelConfig(backbone="test_resnet", embedding_size=FEATURES, head="none")).eval()
    assert list(none.head.parameters()) == []
    with pytest.raises(
        TcdmlInputError, match=rf"model.head='none': .*expected model.embedding_size={FEATURES}"
    ):
        build_model(ModelConfig(backbone="test_resnet", embedding_size=FEATURES - 1, head="none"))


def test_the_pca_head_is_orthonormal_onto_the_top_directions(image_tree: Path, tmp_path: Path) -> None:
    features = np.random.default_rng(0).normal(size=(200, 12)) * np.linspace(3, 0.1, 12)
    head = torch.nn.Linear(12, 4)
    set_principal(head, features)
    weight = head.weight.detach().double()
    torch.testing.assert_close(weight @ weight.T, torch.eye(4, dtype=torch.float64), atol=1e-6, rtol=0)
    assert torch.all(head.bias == 0)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    kept = np.linalg.norm(unit @ weight.numpy().T) ** 2  # energy kept: more than any other 4-D projection
    other = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 4)))[0].T
    assert kept > np.linalg.norm(unit @ other.T) ** 2
    # In a run: the head starts at the training classes' features, computed by the frozen backbone.
    values = tiny_config(image_tree, tmp_path / "run", model={"head": "pca", "embedding_size": 4})
    run = build_run(TrainConfig.from_dict(values))
    assert run.model.head_kind == "pca"
    with torch.no_grad():
        expected = principal_directions(
            torch.cat([run.model.eval().extract(x[None]) for x, _ in run.data.feature_set()]).numpy(), 4
        )
    torch.testing.assert_close(run.model.head.weight.detach(), torch.from_numpy(expected), atol=1e-5, rtol=0)


def test_auto_head_starts_a_pretrained_encoder_at_itself() -> None:
    assert resolve_head("auto", pretrained=True, features=384, embedding_size=384) == "identity"
    assert resolve_head("auto", pretrained=True, features=384, embedding_size=128) == "pca"
    assert resolve_head("auto", pretrained=False, features=384, embedding_size=128) == "linear"
    assert starts_pretrained(ModelConfig(backbone="minilm_l6"))
    assert not starts_pretrained(ModelConfig(backbone="small_cnn"))
    assert not starts_pretrained(ModelConfig(backbone="resnet18"))
    assert starts_pretrained(ModelConfig(backbone="resnet18", pretrained="weights.safetensors"))
    with pytest.raises(TcdmlInputError, match=r"model.head='pca'.*expected < 384"):
        resolve_head("pca", pretrained=True, features=384, embedding_size=384)
