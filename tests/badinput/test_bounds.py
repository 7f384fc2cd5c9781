"""Bounded memory on every file a user can hand in (issue 23, part 5): declared sizes are checked against
what the file holds before anything is built or inflated, tables and texts against the memory their reading
really takes (the available memory is set small by monkeypatching ``psutil``), JSON that is too large, too
deep or holds a 5,000-digit integer is one line."""

from __future__ import annotations

import json
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tcdml.cli.main import main
from tcdml.errors import TcdmlInputError
from tcdml.io.embeddings_file import save_embeddings_file
from tests.badinput.harness import expect_clean_failure
from tests.badinput.test_adapt import FAST, X, Y
from tests.deploy.helpers import write_calibration


@pytest.fixture
def adapter(tmp_path: Path) -> dict[str, Path]:
    out = tmp_path / "out"
    out.mkdir()
    train = save_embeddings_file(tmp_path / "train.npz", X, Y)
    assert main(["adapt", "train", str(train), "-o", str(out / "ad"), *FAST]) == 0
    return {"out": out, "ad": out / "ad", "train": train}


def _apply(adapter: dict[str, Path]) -> list:
    return ["adapt", "apply", adapter["ad"], adapter["train"], "-o", adapter["out"] / "new.npz"]


def _edit_meta(folder: Path, **changes) -> None:
    path = folder / "adapter.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize(
    ("changes", "contains"),
    [
        ({"hidden": 50_000_000}, ["adapter.json: hidden=50000000", "[1, 65536]"]),
        ({"hidden": 60_000}, ["adapter.pt: weights do not fit", "adapter.json", "4,080,032 bytes"]),
        ({"input_size": 2_000_000, "embedding_size": 2_000_000}, "input_size=2000000"),
        ({"embedding_size": 9}, ["adapter.json: embedding_size=9", "keeps its input_size=8"]),
    ],
    ids=["hidden-huge", "hidden-tampered", "width-huge", "width-tampered"],
)
def test_declared_adapter_shapes_are_checked_before_anything_is_built(adapter, capsys, changes, contains):
    _edit_meta(adapter["ad"], **changes)
    expect_clean_failure(_apply(adapter), capsys, watched=[adapter["out"]], contains=contains)
    assert "--embedding-size" not in capsys.readouterr().err


def test_an_adapter_zip_entry_is_refused_by_its_declared_size_before_inflating(adapter, capsys) -> None:
    weights = adapter["ad"] / "adapter.pt"
    with zipfile.ZipFile(weights, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("archive/extra.bin", "w", force_zip64=True) as entry:
            block = bytes(1 << 20)
            for _ in range(64):  # 64 MB that deflate to 64 kB
                entry.write(block)
    contains = ["adapter.pt: entry 'archive/extra.bin' declares 67,108,864 bytes"]
    expect_clean_failure(_apply(adapter), capsys, watched=[adapter["out"]], contains=contains)


@pytest.mark.parametrize(
    ("option", "contains"),
    [
        (("--hidden", "100000"), "--hidden=100000: expected an integer in [1, 65536]"),
        (("--kind", "linear", "--embedding-size", "2000000"), "--embedding-size=2000000"),
    ],
)
def test_head_sizes_have_upper_bounds(adapter, capsys, option, contains) -> None:
    argv = ["adapt", "train", adapter["train"], "-o", adapter["out"] / "new", *FAST, *option]
    expect_clean_failure(argv, capsys, watched=[adapter["out"]], contains=contains)


def test_a_head_for_two_million_inputs_is_refused_before_it_is_built() -> None:
    from tcdml.adapt.head import check_head_size

    with pytest.raises(TcdmlInputError, match="dimension 2,000,000: an adapter takes at most 1,048,576"):
        check_head_size("residual", 2_000_000, 2_000_000, 512)


def _available(monkeypatch, nbytes: int) -> None:
    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=nbytes))


def test_parquet_is_checked_by_its_decoded_size_not_its_encoded_one(tmp_path, capsys, monkeypatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 1_000_000  # constant columns: a few kB encoded, 40 MB decoded
    table = pa.table({"label": np.zeros(rows, np.int64), **{f"e{i}": np.full(rows, 0.5) for i in range(4)}})
    path = tmp_path / "big.parquet"
    pq.write_table(table, path)
    assert path.stat().st_size < 100_000
    _available(monkeypatch, 50_000_000)
    expect_clean_failure(["evaluate", path], capsys, watched=[tmp_path], contains=["big.parquet", "need"])


def test_a_csv_table_is_checked_by_the_memory_its_reading_takes(tmp_path, capsys, monkeypatch) -> None:
    path = tmp_path / "short.csv"
    cells = np.random.default_rng(0).integers(0, 10, size=(100_000, 9))
    lines = [",".join(["label", *(f"e{i}" for i in range(8))])] + [",".join(map(str, row)) for row in cells]
    path.write_text("\n".join(lines) + "\n")  # 2 MB of 1-character cells: about 35 MB to read
    _available(monkeypatch, 10_000_000)
    expect_clean_failure(["evaluate", path], capsys, watched=[tmp_path], contains=["short.csv", "need"])


@pytest.mark.parametrize("loader", ["load_text_csv", "load_text_jsonl"])
def test_a_text_file_is_bounded_before_it_is_read(tmp_path, monkeypatch, loader: str) -> None:
    from tcdml.data import text_files

    path = tmp_path / "texts.txt"
    path.write_text("text,label\n" + "".join(f"live horses,{i % 5}\n" for i in range(50_000)))
    _available(monkeypatch, 5_000_000)
    with pytest.raises(TcdmlInputError, match=r"texts\.txt: its arrays need"):
        getattr(text_files, loader)(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [("[" * 100_000, "nested too deeply"), ('{"text": "a", "label": ' + "9" * 5000 + "}", "digit")],
)
def test_deep_or_huge_json_lines_are_one_line(tmp_path: Path, line: str, message: str) -> None:
    from tcdml.data.text_files import load_text_jsonl

    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "b", "label": 1}\n' + line + "\n")
    with pytest.raises(TcdmlInputError, match=f"line 2: .*{message}"):
        load_text_jsonl(path)


@pytest.mark.parametrize(
    ("content", "contains"),
    [
        ("[" * 100_000, "JSON nested too deeply"),
        ('{"threshold": ' + "1" * 5000 + "}", "not readable JSON"),
        ('{"pad": "' + "x" * (5 << 20) + '"}', "more than the 4.19 MB a calibration file may have"),
    ],
    ids=["deep", "digits", "large"],
)
def test_bad_calibration_json_is_one_line(adapter, tmp_path, capsys, content: str, contains: str) -> None:
    calibration = tmp_path / "t.json"
    calibration.write_text(content)
    argv = ["export", adapter["ad"], "--calibration", calibration, "-o", tmp_path / "served"]
    expect_clean_failure(argv, capsys, watched=[tmp_path / "served"], contains=["t.json", contains])


@pytest.mark.parametrize(
    ("content", "contains"),
    [("[" * 100_000, "nested too deeply"), ('{"format": ' + "1" * 5000 + "}", "not readable JSON")],
)
def test_bad_manifest_json_is_one_line(adapter, tmp_path, capsys, content: str, contains: str) -> None:
    from tcdml.deploy import load_matcher

    calibration = write_calibration(tmp_path / "t.json")
    assert (
        main(["export", str(adapter["ad"]), "--calibration", str(calibration), "-o", str(tmp_path / "s")])
        == 0
    )
    (tmp_path / "s" / "tcdml-export.json").write_text(content)
    with pytest.raises(TcdmlInputError, match=contains):
        load_matcher(tmp_path / "s")
