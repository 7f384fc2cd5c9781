"""``tcdml init``: a commented template for the user's own images or texts that loads as a config."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcdml.cli.main import main
from tcdml.training.config_files import load_config
from tests.badinput.harness import expect_clean_failure


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for name in ("cat", "dog"):
        (tmp_path / "images" / name).mkdir(parents=True)
    return tmp_path / "images"


@pytest.mark.parametrize(
    ("kind", "name", "dataset", "backbone"),
    [
        ("images", "images", "folder", "efficientnet_lite0"),
        ("images", "labels.csv", "csv", "efficientnet_lite0"),
        ("texts", "texts.csv", "text_csv", "minilm_l6"),
        ("texts", "texts.jsonl", "text_jsonl", "minilm_l6"),
    ],
)
def test_init_writes_a_config_that_loads(
    tmp_path: Path, images: Path, capsys, kind: str, name: str, dataset: str, backbone: str
) -> None:
    data = tmp_path / name
    if not data.exists():
        data.write_text("text,label\n")
    out = tmp_path / "run.yaml"
    assert main(["init", kind, "--data", str(data), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "TCM" not in printed  # neither template trains with TCM
    config = load_config(out)
    assert (config.data.dataset, config.data.root, config.model.backbone) == (dataset, str(data), backbone)
    assert config.output_dir == "runs/run"
    if kind == "images":  # the images recipe of docs/study.md: Smooth-AP on a PCA-started head, no TCM
        assert (config.loss.name, config.loss.tcm, config.model.head) == ("smooth_ap", None, "auto")
        assert config.model.embedding_size == 128 and config.trainer.max_epochs == 20
    else:  # the consistency study's text recipe (docs/study.md): the whole encoder, no head, NT-Xent, no TCM
        assert (config.loss.name, config.loss.tcm, config.model.head) == ("ntxent", None, "none")
        assert config.model.trainable_blocks is None and config.data.val_classes == 0.2


def test_init_keeps_an_existing_config_unless_forced(tmp_path: Path, images: Path, capsys) -> None:
    out = tmp_path / "run.yaml"
    out.write_text("# mine\n")
    argv = ["init", "images", "--data", str(images), "-o", str(out)]
    expect_clean_failure(argv, capsys, watched=[out], contains="exists (pass --force")
    assert main([*argv, "--force", "--run-dir", "runs/x"]) == 0
    assert load_config(out).output_dir == "runs/x"


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("images", "missing", "no such file or folder"),
        ("images", "texts.parquet", "expected a folder of class folders or a .csv"),
        ("texts", "texts.parquet", "expected a .csv (text,label) or a .jsonl"),
        ("texts", "missing.csv", "no such file or folder"),
    ],
)
def test_init_refuses_data_it_cannot_use(tmp_path: Path, capsys, kind: str, name: str, message: str) -> None:
    if name.endswith(".parquet"):
        (tmp_path / name).write_bytes(b"")
    out = tmp_path / "run.yaml"
    argv = ["init", kind, "--data", str(tmp_path / name), "-o", str(out)]
    expect_clean_failure(argv, capsys, watched=[tmp_path], contains=message)
    assert not out.exists()


def test_check_reads_the_data_and_refuses_batches_it_cannot_fill(tmp_path: Path, capsys) -> None:
    data = tmp_path / "texts.csv"
    rows = [f"{word}{i},{label}" for label, word in enumerate("abcdefghij") for i in range(4)]
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run.yaml"
    assert (
        main(["init", "texts", "--data", str(data), "-o", str(out), "--run-dir", str(tmp_path / "run")]) == 0
    )
    argv = ["train", str(out), "--check"]
    expect_clean_failure(
        argv, capsys, watched=[tmp_path], contains=["text_csv train split", "classes_per_batch=16"]
    )
    fits = ["data.classes_per_batch=3", "data.samples_per_class=4", "loss.tcm=false"]
    assert main([*argv, *fits]) == 0
    assert not (tmp_path / "run").exists()
