"""``read_embeddings``: .npy pairs, Parquet and CSV tables give what the .npz of the same data gives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tcdml.cli.main import main
from tcdml.errors import TcdmlInputError
from tcdml.io import save_embeddings_file
from tcdml.io.embedding_inputs import read_embeddings
from tests.helpers import clustered_embeddings

X64, Y = clustered_embeddings([9, 12, 7, 10, 8], dim=6, spread=[0.3, 0.6, 0.9, 0.5, 0.4], seed=3)
X = np.round(X64, 4).astype(np.float64)  # exact in a CSV's decimal text
NAMES = np.array(["ant", "bee", "cat", "dog", "eel"])[Y]  # sorted like Y: the same labels 0..4


def write_csv_table(path: Path, columns: dict[str, np.ndarray], delimiter: str = ",") -> Path:
    rows = zip(*(np.asarray(c).astype(str) for c in columns.values()), strict=True)
    lines = [delimiter.join(columns)] + [delimiter.join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def dims(x: np.ndarray) -> dict[str, np.ndarray]:
    return {f"e{i}": x[:, i] for i in range(x.shape[1])}


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, list[str]]:
    """Argv tails of the same data in every format."""
    ids = np.array([f"s{i}" for i in range(len(Y))])
    is_query = np.arange(len(Y)) % 3 != 0
    save_embeddings_file(tmp_path / "x.npz", X, Y, ids=ids, is_query=is_query)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "labels.npy", Y)
    np.save(tmp_path / "names.npy", NAMES)
    table = {"id": ids, "label": NAMES, "embedding": list(X), "is_query": is_query}
    pq.write_table(pa.table(table), tmp_path / "list.parquet")
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1])
    pq.write_table(
        pa.table({"label": Y, "embedding": fixed, "is_query": is_query}), tmp_path / "fixed.parquet"
    )
    pq.write_table(pa.table({"label": Y, **dims(X), "is_query": is_query}), tmp_path / "columns.parquet")
    write_csv_table(tmp_path / "x.csv", {"label": NAMES, **dims(X), "is_query": is_query.astype(int)})
    write_csv_table(tmp_path / "semi.csv", {"id": ids, "label": Y, **dims(X), "is_query": is_query}, ";")
    return {
        "npz": [str(tmp_path / "x.npz")],
        "list.parquet": [str(tmp_path / "list.parquet")],
        "fixed.parquet": [str(tmp_path / "fixed.parquet")],
        "columns.parquet": [str(tmp_path / "columns.parquet")],
        "csv": [str(tmp_path / "x.csv")],
        "semi.csv": [str(tmp_path / "semi.csv")],
    }


def test_every_format_reads_the_same_arrays(inputs, tmp_path: Path) -> None:
    reference = read_embeddings(inputs["npz"][0])
    for name, (path,) in inputs.items():
        data = read_embeddings(path)
        assert data.embeddings.flags.writeable, name
        np.testing.assert_array_equal(data.embeddings, X, err_msg=name)
        np.testing.assert_array_equal(data.labels, Y, err_msg=name)
        np.testing.assert_array_equal(data.is_query, reference.is_query, err_msg=name)
        assert data.is_gallery is None
    assert list(read_embeddings(inputs["list.parquet"][0]).ids) == list(reference.ids)
    assert list(read_embeddings(inputs["semi.csv"][0]).ids) == list(reference.ids)
    for labels in ("labels.npy", "names.npy"):  # integer or string labels
        pair = read_embeddings(tmp_path / "x.npy", tmp_path / labels)
        np.testing.assert_array_equal(pair.embeddings, X)
        np.testing.assert_array_equal(pair.labels, Y)


def _evaluate(argv: list[str], capsys) -> dict:
    capsys.readouterr()
    assert main(["evaluate", *argv, "--format", "json", "--bootstrap", "20"]) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_json_equals_the_npz(inputs, tmp_path: Path, capsys) -> None:
    expected = _evaluate(inputs["npz"], capsys)
    for name, argv in inputs.items():
        assert _evaluate(argv, capsys) == expected, name
    # the .npy pair has no is_query mask: compare with the .npz without it
    save_embeddings_file(tmp_path / "plain.npz", X, Y)
    plain = _evaluate([str(tmp_path / "plain.npz")], capsys)
    npy = [str(tmp_path / "x.npy"), "--labels", str(tmp_path / "names.npy")]
    assert _evaluate(npy, capsys) == plain


def test_calibrate_and_compare_take_labels(tmp_path: Path, capsys) -> None:
    save_embeddings_file(tmp_path / "plain.npz", X, Y)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "labels.npy", Y)
    npy = [str(tmp_path / "x.npy"), "--labels", str(tmp_path / "labels.npy")]
    results = []
    for argv in ([str(tmp_path / "plain.npz")], npy):
        capsys.readouterr()
        assert main(["calibrate", *argv, "--target-far", "0.05", "--format", "json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0] == results[1]
    argv = ["compare", str(tmp_path / "plain.npz"), *npy, "--format", "json", "--bootstrap", "20"]
    capsys.readouterr()
    assert main(argv) == 0
    deltas = json.loads(capsys.readouterr().out)
    assert deltas["delta_recall@1"] == 0.0 and deltas["a"] == deltas["b"]


def test_table_errors_name_file_column_and_row(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.parquet"
    pq.write_table(pa.table({"label": [0, 0, 1], "embedding": [[1.0, 0.0], [0.0, 1.0], [1.0]]}), ragged)
    with pytest.raises(TcdmlInputError, match=r"ragged.parquet: column 'embedding' has 1 values at row 2"):
        read_embeddings(ragged)
    text = write_csv_table(tmp_path / "t.csv", {"label": Y[:3], "e0": X[:3, 0], "e1": ["1", "x", "2"]})
    with pytest.raises(TcdmlInputError, match=r"t.csv: column 'e1', line 3: 'x' is not a number"):
        read_embeddings(text)
    empty = tmp_path / "empty.csv"
    empty.write_text("label,e0,e1\n0,1,2\n1,,3\n", encoding="utf-8")
    with pytest.raises(TcdmlInputError, match=r"empty.csv: column 'e0' is empty at line 3"):
        read_embeddings(empty)
    blank = tmp_path / "blank.csv"  # a blank line is a row of empty cells, refused at its own line
    blank.write_text("label,e0,e1\n0,1,2\n\n1,nan,3\n", encoding="utf-8")
    with pytest.raises(TcdmlInputError, match=r"blank.csv: column '\w+' is empty at line 3"):
        read_embeddings(blank)
    with pytest.raises(TcdmlInputError, match=r"x.txt: unknown embedding file type '.txt'"):
        read_embeddings(tmp_path / "x.txt")
