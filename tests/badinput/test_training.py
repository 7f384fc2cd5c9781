"""Bad input to ``train``, ``demo``, ``study``, ``study-report`` and ``pareto``: one line, nothing written.

Every case fails before training starts (at config load, the resume check or the study plan), so no
``logs/`` or ``checkpoints/`` folder appears under the watched output paths.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from tests.badinput.harness import expect_clean_failure
from tests.experiments.study_helpers import MNIST_CONFIG, write_study
from tests.helpers import make_image_tree, tiny_config

# (overrides, text the error line must contain)
TRAIN_CASES = [
    (["trainer.max_epochs=-2"], "key 'trainer.max_epochs' = -2"),
    (["trainer.max_epochs=0"], "key 'trainer.max_epochs' = 0"),
    (["trainer.precision=bogus"], "key 'trainer.precision' = 'bogus'"),
    (["trainer.devices=0"], "key 'trainer.devices' = 0"),
    (["trainer.devices=-3"], "key 'trainer.devices' = -3"),
    (["trainer.devices=abc"], "key 'trainer.devices' = 'abc'"),
    (["trainer.num_nodes=0"], "key 'trainer.num_nodes' = 0"),
    (["trainer.accelerator=quantum"], "key 'trainer.accelerator' = 'quantum'"),
    (["trainer.strategy=bogus"], "key 'trainer.strategy' = 'bogus'"),
    (["trainer.gradient_clip_val=-1"], "key 'trainer.gradient_clip_val' = -1"),
    (["trainer.log_every_n_steps=0"], "key 'trainer.log_every_n_steps' = 0"),
    (["trainer.accelerator=cpu", "trainer.precision=16-mixed"], "key 'trainer.precision' = '16-mixed'"),
    (["data.num_workers=-1"], "key 'data.num_workers' = -1"),
    (["data.classes_per_batch=0"], "key 'data.classes_per_batch' = 0"),
    (["data.classes_per_batch=-4"], "key 'data.classes_per_batch' = -4"),
    (["data.samples_per_class=1"], "key 'data.samples_per_class' = 1"),
    (["data.eval_batch_size=0"], "key 'data.eval_batch_size' = 0"),
    (["data.image_size=0"], "key 'data.image_size' = 0"),
    (["data.resize_size=16"], "key 'data.resize_size' = 16"),
    (["data.crop_scale=[0.9,0.1]"], "key 'data.crop_scale'"),
    (["data.dataset=nope"], "key 'data.dataset' = 'nope'"),
    (["data.train_split="], "key 'data.train_split' = None"),
    (["optim.lr=-1"], "key 'optim.lr' = -1"),
    (["optim.lr=0"], "key 'optim.lr' = 0"),
    (["optim.lr=.nan"], "key 'optim.lr' = nan"),
    (["optim.head_lr=-0.1"], "key 'optim.head_lr' = -0.1"),
    (["optim.loss_lr=.inf"], "key 'optim.loss_lr' = inf"),
    (["optim.weight_decay=-0.0001"], "key 'optim.weight_decay' = -0.0001"),
    (["optim.momentum=1.5"], "key 'optim.momentum' = 1.5"),
    (["optim.betas=[0.9,1.0]"], "key 'optim.betas'"),
    (["optim.optimizer=adam"], "key 'optim.optimizer' = 'adam'"),
    (["optim.schedule=linear"], "key 'optim.schedule' = 'linear'"),
    (["optim.warmup_epochs=5"], "key 'optim.warmup_epochs' = 5"),
    (["optim.warmup_epochs=-1"], "key 'optim.warmup_epochs' = -1"),
    (["optim.min_lr_factor=2"], "key 'optim.min_lr_factor' = 2"),
    (["optim.step_epochs=0"], "key 'optim.step_epochs' = 0"),
    (["optim.gamma=0"], "key 'optim.gamma' = 0"),
    (["model.embedding_size=0"], "key 'model.embedding_size' = 0"),
    (["model.backbone=no_such_net"], "key 'model.backbone' = 'no_such_net'"),
    (["model.drop_path_rate=1.5"], "key 'model.drop_path_rate' = 1.5"),
    (["model.trainable_blocks=-1"], "key 'model.trainable_blocks' = -1"),
    (["model.img_size=0"], "key 'model.img_size' = 0"),
    (["loss.name=no_such_loss"], "key 'loss.name' = 'no_such_loss'"),
    (["loss.tcm=3"], "key 'loss.tcm' = 3"),
    (["loss.tcm={tempreture: 1}"], "key 'loss.tcm.tempreture' = 1, expected a TCM parameter"),
    (["loss.tcm={margins: adaptive}"], "key 'loss.tcm.margins' = 'adaptive', expected one of fixed, auto"),
    (["loss.tcm={margins: auto, target_far: 0}"], "key 'loss.tcm.target_far' = 0, expected a rate in (0, 1)"),
    (["loss.tcm={margins: auto, target_frr: 1.5}"], "key 'loss.tcm.target_frr' = 1.5"),
    (["loss.tcm={margins: auto, momentum: 0}"], "key 'loss.tcm.momentum' = 0"),
    (["loss.tcm={margins: auto, momentum: true}"], "key 'loss.tcm.momentum' = True"),
    (["loss.tcm={lambda_pos: abc}"], "key 'loss.tcm.lambda_pos' = 'abc', expected a number >= 0"),
    (["loss.tcm={lambda_neg: null}"], "key 'loss.tcm.lambda_neg' = None"),
    (["loss.tcm={margin_pos: 2}"], "key 'loss.tcm.margin_pos' = 2, expected a cosine similarity in [-1, 1]"),
    (["loss.tcm={target_far: 0.1}"], "key 'loss.tcm.target_far' = 0.1, expected no value: it is for margins"),
    (
        ["loss.tcm={margins: auto, target_frr: 0.5}"],
        "key 'loss.tcm.target_frr' = 0.5, expected a target that batches can measure: it needs at least 20 "
        "positive pairs per batch, 3 classes x 2 samples per batch give 3 "
        "(data.classes_per_batch x data.samples_per_class)",
    ),
    (
        [
            "data.samples_per_class=4",
            "data.classes_per_batch=5",
            "loss.tcm={margins: auto, target_far: 0.001}",
        ],
        "key 'loss.tcm.target_far' = 0.001, expected a target that batches can measure: it needs at least "
        "10000 negative pairs per batch, 5 classes x 4 samples per batch give 160 "
        "(data.classes_per_batch x data.samples_per_class)",
    ),
    (["eval.every_n_epochs=0"], "key 'eval.every_n_epochs' = 0"),
    (["eval.ks=[]"], "key 'eval.ks' = ()"),
    (["eval.ks=[0]"], "key 'eval.ks' = (0,)"),
    (["eval.far_range=[0.1,0.01]"], "key 'eval.far_range'"),
    (["eval.beta=0"], "key 'eval.beta' = 0"),
    (["eval.eps=1.5"], "key 'eval.eps' = 1.5"),
    (["eval.monitor=accuracy"], "key 'eval.monitor' = 'accuracy'"),
    (["eval.mode=up"], "key 'eval.mode' = 'up'"),
    (["seed=-1"], "key 'seed' = -1"),
    (["seed=99999999999"], "key 'seed' = 99999999999"),
    (["trainer.max_epoch=2"], "unknown key 'trainer.max_epoch'"),
    (["trainer.max_epochs"], "expected KEY.SUB=VALUE"),
]


#: Settings refused by ``check_runtime`` (what this machine can run), not at load.
CHECKED_AT_FIT = {"trainer.precision=16-mixed"}


@pytest.fixture
def run_config(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny config (its data folder need not exist: every case fails first) and its output folder."""
    output = tmp_path / "run"
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "images", output)))
    return path, output


@pytest.mark.parametrize(
    ("overrides", "contains"), TRAIN_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_train_bad_override(run_config, overrides, contains, capsys) -> None:
    path, output = run_config
    source = f"override {overrides[-1]!r}" if "=" in overrides[-1] else "override"
    if overrides[-1] in CHECKED_AT_FIT:  # depends on this machine: refused just before training, no source
        source = "trainer.precision"
    expect_clean_failure(["train", path, *overrides], capsys, watched=[output], contains=[contains, source])


def test_train_bad_value_in_the_file_names_the_file(tmp_path: Path, capsys) -> None:
    values = tiny_config(tmp_path / "images", tmp_path / "run", data={"num_workers": -1})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    expect_clean_failure(
        ["train", path], capsys, watched=[tmp_path / "run"], contains=f"{path}: key 'data.num_workers'"
    )


def fake_checkpoint(folder: Path, epoch: int = 0, **sections: dict) -> Path:
    """A checkpoint as ``tcdml train`` writes one, as far as the resume check reads it."""
    values = tiny_config(folder / "images", folder / "run", **sections)
    path = folder / "old.ckpt"
    torch.save(
        {"state_dict": {}, "epoch": epoch, "global_step": 3 * (epoch + 1), "tcdml_config": values}, path
    )
    return path


RESUME_CASES = [
    ({"model": {"embedding_size": 32}}, 0, "model.embedding_size=32"),
    ({"model": {"backbone": "resnet18"}}, 0, "model.backbone='resnet18'"),
    ({"loss": {"name": "recall_at_k"}}, 0, "loss.name='recall_at_k'"),
    ({"optim": {"optimizer": "sgd"}}, 0, "optim.optimizer='sgd'"),
    ({}, 2, "trained 3 epochs, more than trainer.max_epochs=2"),
]


@pytest.mark.parametrize(("sections", "epoch", "contains"), RESUME_CASES)
def test_train_resume_that_does_not_fit(run_config, tmp_path, sections, epoch, contains, capsys) -> None:
    path, output = run_config
    checkpoint = fake_checkpoint(tmp_path, epoch, **sections)
    argv = ["train", path, "--resume", checkpoint]
    expect_clean_failure(argv, capsys, watched=[output, checkpoint], contains=contains)


def test_train_resume_from_a_checkpoint_without_config(run_config, tmp_path, capsys) -> None:
    path, output = run_config
    checkpoint = tmp_path / "bare.ckpt"
    torch.save({"state_dict": {}, "epoch": 0}, checkpoint)
    argv = ["train", path, "--resume", checkpoint]
    expect_clean_failure(argv, capsys, watched=[output], contains="no 'tcdml_config'")


def test_train_resume_from_a_missing_file(run_config, tmp_path, capsys) -> None:
    path, output = run_config
    argv = ["train", path, "--resume", tmp_path / "missing.ckpt"]
    expect_clean_failure(argv, capsys, watched=[output], contains="missing.ckpt")


DEMO_CASES = [
    (["--epochs", "0"], "epochs=0"),
    (["--epochs", "-3"], "epochs=-3"),
    (["--embedding-size", "5"], "embedding_size=5"),
    (["--seed", "-1"], "key 'seed' = -1"),
    (["--configs", "{tmp}/missing"], "missing"),
]


@pytest.mark.parametrize(("args", "contains"), DEMO_CASES)
def test_demo_bad_option(tmp_path: Path, args, contains, capsys) -> None:
    output = tmp_path / "demo"
    argv = ["demo", "-o", output, *(arg.format(tmp=tmp_path) for arg in args)]
    expect_clean_failure(argv, capsys, watched=[output], contains=contains)


STUDY_CASES = [
    ({"seeds": []}, [], "key 'seeds'"),
    ({"losses": {}}, [], "key 'losses'"),
    ({"benchmarks": {}}, [], "key 'benchmarks'"),
    ({"colour": "red"}, [], "unknown key 'colour'"),
    ({"benchmarks": {"mnist": {"config": "missing.yaml"}}}, [], "missing.yaml"),
    ({"overrides": ["trainer.max_epochs=0"]}, [], "key 'trainer.max_epochs' = 0"),
    ({"overrides": ["optim.lr=-1"]}, ["--dry-run"], "key 'optim.lr' = -1"),
    ({"variants": {"small": ["data.samples_per_class=1"]}}, [], "key 'data.samples_per_class' = 1"),
    ({}, ["--only", "seed"], "--only"),
    ({}, ["--only", "colour=red"], "colour"),
    ({}, ["--only", "loss=nope"], "loss=nope"),
    ({}, ["--only", "seed=7"], "seed=7"),
]


@pytest.mark.parametrize(("changes", "args", "contains"), STUDY_CASES)
def test_study_bad_config_or_option(tmp_path: Path, changes, args, contains, capsys) -> None:
    path = write_study(tmp_path, **changes)
    expect_clean_failure(["study", path, *args], capsys, watched=[tmp_path / "out"], contains=contains)


def test_study_missing_file(tmp_path: Path, capsys) -> None:
    expect_clean_failure(["study", tmp_path / "nope.yaml"], capsys, watched=[tmp_path], contains="nope.yaml")


@pytest.mark.parametrize("command", ["study-report", "pareto"])
@pytest.mark.parametrize("where", ["empty", "missing", "study-yaml"])
def test_report_without_results(tmp_path: Path, command: str, where: str, capsys) -> None:
    folder = tmp_path / "out"
    if where == "empty":
        folder.mkdir()
    target = write_study(tmp_path) if where == "study-yaml" else folder
    expect_clean_failure([command, target], capsys, watched=[tmp_path / "out"])


def test_mnist_config_is_the_studys_benchmark() -> None:
    assert MNIST_CONFIG.is_file()


INTERRUPT_AT_STEP_2 = """
import os, signal, sys
from tcdml.cli.main import main
from tcdml.training.module import EmbeddingModule

step = EmbeddingModule.training_step


def interrupting_step(self, *args, **kwargs):
    if self.global_step == 2:
        os.kill(os.getpid(), signal.SIGINT)
    return step(self, *args, **kwargs)


EmbeddingModule.training_step = interrupting_step
sys.exit(main(["train", sys.argv[1]]))
"""


def test_interrupted_train_exits_130_with_one_line(tmp_path: Path) -> None:
    """Ctrl-C during training, in a real process (outside pytest's log capture Lightning prints its start-up
    and shutdown chatter to stderr): exit 130, one line, Lightning silenced."""
    import subprocess
    import sys

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(make_image_tree(tmp_path / "images"), tmp_path / "run")))
    run = subprocess.run(
        [sys.executable, "-c", INTERRUPT_AT_STEP_2, str(config)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 130, run.stderr
    lines = [line for line in run.stderr.splitlines() if not line.startswith("tcdml: note: ")]
    assert lines == ["tcdml: error: interrupted (SIGINT)"]
    assert run.stdout == ""


@pytest.mark.parametrize(
    ("content", "contains"),
    [("text,category\nhello,a\n", "label"), ("text,label\n,a\nb,b\n", "empty")],
    ids=["no label column", "empty text"],
)
def test_train_on_a_bad_text_file_writes_nothing(tmp_path: Path, content: str, contains: str, capsys) -> None:
    data = tmp_path / "texts.csv"
    data.write_text(content)
    values = {
        "data": {"dataset": "text_csv", "root": str(data), "classes_per_batch": 2, "samples_per_class": 2},
        "model": {"backbone": "minilm_l6", "embedding_size": 8, "trainable_blocks": 0},
        "loss": {"name": "smooth_ap"},
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(values))
    expect_clean_failure(["train", path], capsys, watched=[tmp_path / "run"], contains=[str(data), contains])
    assert not (tmp_path / "run").exists()
