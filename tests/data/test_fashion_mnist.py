"""Fashion-MNIST from IDX files: parsing (gz and raw), validation errors, the Debian files, subsampling."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from tcdml.data import build_dataset, load_fashion_mnist
from tcdml.data.fashion_mnist import CLASS_NAMES, DEFAULT_ROOT, FILES, IMAGES_MAGIC, LABELS_MAGIC
from tcdml.errors import TcdmlInputError


def write_idx(path: Path, array: np.ndarray, magic: int, *, gz: bool) -> Path:
    """``array`` (uint8) as an IDX file: big-endian magic, one big-endian uint32 per dimension, the bytes."""
    data = (
        magic.to_bytes(4, "big") + np.asarray(array.shape, ">u4").tobytes() + array.astype(np.uint8).tobytes()
    )
    target = path.with_name(path.name + ".gz") if gz else path
    target.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return target


def write_fashion(root: Path, *, gz: bool, per_class: tuple[int, int] = (3, 2)) -> dict[str, np.ndarray]:
    """Tiny train (3 per class) and t10k (2 per class) files; returns the images written per split."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for (split, (images_name, labels_name)), count in zip(FILES.items(), per_class, strict=True):
        labels = np.repeat(np.arange(10, dtype=np.uint8), count)
        images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
        write_idx(root / images_name, images, IMAGES_MAGIC, gz=gz)
        write_idx(root / labels_name, labels, LABELS_MAGIC, gz=gz)
        written[split] = images
    return written


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_reads_idx_files(tmp_path: Path, gz: bool) -> None:
    written = write_fashion(tmp_path, gz=gz)
    train, test = (load_fashion_mnist(tmp_path, split) for split in ("train", "test"))
    assert (len(train), len(test)) == (30, 20)
    assert train.class_names == test.class_names == CLASS_NAMES
    np.testing.assert_array_equal(train.images, written["train"])
    np.testing.assert_array_equal(test.labels, np.repeat(np.arange(10), 2))
    image, label = test[3]
    assert image.mode == "RGB" and image.size == (28, 28) and label == 1
    assert str(test.paths[3]) == "fashion_mnist/test/00003"
    assert len(load_fashion_mnist(tmp_path, "all")) == 50


def test_max_per_class_is_a_fixed_nested_subsample(tmp_path: Path) -> None:
    write_fashion(tmp_path, gz=True)
    one, two = (load_fashion_mnist(tmp_path, "train", max_per_class=k) for k in (1, 2))
    assert np.bincount(one.labels).tolist() == [1] * 10 and np.bincount(two.labels).tolist() == [2] * 10
    assert set(one.paths) <= set(two.paths)
    assert load_fashion_mnist(tmp_path, "train", max_per_class=1).paths == one.paths
    assert len(build_dataset("fashion_mnist", tmp_path, "test", options={"max_per_class": 1})) == 10


def test_bad_magic_number(tmp_path: Path) -> None:
    write_fashion(tmp_path, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(20, np.uint8), IMAGES_MAGIC, gz=True)
    with pytest.raises(
        TcdmlInputError, match=r"t10k-labels-idx1-ubyte.gz has magic number 0x00000803, expected"
    ):
        load_fashion_mnist(tmp_path, "test")


def test_size_mismatch(tmp_path: Path) -> None:
    write_fashion(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])  # truncated
    with pytest.raises(
        TcdmlInputError, match=r"train-images-idx3-ubyte holds \d+ data bytes, expected 23520"
    ):
        load_fashion_mnist(tmp_path, "train")


def test_label_count_mismatch(tmp_path: Path) -> None:
    write_fashion(tmp_path, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(29, np.uint8), LABELS_MAGIC, gz=True)
    with pytest.raises(TcdmlInputError, match=r"30 images, but .* has 29 labels"):
        load_fashion_mnist(tmp_path, "train")


def test_missing_file_names_it_and_the_package(tmp_path: Path) -> None:
    write_fashion(tmp_path, gz=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(
        TcdmlInputError, match=r"'t10k-images-idx3-ubyte.gz'.*apt-get install dataset-fashion-mnist"
    ):
        load_fashion_mnist(tmp_path, "test")
    with pytest.raises(TcdmlInputError, match="expected a directory"):
        load_fashion_mnist(tmp_path / "absent", "test")


@pytest.mark.parametrize("kwargs", [{"split": "val"}, {"max_per_class": 0}])
def test_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(TcdmlInputError, match="fashion_mnist"):
        load_fashion_mnist(tmp_path, **kwargs)


@pytest.mark.skipif(
    not Path(DEFAULT_ROOT).is_dir(),
    reason=f"{DEFAULT_ROOT} is absent (apt-get install dataset-fashion-mnist)",
)
def test_the_debian_files() -> None:
    train, test = load_fashion_mnist(split="train"), load_fashion_mnist(None, "test")
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.images.shape[1:] == (28, 28)
    assert (
        np.bincount(train.labels).tolist() == [6000] * 10 and np.bincount(test.labels).tolist() == [1000] * 10
    )
