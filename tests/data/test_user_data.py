"""One's own data: a folder-per-class tree (split by folder or by the held-out-class rule) and a CSV file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcdml.data import build_dataset, load_csv, load_image_folder
from tcdml.errors import TcdmlInputError
from tests.data.layouts import write_image


def make_tree(root: Path, classes: list[str], per_class: int = 2) -> None:
    for c, name in enumerate(classes):
        for k in range(per_class):
            write_image(root / name / f"img{k}.png", seed=10 * c + k)


def test_folder_tree_held_out_classes(tmp_path: Path) -> None:
    make_tree(tmp_path, ["cat", "ant", "dog", "bee", "eel"])
    write_image(tmp_path / "ant" / "nested" / "deep.jpg")  # nested images belong to their class folder
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    (tmp_path / ".cache").mkdir()
    (tmp_path / "empty").mkdir()
    train = load_image_folder(tmp_path, "train")
    assert train.class_names == ("ant", "bee", "cat")  # ceil(5/2) = 3 first classes by name
    assert list(train.labels) == [0, 0, 0, 1, 1, 2, 2]
    assert load_image_folder(tmp_path, "test").class_names == ("dog", "eel")
    assert len(build_dataset("folder", tmp_path, "all")) == 11


def test_folder_tree_split_folders(tmp_path: Path) -> None:
    make_tree(tmp_path / "train", ["a", "b"])
    make_tree(tmp_path / "test", ["c"], per_class=3)
    assert load_image_folder(tmp_path, "train").class_names == ("a", "b")
    test = load_image_folder(tmp_path, "test")
    assert test.class_names == ("c",) and len(test) == 3
    assert load_image_folder(tmp_path, "all").num_classes == 3


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(TcdmlInputError, match=r"image folder: expected directory 'nope/' at"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "a").mkdir()
    with pytest.raises(TcdmlInputError, match=r"expected class folders with images at .*/<class>/<image>"):
        load_image_folder(tmp_path)
    make_tree(tmp_path / "train", ["a"])
    with pytest.raises(TcdmlInputError, match=r"expected directory 'test/' at"):
        load_image_folder(tmp_path, "test")


def test_csv_with_split_column(tmp_path: Path) -> None:
    for k in range(4):
        write_image(tmp_path / "imgs" / f"{k}.jpg", seed=k)
    (tmp_path / "list.csv").write_text(
        "label,path,split,comment\n10,imgs/0.jpg,train,x\n2,imgs/1.jpg,train,\n10,imgs/2.jpg,train,\n"
        "7,imgs/3.jpg,test,\n\n"
    )
    train = load_csv(tmp_path / "list.csv", "train")
    assert train.class_names == ("2", "10")  # integer labels sort as integers
    assert list(train.labels) == [1, 0, 1]
    assert train.paths[0] == tmp_path / "imgs" / "0.jpg"
    assert build_dataset("csv", tmp_path / "list.csv", "test").class_names == ("7",)


def test_csv_without_split_uses_held_out_classes(tmp_path: Path) -> None:
    rows = ["path,label"]
    for k, label in enumerate(["b", "a", "c", "a"]):
        write_image(tmp_path / "images" / f"{k}.png", seed=k)
        rows.append(f"{k}.png,{label}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    train = load_csv(tmp_path / "list.csv", "train", image_root=tmp_path / "images")
    assert train.class_names == ("a", "b") and len(train) == 3
    assert load_csv(tmp_path / "list.csv", "test", image_root=tmp_path / "images").class_names == ("c",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "file,label\nx.png,1\n",
            r"expected a header row with columns 'path,label\[,split\]', missing 'path'",
        ),
        ("path,label\n", "no rows after the header"),
        ("path,label,split\nx.png,1,val\n", r"line 2: split 'val', expected 'train' or 'test'"),
        ("path,label\nx.png,\n", "line 2: empty 'path' or 'label'"),
        ("path,label\nx.png,1\n", "CSV: expected image 'x.png' at"),
    ],
)
def test_csv_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "list.csv").write_text(text)
    with pytest.raises(TcdmlInputError, match=message):
        load_csv(tmp_path / "list.csv", "all")


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TcdmlInputError, match=r"CSV: expected file 'list.csv' at"):
        load_csv(tmp_path / "list.csv")
