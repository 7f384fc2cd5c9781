"""``tcdml embed --backbone``: the untrained starting point, in the same file layout as ``tcdml embed CKPT``;
and a frozen encoder's features on disk across ``tcdml train`` runs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tcdml.cli.main import main
from tcdml.data import build_dataset
from tcdml.io.embedding_inputs import read_embeddings
from tcdml.models import feature_cache
from tcdml.models.text_encoder import SentenceEncoder
from tests.cli.test_text_csv_cli import text_config, write_texts


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 1-epoch frozen-MiniLM run on 60 texts, its test split embedded from its checkpoint."""
    folder = tmp_path_factory.mktemp("texts")
    texts = write_texts(folder / "texts.csv")
    config = folder / "texts.yaml"
    config.write_text(yaml.safe_dump(text_config(texts, folder / "run")), encoding="utf-8")
    assert main(["train", str(config)]) == 0
    checkpoint = folder / "run" / "checkpoints" / "last.ckpt"
    out = folder / "trained.npz"
    argv = ["embed", str(checkpoint), "--data", str(texts), "-o", str(out), "--num-workers", "0"]
    assert main(argv) == 0
    return {"texts": texts, "config": config, "checkpoint": checkpoint, "trained": out, "folder": folder}


def embed_start(texts: Path, out: Path, *extra: str) -> int:
    argv = ["embed", "--backbone", "minilm_l6", "--dataset", "text_csv", "--data", str(texts), "-o", str(out)]
    return main([*argv, "--num-workers", "0", *extra])


def test_the_starting_point_pairs_with_the_trained_model(trained: dict, tmp_path: Path, capsys) -> None:
    start = tmp_path / "start.npz"
    capsys.readouterr()
    assert embed_start(trained["texts"], start) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_samples"] == 30 and summary["embedding_size"] == 384
    before, after = read_embeddings(start), read_embeddings(trained["trained"])
    assert list(before.ids) == list(after.ids) and np.array_equal(before.labels, after.labels)
    test = build_dataset("text_csv", trained["texts"], "test")
    with torch.inference_mode():
        raw = torch.nn.functional.normalize(SentenceEncoder().eval()(test.texts), dim=1)
    np.testing.assert_allclose(before.embeddings, raw.numpy(), rtol=0, atol=1e-6)
    assert (
        main(["compare", str(start), str(trained["trained"]), "--bootstrap", "20", "--format", "json"]) == 0
    )
    change = json.loads(capsys.readouterr().out)
    assert "delta_opis" in change


def test_start_of_a_checkpoint_is_its_runs_starting_point(trained: dict, tmp_path: Path, capsys) -> None:
    """``embed CKPT --start``: the backbone of the checkpoint's run, untrained, on its samples."""
    by_backbone, by_start = tmp_path / "backbone.npz", tmp_path / "start.npz"
    assert embed_start(trained["texts"], by_backbone) == 0
    argv = ["embed", str(trained["checkpoint"]), "--start", "--data", str(trained["texts"])]
    assert main([*argv, "-o", str(by_start), "--num-workers", "0"]) == 0
    start, backbone, after = (read_embeddings(p) for p in (by_start, by_backbone, trained["trained"]))
    assert list(start.ids) == list(after.ids) == list(backbone.ids)
    np.testing.assert_array_equal(start.embeddings, backbone.embeddings)
    assert start.embeddings.shape[1] == 384 and after.embeddings.shape[1] == 16  # the encoder, not the head
    capsys.readouterr()
    bad = [
        "embed",
        "--backbone",
        "minilm_l6",
        "--start",
        "--dataset",
        "text_csv",
        "-o",
        str(tmp_path / "x.npz"),
    ]
    assert main(bad) == 2
    assert "--start goes with a checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_an_image_starting_point(image_tree: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "start.npz"
    argv = ["embed", "--backbone", "efficientnet_lite0", "--dataset", "folder", "--data", str(image_tree)]
    assert main([*argv, "-o", str(out), "--num-workers", "0", "--batch-size", "8"]) == 0
    written = read_embeddings(out)
    test = build_dataset("folder", image_tree, "test")
    assert list(written.ids) == [str(path) for path in test.paths] and written.embeddings.shape[1] == 1280
    np.testing.assert_allclose(np.linalg.norm(written.embeddings, axis=1), 1.0, atol=1e-5)


def test_bad_starting_points_are_one_line_and_write_nothing(trained: dict, tmp_path: Path, capsys) -> None:
    texts, out = trained["texts"], tmp_path / "start.npz"
    wrong = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), wrong)
    (tmp_path / "a-file").write_text("x")
    base = ["embed", "--data", str(texts), "-o", str(out), "--num-workers", "0"]
    cases = [
        (["--backbone", "resnet_nope", "--dataset", "text_csv"], "--backbone 'resnet_nope': unknown"),
        (["--backbone", "timm:", "--dataset", "text_csv"], "--backbone 'timm:': unknown"),
        (["--backbone", "minilm_l6"], "--dataset is required with --backbone"),
        (
            ["--backbone", "minilm_l6", "--dataset", "text_csv", "--pretrained", str(tmp_path / "no.pt")],
            "--pretrained .*no.pt: no such file",
        ),
        (
            ["--backbone", "minilm_l6", "--dataset", "text_csv", "--pretrained", str(wrong)],
            "--pretrained .*linear.pt: .*does not fit the backbone",
        ),
        ([str(trained["checkpoint"]), "--backbone", "minilm_l6"], "both a checkpoint and --backbone"),
        ([], "neither a checkpoint nor --backbone"),
        (
            ["--backbone", "minilm_l6", "--dataset", "text_csv", "--feature-cache", str(tmp_path / "a-file")],
            "--feature-cache: .*a-file is a file",
        ),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("tcdml: error: "), (extra, err)
        assert re.search(message, err[0]), (message, err[0])
        assert not out.exists()


def test_a_second_training_run_encodes_nothing(trained: dict, tmp_path: Path, monkeypatch, capsys) -> None:
    calls: list[int] = []
    encode = SentenceEncoder.encode

    def counted(self: SentenceEncoder, texts: list[str]) -> torch.Tensor:
        calls.append(len(texts))
        return encode(self, texts)

    monkeypatch.setattr(SentenceEncoder, "encode", counted)
    cache = tmp_path / "cache"
    for run in ("first", "second"):
        monkeypatch.setattr(feature_cache, "_SHARED", {})  # a new process: nothing in memory
        calls.clear()
        argv = [
            "train",
            str(trained["config"]),
            f"output_dir={tmp_path / run}",
            "--feature-cache",
            str(cache),
        ]
        assert main(argv) == 0
        if run == "first":
            assert sum(calls) >= 60  # every text encoded (train and test split)
    assert calls == [] and capsys.readouterr().err.count("tcdml: note") == 0
    assert len(list(cache.glob("features-*.npz"))) >= 1
    (tmp_path / "a-file").write_text("x")
    argv = ["train", str(trained["config"]), f"output_dir={tmp_path / 'third'}"]
    assert main([*argv, "data.feature_cache=" + str(tmp_path / "a-file")]) == 2
    assert "data.feature_cache: " in capsys.readouterr().err and not (tmp_path / "third").exists()
    # The checkpoint's folder is gone (another machine): embedding it notes that and goes on without it.
    shutil.rmtree(cache)
    cache.write_text("x")
    argv = ["embed", str(tmp_path / "first" / "checkpoints" / "last.ckpt"), "--data", str(trained["texts"])]
    assert main([*argv, "-o", str(tmp_path / "e.npz"), "--num-workers", "0"]) == 0
    err = capsys.readouterr().err
    assert err.count("tcdml: note: the checkpoint's data.feature_cache: ") == 1 and "is a file" in err


def test_a_dataset_shipped_by_a_package_needs_no_data_option(tmp_path: Path, capsys) -> None:
    """hscodes, mnist and glyphs take no root: ``--data`` may be left out (it was required before)."""
    out = tmp_path / "start.npz"
    argv = ["embed", "--backbone", "small_cnn", "--dataset", "mnist", "-o", str(out), "--num-workers", "0"]
    assert main(argv) == 0
    written = read_embeddings(out)
    assert len(written.labels) == len(build_dataset("mnist", None, "test"))
    assert written.embeddings.shape[1] > 0
