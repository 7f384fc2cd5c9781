"""Bad inputs to ``tcdml adapt train`` and ``tcdml adapt apply``: one line naming the file / option / value,
exit 2, and nothing written under the watched folder (``expect_clean_failure``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tcdml.cli.main import main
from tcdml.io.embeddings_file import save_embeddings_file
from tests.badinput.harness import expect_clean_failure
from tests.helpers import clustered_embeddings

X, Y = clustered_embeddings([12, 15, 10, 13, 11, 14, 9, 12], dim=8, spread=0.5, seed=3)
FAST = ["--epochs", "1", "--batch-size", "24", "--hidden", "8", "--no-progress"]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = tmp_path / "out"
    out.mkdir()
    made = {
        "out": out,
        "train": save_embeddings_file(tmp_path / "train.npz", X, Y),
        "one_class": save_embeddings_file(tmp_path / "one.npz", X[:15], np.r_[np.zeros(12, int), [1, 2, 3]]),
        "wide": save_embeddings_file(tmp_path / "wide.npz", np.hstack([X, X]), Y),
    }
    nan = X.copy()
    nan[7, 2] = np.nan
    made["nan"] = save_embeddings_file(tmp_path / "nan.npz", nan, Y)
    return made


def train_argv(files: dict[str, Path], *extra: str, source: str = "train") -> list[str]:
    return ["adapt", "train", str(files[source]), "-o", str(files["out"] / "ad"), *FAST, *extra]


@pytest.mark.parametrize(
    ("source", "extra", "contains"),
    [
        ("one_class", (), ["one.npz", "1 class(es) with >= 2 samples"]),
        ("one_class", ("--val", "{train}"), ["one.npz", "1 class(es) with >= 2 samples among 4"]),
        ("nan", (), ["nan.npz", "NaN", "row 7"]),
        ("train", ("--val", "{wide}"), ["--val", "wide.npz", "dimension 16, expected 8"]),
        ("train", ("--val", "{nan}"), ["nan.npz", "val embeddings", "row 7"]),
    ],
)
def test_bad_training_data(files, capsys, source, extra, contains) -> None:
    extra = [item.format(**{k: str(v) for k, v in files.items()}) for item in extra]
    argv = train_argv(files, *extra, source=source)
    expect_clean_failure(argv, capsys, watched=[files["out"]], contains=contains)


@pytest.mark.parametrize(
    ("extra", "contains"),
    [
        (("--epochs", "-1"), "--epochs=-1"),
        (("--lr", "0"), "--lr=0.0"),
        (("--lr", "nan"), "--lr=nan"),
        (("--batch-size", "18"), "--batch-size=18: expected a multiple of --m-per-class=4"),
        (
            ("--tcm", "--batch-size", "16"),
            ["train.npz", "--target-far=0.1", "4 classes x 4 samples per batch give 96 (P x --m-per-class)"],
        ),
        (("--m-per-class", "1"), "--m-per-class=1"),
        (("--hidden", "0"), "--hidden=0"),
        (("--val-ratio", "1.5"), "--val-ratio=1.5"),
        (("--kind", "mlp"), "'mlp' is not one of"),
        (("--select", "map"), "'map' is not one of"),
        (("--loss", "no_such_loss"), "--loss='no_such_loss': unknown loss"),
        (("--loss-param", "temperature"), "--loss-param='temperature': expected KEY=VALUE"),
        (("--loss-param", "bogus=1"), ["--loss='smooth_ap'", "bogus"]),
        (("--margin-pos", "0.8"), "--margin-pos=0.8: only with --margins fixed"),
        (("--margins", "fixed", "--target-far", "0.2"), "--target-far=0.2: only with --margins auto"),
        (("--no-tcm", "--lambda-pos", "2"), "--lambda-pos=2.0: a TCM option, but --no-tcm"),
        (("--target-far", "1.5"), "--target-far=1.5"),
        (("--target-far", "0.0001"), ["--target-far=0.0001", "P x --m-per-class"]),
        (("--embedding-size", "4"), "--embedding-size=4: a residual adapter keeps the input size 8"),
        (("--val-labels", "y.npy"), "--val-labels y.npy: only with --val"),
    ],
)
def test_bad_options(files, capsys, extra, contains) -> None:
    expect_clean_failure(train_argv(files, *extra), capsys, watched=[files["out"]], contains=contains)


def test_existing_output_folder(files, capsys) -> None:
    assert main(train_argv(files)) == 0
    folder = files["out"] / "ad"
    expect_clean_failure(
        train_argv(files), capsys, watched=[files["out"]], contains=[str(folder), "exists", "--force"]
    )
    data = files["out"] / "data"
    data.mkdir()
    (data / "keep.txt").write_text("mine")
    argv = ["adapt", "train", str(files["train"]), "-o", str(data), "--force", *FAST]
    expect_clean_failure(argv, capsys, watched=[files["out"]], contains=[str(data), "not an adapter folder"])
    argv = ["adapt", "train", str(files["train"]), "-o", str(files["out"] / "no" / "ad"), *FAST]
    expect_clean_failure(argv, capsys, watched=[files["out"]], contains="does not exist")


def test_bad_apply(files, capsys) -> None:
    assert main(train_argv(files)) == 0
    folder = str(files["out"] / "ad")
    result = str(files["out"] / "adapted.npz")
    cases = [
        ([folder, str(files["wide"])], ["wide.npz", "dimension 16, expected 8", "input_size"]),
        ([folder, str(files["nan"])], ["nan.npz", "row 7"]),
        ([str(files["out"]), str(files["train"])], [str(files["out"]), "adapter.json: no such file"]),
        ([folder, str(files["out"] / "absent.npz")], "absent.npz: no such file"),
    ]
    for args, contains in cases:
        argv = ["adapt", "apply", *args, "-o", result]
        expect_clean_failure(argv, capsys, watched=[files["out"]], contains=contains)
    argv = ["adapt", "apply", folder, str(files["train"]), "-o", str(files["train"])]
    expect_clean_failure(argv, capsys, watched=[files["out"], files["train"]], contains="would overwrite")


def test_a_validation_set_without_opis_needs_select_recall(tmp_path: Path, capsys) -> None:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    train, val = tmp_path / "train.npz", tmp_path / "val.npz"
    save_embeddings_file(train, x[:600].astype("float32"), y[:600])
    one = y == 3  # a single class: no negative pairs, so no OPIS to select by
    save_embeddings_file(val, x[one].astype("float32"), y[one])
    argv = ["adapt", "train", str(train), "--val", str(val), "-o", str(tmp_path / "adapter"), "--epochs", "1"]
    expect_clean_failure(
        argv, capsys, watched=[tmp_path], contains=["OPIS is undefined", "--select recall@1"]
    )


def test_force_never_replaces_a_folder_holding_an_input(tmp_path: Path, capsys) -> None:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter.json").write_text("{}")  # looks like an adapter folder...
    train = folder / "train.npz"  # ...but holds the training file
    save_embeddings_file(train, x[:300].astype("float32"), y[:300])
    argv = ["adapt", "train", str(train), "-o", str(folder), "--force", "--epochs", "1"]
    expect_clean_failure(argv, capsys, watched=[tmp_path], contains=["holds the input", str(train)])
    assert train.is_file()
