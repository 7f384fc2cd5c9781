"""The docs/spec.md embedding file: round trip, missing keys, unreadable files, pickles refused."""

from __future__ import annotations

import numpy as np
import pytest

from tcdml.errors import TcdmlInputError
from tcdml.io import load_embeddings_file, save_embeddings_file


def test_round_trip(tmp_path) -> None:
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    path = save_embeddings_file(tmp_path / "e.npz", x, np.arange(5), is_query=np.ones(5, bool))
    data = load_embeddings_file(path)
    np.testing.assert_array_equal(data.embeddings, x)
    assert data.is_query.all() and data.is_gallery is None and data.ids is None


def test_missing_key_names_file_and_key(tmp_path) -> None:
    path = tmp_path / "e.npz"
    np.savez(path, embeddings=np.ones((3, 2)), targets=np.arange(3))
    with pytest.raises(
        TcdmlInputError, match=r"e.npz: missing array 'labels' \(found: embeddings, targets\)"
    ):
        load_embeddings_file(path)


def test_unreadable_and_missing_files(tmp_path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(TcdmlInputError, match=r"bad\.npz: cannot read as \.npz"):
        load_embeddings_file(bad)
    with pytest.raises(TcdmlInputError, match="no such file"):
        load_embeddings_file(tmp_path / "absent.npz")


def test_object_arrays_are_refused_not_unpickled(tmp_path) -> None:
    path = tmp_path / "pickled.npz"
    np.savez(path, embeddings=np.array([object()] * 3, dtype=object), labels=np.arange(3))
    with pytest.raises(TcdmlInputError, match=r"pickled\.npz: array .embeddings. holds Python objects"):
        load_embeddings_file(path)


def test_mask_shape_and_dtype(tmp_path) -> None:
    path = tmp_path / "m.npz"
    np.savez(path, embeddings=np.ones((3, 2)), labels=np.arange(3), is_query=np.ones(3))
    with pytest.raises(TcdmlInputError, match="'is_query' has dtype float64, expected bool"):
        load_embeddings_file(path)
    np.savez(path, embeddings=np.ones((3, 2)), labels=np.arange(3), is_gallery=np.ones(2, bool))
    with pytest.raises(TcdmlInputError, match=r"'is_gallery' has shape \(2,\), expected \(3,\)"):
        load_embeddings_file(path)
