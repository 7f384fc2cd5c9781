"""The four benchmark loaders on tiny trees in their published layouts: parsing, split rules, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tcdml.data import (
    build_dataset,
    build_transform,
    load_cars196,
    load_cub200,
    load_inaturalist2018,
    load_sop,
)
from tcdml.data.transforms import TransformConfig
from tcdml.errors import TcdmlInputError
from tests.data.layouts import (
    CARS_CLASSES,
    CUB_CLASSES,
    INAT_TEST,
    INAT_TRAIN,
    SOP_TEST,
    SOP_TRAIN,
    write_image,
)


def check_labels(dataset, expected_names: list[str], per_class: int) -> None:
    """Labels are 0..C-1 in sorted class order, each class with ``per_class`` images that exist."""
    assert list(dataset.class_names) == expected_names
    assert dataset.labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(dataset.labels), [per_class] * len(expected_names))
    assert all(path.is_file() for path in dataset.paths)


def test_cub_split_by_class_id(cub_root: Path) -> None:
    train = load_cub200(cub_root, "train")
    test = load_cub200(cub_root, "test")
    check_labels(train, [CUB_CLASSES[k] for k in (1, 2, 100)], 3)
    check_labels(test, [CUB_CLASSES[k] for k in (101, 200)], 3)
    assert all(CUB_CLASSES[101] in str(p) or CUB_CLASSES[200] in str(p) for p in test.paths)
    assert len(load_cub200(cub_root, "all")) == 15
    # The folder holding CUB_200_2011/ works too (what unpacking the archive gives).
    assert load_cub200(cub_root.parent, "test").paths == test.paths


def test_cub_items_and_transform(cub_root: Path) -> None:
    image, label = load_cub200(cub_root, "test")[4]
    assert image.mode == "RGB" and image.size == (12, 9) and label == 1
    dataset = load_cub200(
        cub_root, "train", transform=build_transform(TransformConfig(image_size=8), train=False)
    )
    tensor, label = dataset[0]
    assert tensor.shape == (3, 8, 8) and tensor.dtype == torch.float32 and label == 0


@pytest.mark.parametrize("missing", ["images.txt", "image_class_labels.txt"])
def test_cub_missing_file_names_it(cub_root: Path, missing: str) -> None:
    (cub_root / missing).unlink()
    with pytest.raises(TcdmlInputError, match=f"CUB-200-2011: expected file '{missing}' at .*{missing}"):
        load_cub200(cub_root)


def test_cub_bad_rows_and_missing_images(cub_root: Path) -> None:
    (cub_root / "image_class_labels.txt").write_text("1 one\n")
    with pytest.raises(
        TcdmlInputError, match=r"image_class_labels.txt, line 1: expected an integer, got 'one'"
    ):
        load_cub200(cub_root)
    (cub_root / "image_class_labels.txt").write_text("1 1\n")
    with pytest.raises(TcdmlInputError, match=r"image id 2 .* has no class"):
        load_cub200(cub_root)
    (cub_root / "images.txt").write_text("1 001.Black_footed_Albatross/nowhere.jpg\n")
    with pytest.raises(TcdmlInputError, match=r"expected image 'nowhere.jpg' at .*images/001"):
        load_cub200(cub_root)


def test_cars_split_by_class_ignores_test_flag(cars_root: Path) -> None:
    train = load_cars196(cars_root, "train")
    test = load_cars196(cars_root, "test")
    check_labels(train, [f"Make Model {c}" for c in CARS_CLASSES if c <= 98], 2)
    check_labels(test, [f"Make Model {c}" for c in CARS_CLASSES if c > 98], 2)
    assert [p.name for p in test.paths] == ["000007.jpg", "000008.jpg", "000009.jpg", "000010.jpg"]
    assert build_dataset("cars196", cars_root, "all").num_classes == len(CARS_CLASSES)


def test_cars_errors(cars_root: Path) -> None:
    (cars_root / "car_ims" / "000001.jpg").unlink()
    with pytest.raises(TcdmlInputError, match=r"Cars-196: expected image '000001.jpg' at .*car_ims"):
        load_cars196(cars_root)
    (cars_root / "cars_annos.mat").write_bytes(b"not a MATLAB file at all")
    with pytest.raises(TcdmlInputError, match=r"cannot read .*cars_annos.mat as a MATLAB file"):
        load_cars196(cars_root)
    (cars_root / "cars_annos.mat").unlink()
    with pytest.raises(TcdmlInputError, match=r"Cars-196: expected file 'cars_annos.mat' at .*cars196"):
        load_cars196(cars_root)


def test_cars_missing_field(cars_root: Path) -> None:
    from scipy.io import savemat

    savemat(cars_root / "cars_annos.mat", {"annotations": np.zeros(3), "class_names": np.array(["a"])})
    with pytest.raises(TcdmlInputError, match=r"'annotations' has no field 'relative_im_path'"):
        load_cars196(cars_root)


def test_sop_given_split(sop_root: Path) -> None:
    train = load_sop(sop_root, "train")
    test = load_sop(sop_root.parent, "test")
    check_labels(train, [str(k) for k in SOP_TRAIN], 2)
    check_labels(test, [str(k) for k in SOP_TEST], 2)
    assert len(load_sop(sop_root, "all")) == 10
    (sop_root / "Ebay_test.txt").unlink()
    assert len(load_sop(sop_root, "train")) == 6  # only the requested split's file is needed
    with pytest.raises(TcdmlInputError, match=r"expected file 'Ebay_test.txt' at .*Stanford_Online_Products"):
        load_sop(sop_root, "test")


def test_sop_bad_row(sop_root: Path) -> None:
    with (sop_root / "Ebay_train.txt").open("a") as handle:
        handle.write("99 7 bicycle_final/x.JPG\n")
    with pytest.raises(TcdmlInputError, match=r"Ebay_train.txt, line 8: expected 4 fields, got 3"):
        load_sop(sop_root)


def test_inaturalist_smooth_ap_split(inat_root: Path) -> None:
    train = load_inaturalist2018(inat_root, "train")
    test = load_inaturalist2018(inat_root, "test")
    check_labels(train, sorted(INAT_TRAIN), 2)
    check_labels(test, sorted(INAT_TEST), 2)
    assert not set(train.paths) & set(test.paths)
    assert load_inaturalist2018(inat_root, "all").num_classes == 5


def test_inaturalist_lists_in_root_and_errors(inat_root: Path) -> None:
    for path in (inat_root / "Inat_dataset_splits").iterdir():
        path.rename(inat_root / path.name)
    assert len(load_inaturalist2018(inat_root, "test")) == 4
    (inat_root / "Inaturalist_test_set1.txt").write_text("Plantae/x.jpg\n")
    with pytest.raises(TcdmlInputError, match=r"line 1: expected '.../<supercategory>/<id>/<image>'"):
        load_inaturalist2018(inat_root, "test")
    (inat_root / "Inaturalist_train_set1.txt").unlink()
    with pytest.raises(
        TcdmlInputError, match=r"expected file 'Inaturalist_train_set1.txt' at .*Inat_dataset_splits"
    ):
        load_inaturalist2018(inat_root, "train")


def test_bad_split_name_dataset_name_and_unreadable_image(cub_root: Path) -> None:
    with pytest.raises(TcdmlInputError, match=r"unknown split 'val' .*train, test, all"):
        load_cub200(cub_root, "val")
    with pytest.raises(TcdmlInputError, match=r"unknown dataset 'cub' .*cub200"):
        build_dataset("cub", cub_root)
    with pytest.raises(TcdmlInputError, match=r"expected a directory at"):
        load_cub200(cub_root / "nope")
    dataset = load_cub200(cub_root, "train")
    dataset.paths[0].write_bytes(b"truncated")
    with pytest.raises(TcdmlInputError, match=f"cannot read image .*{dataset.paths[0].name}"):
        dataset[0]
    write_image(dataset.paths[0])
    assert dataset[0][1] == 0
