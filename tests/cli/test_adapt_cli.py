"""``tcdml adapt train`` / ``tcdml adapt apply`` end to end, in this process."""

from __future__ import annotations

import json

import numpy as np
import torch

from tcdml.adapt import load_adapter
from tcdml.adapt.head import transform
from tcdml.cli.main import main
from tcdml.io.embeddings_file import load_embeddings_file, save_embeddings_file

FAST = ["--epochs", "2", "--batch-size", "48", "--hidden", "32", "--no-progress", "--format", "json"]


def test_train_then_apply_keeps_labels_ids_and_masks(tmp_path, digits, capsys) -> None:
    x, y = digits
    train = save_embeddings_file(tmp_path / "train.npz", x, y)
    assert main(["adapt", "train", str(train), "-o", str(tmp_path / "ad"), *FAST]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["adapter"] == str(tmp_path / "ad") and summary["validation_input"]["epoch"] == 0
    head, meta = load_adapter(tmp_path / "ad")
    assert meta["training"]["chosen_epoch"] == summary["chosen_epoch"]
    ids = np.array([f"s{i}" for i in range(len(y))])
    query = np.arange(len(y)) % 3 == 0
    source = save_embeddings_file(tmp_path / "all.npz", x, y, ids=ids, is_query=query, is_gallery=~query)
    out = tmp_path / "adapted.npz"
    assert (
        main(["adapt", "apply", str(tmp_path / "ad"), str(source), "-o", str(out), "--format", "json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["num_samples"] == len(y)
    adapted = load_embeddings_file(out)
    assert np.array_equal(adapted.labels, y) and np.array_equal(adapted.ids, ids)
    assert np.array_equal(adapted.is_query, query) and np.array_equal(adapted.is_gallery, ~query)
    assert np.array_equal(adapted.embeddings, transform(head, torch.from_numpy(x)).numpy())
    assert np.allclose(np.linalg.norm(adapted.embeddings, axis=1), 1.0, atol=1e-5)


def test_train_with_a_val_file_npy_inputs_and_force(tmp_path, digits, capsys) -> None:
    x, y = digits
    seen = y < 6
    np.save(tmp_path / "x.npy", x[seen])
    np.save(tmp_path / "y.npy", y[seen])
    val = save_embeddings_file(tmp_path / "val.npz", x[~seen], y[~seen])
    folder = tmp_path / "ad"
    folder.mkdir()  # an empty folder is replaced with --force
    argv = ["adapt", "train", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--val", str(val)]
    argv += [
        "-o",
        str(folder),
        "--force",
        "--kind",
        "linear",
        "--margins",
        "fixed",
        "--margin-neg",
        "0.6",
        *FAST,
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["validation"]["source"] == "validation file"
    assert summary["settings"]["tcm_params"] == {
        "margins": "fixed",
        "margin_pos": 0.9,
        "margin_neg": 0.6,
        "lambda_pos": 1.0,
        "lambda_neg": 1.0,
    }
    assert load_adapter(folder)[1]["kind"] == "linear"


def test_table_output_names_the_kept_epoch(tmp_path, digits, capsys) -> None:
    x, y = digits
    train = save_embeddings_file(tmp_path / "train.npz", x, y)
    argv = ["adapt", "train", str(train), "-o", str(tmp_path / "ad"), "--epochs", "1", "--hidden", "16"]
    assert main([*argv, "--batch-size", "48", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "epoch 0" in out and "(kept)" in out
