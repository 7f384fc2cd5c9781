"""Tiny copies of the four benchmarks in their published layouts, written into tmp_path (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.data.layouts import (
    CARS_CLASSES,
    CUB_CLASSES,
    INAT_TEST,
    INAT_TRAIN,
    SOP_TEST,
    SOP_TRAIN,
    write_image,
)


@pytest.fixture
def cub_root(tmp_path: Path) -> Path:
    """``tmp_path/CUB_200_2011`` with 3 images per class (15 images)."""
    root = tmp_path / "CUB_200_2011"
    images, labels = [], []
    image_id = 0
    for class_id, folder in CUB_CLASSES.items():
        for k in range(3):
            image_id += 1
            relative = f"{folder}/{folder.split('.')[1]}_{k:04d}.jpg"
            write_image(root / "images" / relative, seed=image_id)
            images.append(f"{image_id} {relative}")
            labels.append(f"{image_id} {class_id}")
    (root / "images.txt").write_text("\n".join(reversed(images)) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "classes.txt").write_text("\n".join(f"{k} {v}" for k, v in CUB_CLASSES.items()) + "\n")
    return root


@pytest.fixture
def cars_root(tmp_path: Path) -> Path:
    """``car_ims/`` + a real ``cars_annos.mat`` (the Stanford struct fields), 2 images per class."""
    from scipy.io import savemat

    root = tmp_path / "cars196"
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    annotations = np.zeros((1, 2 * len(CARS_CLASSES)), dtype=[(f, "O") for f in fields])
    for i, class_id in enumerate(np.repeat(CARS_CLASSES, 2)):
        relative = f"car_ims/{i + 1:06d}.jpg"
        write_image(root / relative, seed=i)
        annotations[0, i] = (relative, 1, 2, 10, 8, np.uint8(class_id), np.uint8(i % 2))
    class_names = np.empty((1, 196), dtype=object)
    class_names[0, :] = [f"Make Model {c}" for c in range(1, 197)]
    savemat(root / "cars_annos.mat", {"annotations": annotations, "class_names": class_names})
    return root


@pytest.fixture
def sop_root(tmp_path: Path) -> Path:
    """``tmp_path/Stanford_Online_Products`` with both ``Ebay_*.txt`` index files, 2 images per class."""
    root = tmp_path / "Stanford_Online_Products"
    image_id = 0
    for name, classes in (("Ebay_train.txt", SOP_TRAIN), ("Ebay_test.txt", SOP_TEST)):
        lines = ["image_id class_id super_class_id path"]
        for class_id, folder in classes.items():
            for k in range(2):
                image_id += 1
                relative = f"{folder}/{class_id}{k:05d}_{k}.JPG"
                write_image(root / relative, seed=image_id)
                lines.append(f"{image_id} {class_id} {len(folder) % 12 + 1} {relative}")
        (root / name).write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def inat_root(tmp_path: Path) -> Path:
    """``train_val2018/<super>/<id>/*.jpg`` + the Smooth-AP split lists in ``Inat_dataset_splits/``."""
    root = tmp_path / "inaturalist"
    (root / "Inat_dataset_splits").mkdir(parents=True)
    seed = 0
    for name, classes in (
        ("Inaturalist_train_set1.txt", INAT_TRAIN),
        ("Inaturalist_test_set1.txt", INAT_TEST),
    ):
        lines = []
        for key in classes:
            for _ in range(2):
                seed += 1
                relative = f"train_val2018/{key}/{seed:032x}.jpg"
                write_image(root / relative, seed=seed)
                lines.append(relative)
        (root / "Inat_dataset_splits" / name).write_text("\n".join(lines) + "\n")
    return root
