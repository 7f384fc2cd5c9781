"""``text_csv`` and ``text_jsonl``: one's own labelled texts, read through ``build_dataset``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tcdml.data import TextListDataset, build_dataset
from tcdml.data.text_files import held_out_text_classes
from tcdml.errors import TcdmlInputError

ANIMALS = [("Pferd, lebend", "Tiere"), ("Kühe; Milch", "Tiere"), ("Äpfel", "Obst"), ("Birnen", "Obst")]
ANIMALS += [("Rosen", "Blumen"), ("Tulpen", "Blumen"), ("Katze", "Tiere"), ("Kirschen", "Obst")]


def write_csv(path: Path, rows: list[tuple[str, ...]], header: str, delimiter: str) -> Path:
    def cell(value: str) -> str:
        return f'"{value}"' if any(char in value for char in ",;\t|") else value

    lines = [header.replace(",", delimiter)] + [delimiter.join(cell(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("delimiter", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
def test_sniffed_delimiters_read_the_same_texts(tmp_path: Path, delimiter: str) -> None:
    path = write_csv(tmp_path / "texts.csv", ANIMALS, "text,label", delimiter)
    data = build_dataset("text_csv", path, "all")
    assert isinstance(data, TextListDataset) and data.modality == "text"
    assert data.texts == [text for text, _ in ANIMALS]  # UTF-8 kept, quoted delimiters inside texts
    assert data.class_names == ("Blumen", "Obst", "Tiere")  # string labels in sorted order
    assert list(data.labels) == [2, 2, 1, 1, 0, 0, 2, 1]
    assert [str(p) for p in data.paths][:2] == ["texts.csv:2", "texts.csv:3"]
    assert data[0] == ("Pferd, lebend", 2)


def test_held_out_classes_are_disjoint_seeded_and_cover_all(tmp_path: Path) -> None:
    rows = [(f"text {i}", f"class{i % 10}") for i in range(60)]
    path = write_csv(tmp_path / "texts.csv", rows, "text,label", ",")
    train, test = (build_dataset("text_csv", path, split) for split in ("train", "test"))
    assert set(train.class_names).isdisjoint(test.class_names)
    assert len(train.class_names) == 5 and len(test.class_names) == 5  # test_ratio 0.5
    assert len(train) + len(test) == 60
    assert sorted(train.texts + test.texts) == sorted(text for text, _ in rows)
    again = build_dataset("text_csv", path, "test")
    assert again.class_names == test.class_names and again.texts == test.texts
    options = {"test_ratio": 0.3, "seed": 7}
    other = [build_dataset("text_csv", path, "test", options=options) for _ in range(2)]
    assert len(other[0].class_names) == 3 and other[0].class_names == other[1].class_names
    seeds = {build_dataset("text_csv", path, "test", options={"seed": s}).class_names for s in range(5)}
    assert len(seeds) > 1  # the seed picks the held-out classes


def test_held_out_rule_keeps_a_class_on_each_side() -> None:
    for ratio in (0.01, 0.5, 0.99):
        rule = held_out_text_classes(["a", "b", "c"], ratio, seed=0)
        assert set(rule.values()) == {"train", "test"}
    rule = held_out_text_classes(list(range(9)), 0.5, seed=0)
    assert sum(part == "test" for part in rule.values()) == 4  # floor(9 x 0.5)


def test_split_column_and_integer_labels(tmp_path: Path) -> None:
    rows = [("eins", "10", "train"), ("zwei", "2", "train"), ("drei", "2", "test"), ("vier", "10", "test")]
    path = write_csv(tmp_path / "texts.csv", rows, "text,label,split", ";")
    train = build_dataset("text_csv", path, "train")
    assert train.texts == ["eins", "zwei"] and train.class_names == ("2", "10")  # integers sort as integers
    assert list(train.labels) == [1, 0]
    assert build_dataset("text_csv", path, "test").texts == ["drei", "vier"]
    with pytest.raises(TcdmlInputError, match="apply only without a 'split' column"):
        build_dataset("text_csv", path, "train", options={"seed": 1})


def test_id_column_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "texts.csv"
    path.write_text("\ufeffid,label,text\nA-1,x,eins\nA-2,x,zwei\nB-1,y,drei\nB-2,y,vier\n", encoding="utf-8")
    data = build_dataset("text_csv", path, "all")
    assert [str(p) for p in data.paths] == ["A-1", "A-2", "B-1", "B-2"]
    assert data.texts == ["eins", "zwei", "drei", "vier"]


def test_jsonl(tmp_path: Path) -> None:
    records = [{"text": t, "label": c, "extra": 1} for t, c in ANIMALS]
    path = tmp_path / "texts.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n\n", encoding="utf-8")
    data = build_dataset("text_jsonl", path, "all")
    assert data.texts == [t for t, _ in ANIMALS] and data.class_names == ("Blumen", "Obst", "Tiere")
    assert str(data.paths[2]) == "texts.jsonl:3"
    train, test = (build_dataset("text_jsonl", path, s) for s in ("train", "test"))
    assert set(train.class_names).isdisjoint(test.class_names) and len(train) + len(test) == len(ANIMALS)
    split = tmp_path / "split.jsonl"
    lines = [{"text": "a", "label": 1, "split": "train"}, {"text": "b", "label": 2, "split": "test"}]
    split.write_text("\n".join(map(json.dumps, lines)), encoding="utf-8")
    assert build_dataset("text_jsonl", split, "test").texts == ["b"]
    assert np.array_equal(build_dataset("text_jsonl", split, "all").labels, [0, 1])


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("label,body\nx,a\n", "texts.csv", "missing 'text'"),
        ("text,label\na,\n", "texts.csv", "line 2: empty 'label'"),
        ("text,label,split\na,x,val\n", "texts.csv", "line 2: split 'val'"),
        ("text,label\na,x\n", "texts.csv", "one class only"),
        ('{"text": "a", "label": 1}\n{"text": "b" "label": 2}\n', "texts.jsonl", "line 2: not JSON"),
        ('{"text": "a", "label": 1.5}\n', "texts.jsonl", "key 'label' is 1.5"),
        ('{"text": "a"}\n', "texts.jsonl", "line 1: missing key 'label'"),
    ],
)
def test_bad_rows_name_the_line(tmp_path: Path, content: str, name: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    dataset = "text_csv" if name.endswith(".csv") else "text_jsonl"
    with pytest.raises(TcdmlInputError, match=message):
        build_dataset(dataset, path, "all")


def test_options_are_checked(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "texts.csv", ANIMALS, "text,label", ",")
    with pytest.raises(TcdmlInputError, match=r"unknown option 'ratio' \(its options: test_ratio, seed\)"):
        build_dataset("text_csv", path, options={"ratio": 0.2})
    with pytest.raises(TcdmlInputError, match=r"test_ratio=1.5, expected a number in \(0, 1\)"):
        build_dataset("text_csv", path, options={"test_ratio": 1.5})
    with pytest.raises(TcdmlInputError, match="option seed='1'"):
        build_dataset("text_csv", path, options={"seed": "1"})


def test_integer_looking_labels_stay_distinct_classes(tmp_path: Path) -> None:
    path = tmp_path / "texts.csv"
    path.write_text("text,label,split\na,01,train\nb,1,train\nc,01,train\nd,1,train\ne,2,test\nf,2,test\n")
    data = build_dataset("text_csv", path, "train")
    assert sorted(data.class_names) == ["01", "1"] and len(set(data.labels.tolist())) == 2
    canonical = tmp_path / "numbers.csv"
    canonical.write_text(
        "text,label,split\na,10,train\nb,9,train\nc,10,train\nd,9,train\ne,2,test\nf,2,test\n"
    )
    assert list(build_dataset("text_csv", canonical, "train").class_names) == ["9", "10"]  # sorted as numbers
