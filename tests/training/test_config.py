"""Configs: every shipped experiment parses and builds; bad keys and values name the key and the file."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import pytest
import torch

from tcdml.errors import TcdmlInputError
from tcdml.losses import TCMComposite, build_loss_from_config
from tcdml.models import ModelConfig, build_model
from tcdml.training.config import TrainConfig
from tcdml.training.config_files import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted((CONFIGS / "experiment").glob("*.yaml"))


@cache
def parameter_count(config: ModelConfig) -> int:
    """Build each distinct model once (random init: nothing is read or downloaded)."""
    model = build_model(dataclasses.replace(config, pretrained=None))
    return sum(p.numel() for p in model.parameters())


def test_the_paper_grid_is_shipped() -> None:
    names = {path.stem for path in EXPERIMENTS}
    assert len(names) == 32
    for dataset in ("cub200", "cars196", "sop", "inaturalist2018"):
        for backbone in ("resnet50", "vit_b16"):
            for loss in ("smooth_ap", "recall_at_k"):
                assert {f"{dataset}-{backbone}-{loss}", f"{dataset}-{backbone}-{loss}-tcm"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_shipped_config_parses_and_builds(path: Path) -> None:
    config = load_config(path)
    dataset, *_, tcm = path.stem.split("-")
    tcm = tcm == "tcm"
    assert config.data.dataset == dataset and config.data.image_size == 224
    assert config.model.embedding_size == 512 and config.output_dir == f"runs/{path.stem}"
    assert parameter_count(config.model) > 20_000_000
    loss = build_loss_from_config(config.loss.registry_config())
    assert isinstance(loss, TCMComposite) == bool(tcm)
    embeddings = torch.nn.functional.normalize(
        torch.randn(8, 512, generator=torch.Generator().manual_seed(0))
    )
    assert torch.isfinite(loss(embeddings, torch.arange(8) // 2))


def test_overrides_reach_any_key(tmp_path: Path) -> None:
    path = CONFIGS / "experiment" / "cub200-resnet50-smooth_ap.yaml"
    config = load_config(path, ["trainer.max_epochs=2", "loss.tcm.margin_pos=0.85", "eval.ks=[1,2]"])
    assert (
        config.trainer.max_epochs == 2
        and config.loss.tcm == {"margin_pos": 0.85}
        and config.eval.ks == (1, 2)
    )
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data:\n  batch_size: 3\n", "{path}: unknown key 'data.batch_size'"),
        ("trainer:\n  max_epochs: two\n", "{path}: key 'trainer.max_epochs' = 'two', expected int"),
        ("optimiser: {}\n", "{path}: unknown key 'optimiser'"),
        ("include: [missing.yaml]\n", "missing.yaml: no such config file"),
        ("include: [self.yaml]\n", "include cycle"),
        ("optim: {schedule: linear}\n", "{path}: key 'optim.schedule' = 'linear', expected one of"),
    ],
)
def test_bad_config_names_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "self.yaml"
    path.write_text(text)
    with pytest.raises(TcdmlInputError) as error:
        load_config(path)
    assert message.format(path=path) in str(error.value) and "\n" not in str(error.value)


def test_an_included_part_is_named_when_it_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "part.yaml").write_text("model:\n  embeding_size: 64\n")
    (tmp_path / "run.yaml").write_text("include: [part.yaml]\n")
    with pytest.raises(TcdmlInputError, match=r"part\.yaml: unknown key 'model\.embeding_size'"):
        load_config(tmp_path / "run.yaml")
