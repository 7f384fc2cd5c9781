"""``tcdml evaluate -o FILE`` writes what ``--format json`` prints (like ``calibrate -o``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from tcdml.cli.main import main
from tcdml.io import save_embeddings_file
from tests.badinput.harness import expect_clean_failure


def test_evaluate_output_is_the_printed_json(tmp_path: Path, capsys) -> None:
    pixels, digits = load_digits(return_X_y=True)
    data = tmp_path / "digits.npz"
    save_embeddings_file(data, pixels[:400].astype(np.float32), digits[:400])
    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(data), "--format", "json", "-o", str(out), "--bootstrap", "50"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed and printed["recall@1"] > 0.9


def test_evaluate_output_into_a_missing_folder_writes_nothing(tmp_path: Path, capsys) -> None:
    pixels, digits = load_digits(return_X_y=True)
    data = tmp_path / "digits.npz"
    save_embeddings_file(data, pixels[:100].astype(np.float32), digits[:100])
    argv = ["evaluate", str(data), "-o", str(tmp_path / "missing" / "m.json")]
    expect_clean_failure(argv, capsys, watched=[tmp_path], contains="missing")
