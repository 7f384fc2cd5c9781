"""Bad labelled texts (``embed --dataset text_csv/text_jsonl``) and bad embedding inputs (``evaluate``,
``calibrate``, ``compare``: .npy pairs, Parquet and CSV tables): one line naming the file and the column,
line, row or key; nothing written.

The text cases embed with a tiny image model's checkpoint: the file is read (and refused) before the model
sees a sample, so any checkpoint will do, and a small one loads fastest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tcdml.cli.main import main
from tests.badinput.harness import expect_clean_failure
from tests.helpers import clustered_embeddings, make_image_tree, tiny_config

X, Y = clustered_embeddings([6, 5, 7], dim=4, seed=2)

# (file name, content, text the error line must contain)
TEXT_CASES = {
    "no_text_column": ("t.csv", "body,label\nhello,a\n", ["t.csv", "missing 'text'"]),
    "no_label_column": ("t.csv", "text;class\nhello;a\n", ["t.csv", "missing 'label'"]),
    "empty_text": ("t.csv", "text,label\nhello,a\n ,b\n", ["t.csv, line 3", "empty 'text'"]),
    "split_value": ("t.csv", "text\tlabel\tsplit\nhi\ta\ttrain\nho\tb\tval\n", ["line 3", "split 'val'"]),
    "extra_field": ("t.csv", "text,label\nhello, world,a\n", ["line 2", "more fields than the header"]),
    "not_utf8": (
        "t.csv",
        "text,label\nhello,a\ncaf\xe9,b\n".encode("latin-1"),
        ["t.csv, line 3", "not UTF-8"],
    ),
    "bad_json": ("t.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", label: 2}\n', ["t.jsonl, line 3"]),
    "json_list": ("t.jsonl", '["a", 1]\n', ["t.jsonl, line 1", "expected a JSON object"]),
    "json_missing_label": ("t.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n', ["line 2", "'label'"]),
    "json_split_some": (
        "t.jsonl",
        '{"text": "a", "label": 1, "split": "train"}\n{"text": "b", "label": 2}\n',
        ["line 2", "missing key 'split'"],
    ),
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The last checkpoint of a 1-epoch run of the tiny image model."""
    folder = tmp_path_factory.mktemp("ckpt")
    config = tiny_config(make_image_tree(folder / "images"), folder / "run", trainer={"max_epochs": 1})
    (folder / "tiny.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(folder / "tiny.yaml")]) == 0
    return str(next((folder / "run").rglob("last.ckpt")))


@pytest.mark.parametrize("case", TEXT_CASES)
def test_bad_text_file(case: str, checkpoint: str, tmp_path: Path, capsys) -> None:
    name, content, contains = TEXT_CASES[case]
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    out = tmp_path / "out"
    out.mkdir()
    dataset = "text_csv" if name.endswith(".csv") else "text_jsonl"
    argv = ["embed", checkpoint, "--data", path, "--dataset", dataset, "--split", "all", "-o", out / "e.npz"]
    expect_clean_failure([*argv, "--num-workers", "0"], capsys, watched=[out], contains=contains)


def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def _npz(path: Path) -> Path:
    np.savez(path, embeddings=X, labels=Y)
    return path


def _table(path: Path, **columns) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def _nan_rows() -> np.ndarray:
    x = X.copy()
    x[4, 2] = np.nan
    return x


# (maker of the argv's inputs in a folder, text the error line must contain)
EMBEDDING_CASES = {
    "npy_without_labels": (lambda d: [_npy(d / "x.npy", X)], ["x.npy", "--labels"]),
    "labels_other_length": (
        lambda d: [_npy(d / "x.npy", X), "--labels", _npy(d / "l.npy", Y[:-2])],
        ["l.npy", "labels of shape (16,), expected (18,)"],
    ),
    "float_labels": (
        lambda d: [_npy(d / "x.npy", X), "--labels", _npy(d / "l.npy", Y + 0.5)],
        ["l.npy", "expected integers or strings"],
    ),
    "labels_with_npz": (
        lambda d: [_npz(d / "x.npz"), "--labels", d / "x.npz"],
        ["--labels", "only for .npy"],
    ),
    "nan_npy": (
        lambda d: [_npy(d / "x.npy", _nan_rows()), "--labels", _npy(d / "l.npy", Y)],
        ["x.npy", "row 4"],
    ),
    "parquet_without_label": (
        lambda d: [_table(d / "t.parquet", klass=Y, embedding=list(X))],
        ["t.parquet", "no column 'label'", "klass"],
    ),
    "parquet_ragged": (
        lambda d: [
            _table(d / "t.parquet", label=Y, embedding=[list(row[: 3 + (i == 5)]) for i, row in enumerate(X)])
        ],
        ["t.parquet", "column 'embedding' has 4 values at row 5"],
    ),
    "parquet_null_row": (
        lambda d: [
            _table(d / "t.parquet", label=Y, embedding=[None if i == 2 else list(r) for i, r in enumerate(X)])
        ],
        ["t.parquet", "column 'embedding' is empty at row 2"],
    ),
    "parquet_nan": (
        lambda d: [_table(d / "t.parquet", label=Y, embedding=list(_nan_rows()))],
        ["t.parquet", "column 'embedding', row 4: nan"],
    ),
    "parquet_text_dimension": (
        lambda d: [_table(d / "t.parquet", label=Y, e0=X[:, 0], note=["x"] * len(Y))],
        ["t.parquet", "column 'note'", "is not a number"],
    ),
    "csv_nan": (
        lambda d: [_csv(d / "t.csv", "label,e0,e1\n0,1,2\n0,nan,1\n1,2,1\n1,2,2\n")],
        ["t.csv", "column 'e0', line 3: nan, expected a finite number"],
    ),
    "csv_empty_cell": (
        lambda d: [_csv(d / "t.csv", "label,e0,e1\n0,1,2\n0,,1\n1,2,1\n")],
        ["t.csv", "column 'e0' is empty at line 3"],
    ),
    "csv_string_label_mask": (
        lambda d: [_csv(d / "t.csv", "label,e0,is_query\na,1,1\na,2,0\nb,1,2\n")],
        ["t.csv", "column 'is_query', line 4"],
    ),
    "csv_no_label": (lambda d: [_csv(d / "t.csv", "e0,e1\n1,2\n")], ["t.csv", "no column 'label'"]),
    "unknown_suffix": (
        lambda d: [_csv(d / "t.tsv", "label\te0\n")],
        ["t.tsv", "unknown embedding file type"],
    ),
}


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["evaluate", "calibrate"])
@pytest.mark.parametrize("case", EMBEDDING_CASES)
def test_bad_embedding_input(case: str, command: str, tmp_path: Path, capsys) -> None:
    make, contains = EMBEDDING_CASES[case]
    inputs = make(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    option = ["--per-class", out / "c.csv"] if command == "evaluate" else ["-o", out / "t.json"]
    if command == "calibrate":
        option += ["--target-far", "0.1"]
    expect_clean_failure([command, *inputs, *option], capsys, watched=[out], contains=contains)


def test_compare_labels_of_another_length(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "a.npy", X)
    np.save(tmp_path / "l.npy", Y[:3])
    np.savez(tmp_path / "b.npz", embeddings=X, labels=Y)
    out = tmp_path / "out"
    out.mkdir()
    argv = ["compare", tmp_path / "a.npy", tmp_path / "b.npz", "--labels", tmp_path / "l.npy", "--plot", out]
    expect_clean_failure(argv, capsys, watched=[out], contains=["l.npy", "expected (18,)"])
    argv = ["compare", tmp_path / "b.npz", tmp_path / "b.npz", "--labels", tmp_path / "l.npy"]
    expect_clean_failure(argv, capsys, contains=["--labels", "only for .npy"])
