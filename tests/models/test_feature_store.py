"""``FeatureStore``: a frozen encoder's features on disk, read by the next process, never used unchecked."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tcdml.errors import TcdmlInputError
from tcdml.models import CachedFeatures, ModelConfig, build_model, feature_cache
from tcdml.models.feature_store import (
    MERGE_FILES,
    FeatureStore,
    default_folder,
    encoder_key,
    file_digest,
    open_store,
    text_hashes,
)
from tests.models.test_feature_cache import CharEncoder, frozen

TEXTS = ["Horses; live", "Asses; live", "Fish; frozen", "crème brûlée"]


class WideCharEncoder(CharEncoder):
    num_features = 5


def new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new process starts with: no features in memory."""
    monkeypatch.setattr(feature_cache, "_SHARED", {})


def cached(encoder: nn.Module, folder: Path, **kwargs) -> CachedFeatures:
    return CachedFeatures(encoder, key=("char", str(folder)), store=FeatureStore(folder, **kwargs))


def key_of(encoder: nn.Module) -> str:
    return encoder_key(encoder, "cpu", None)


def only_file(folder: Path) -> Path:
    (path,) = sorted(folder.glob("features-*.npz"))
    return path


def test_a_second_process_encodes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    first = frozen(WideCharEncoder())
    expected = cached(first, tmp_path)(TEXTS)
    assert first.calls == [TEXTS] and len(list(tmp_path.glob("features-*.npz"))) == 1
    new_process(monkeypatch)
    second = copy.deepcopy(first)  # the same weights in other tensors: found by their hash
    second.calls.clear()
    torch.testing.assert_close(cached(second, tmp_path)(TEXTS[::-1]), expected.flip(0), rtol=0, atol=0)
    assert second.calls == []
    new_process(monkeypatch)
    third = copy.deepcopy(first)
    third.calls.clear()
    torch.testing.assert_close(cached(third, tmp_path)([*TEXTS, "Cod; dried"])[:4], expected)
    assert third.calls == [["Cod; dried"]]  # only the new text


def test_the_key_changes_with_the_weights_and_settings(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = frozen(WideCharEncoder())
    key = key_of(encoder)
    assert key == key_of(copy.deepcopy(encoder)) and key != encoder_key(encoder, "cuda", None)
    assert key != encoder_key(encoder, "cpu", torch.bfloat16)
    with torch.no_grad():
        encoder.linear.bias.add_(1.0)
    assert key_of(encoder) != key  # hashed again: the version counter moved
    before = cached(encoder, tmp_path)(TEXTS)
    with torch.no_grad():
        encoder.linear.bias.add_(1.0)
    encoder.calls.clear()
    after = CachedFeatures(encoder, key=("other",), store=FeatureStore(tmp_path))(TEXTS)
    assert encoder.calls == [TEXTS] and not torch.allclose(before, after)
    torch.testing.assert_close(after, encoder(TEXTS))


def poison_shape(path: Path, key: str) -> None:
    with np.load(path) as data:
        hashes, features = data["text_sha256"], data["features"]
    wide = np.concatenate([features, features[:, :1]], axis=1)  # a consistent file of the wrong width
    np.savez(
        path, key=np.array(key), text_sha256=hashes, features=wide, digest=file_digest(key, hashes, wide)
    )
    path.rename(path.with_name(f"{path.name[:26]}{file_digest(key, hashes, wide)[:16]}.npz"))


def poison_rows(path: Path, key: str) -> None:
    with np.load(path) as data:
        hashes, features, digest = data["text_sha256"], data["features"], data["digest"]
    np.savez(path, key=np.array(key), text_sha256=hashes[::-1], features=features, digest=digest)


def poison_dtype(path: Path, key: str) -> None:
    with np.load(path) as data:
        members = {name: data[name] for name in data.files}
    np.savez(path, **{**members, "features": members["features"].astype(np.float64)})


def poison_key(path: Path, key: str) -> None:
    with np.load(path) as data:
        members = {name: data[name] for name in data.files}
    np.savez(path, **{**members, "key": np.array("0" * 64)})  # another encoder's file under this name


def poison_bytes(path: Path, key: str) -> None:
    with np.load(path) as data:
        features = data["features"].tobytes()
    raw = bytearray(path.read_bytes())
    raw[raw.find(features) + 5] ^= 0x01  # one flipped bit inside the features: the zip CRC catches it
    path.write_bytes(bytes(raw))


def poison_pickle(path: Path, key: str) -> None:
    with np.load(path) as data:
        members = {name: data[name] for name in data.files}
    np.savez(path, **{**members, "features": np.array([object()] * 4, dtype=object)})


@pytest.mark.parametrize(
    "poison", [poison_shape, poison_rows, poison_dtype, poison_key, poison_bytes, poison_pickle]
)
def test_a_damaged_or_foreign_file_is_never_used(tmp_path: Path, monkeypatch, capsys, poison) -> None:
    torch.manual_seed(0)
    encoder = frozen(WideCharEncoder())
    expected = cached(encoder, tmp_path)(TEXTS)
    poison(only_file(tmp_path), key_of(encoder))
    new_process(monkeypatch)
    encoder.calls.clear()
    capsys.readouterr()
    torch.testing.assert_close(cached(encoder, tmp_path)(TEXTS), expected, rtol=0, atol=0)
    assert encoder.calls == [TEXTS]  # encoded again, not read
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tcdml: note: feature cache") and "damaged" in lines[0]
    assert len(list(tmp_path.glob("features-*.npz"))) == 1  # the bad file removed, a good one written
    new_process(monkeypatch)
    encoder.calls.clear()
    cached(encoder, tmp_path)(TEXTS)
    assert encoder.calls == [] and capsys.readouterr().err == ""


def test_a_foreign_file_renamed_into_the_key_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    torch.manual_seed(0)
    one, other = frozen(WideCharEncoder()), frozen(WideCharEncoder())
    cached(other, tmp_path / "other")(TEXTS)
    foreign = only_file(tmp_path / "other")
    tmp_path.joinpath(f"features-{key_of(one)[:16]}-{foreign.name[26:]}").write_bytes(foreign.read_bytes())
    torch.testing.assert_close(cached(one, tmp_path)(TEXTS), one(TEXTS))
    assert "written for another encoder key" in capsys.readouterr().err


def test_size_is_bounded_least_recently_used_first(tmp_path: Path, monkeypatch) -> None:
    torch.manual_seed(0)
    encoder = frozen(WideCharEncoder())
    (tmp_path / "notes.txt").write_text("not the store's")  # never removed
    store = FeatureStore(tmp_path, max_bytes=10**9)
    key = key_of(encoder)
    paths = [store.save(key, [text], encoder([text])) for text in TEXTS]
    for age, path in enumerate(paths):
        os.utime(path, (1000.0 + age, 1000.0 + age))
    store.lookup(key, [TEXTS[0]], 5)  # used now: the most recent
    store.max_bytes = sum(path.stat().st_size for path in paths[:2]) + 10
    removed = store.evict()
    assert removed == paths[1:3]
    assert sorted(tmp_path.iterdir()) == sorted([paths[0], paths[3], tmp_path / "notes.txt"])
    assert set(FeatureStore(tmp_path).lookup(key, TEXTS, 5)) == {TEXTS[0], TEXTS[3]}


def test_many_small_files_are_merged(tmp_path: Path) -> None:
    encoder = frozen(WideCharEncoder())
    store, key = FeatureStore(tmp_path), key_of(encoder)
    texts = [f"text {index}" for index in range(MERGE_FILES + 2)]
    for text in texts:
        store.save(key, [text], encoder([text]))
    found = FeatureStore(tmp_path).lookup(key, texts, 5)
    assert len(list(tmp_path.glob("features-*.npz"))) == 1
    torch.testing.assert_close(torch.stack([found[text] for text in texts]), encoder(texts))


def test_bad_folders_are_named(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(TcdmlInputError, match=r"data.feature_cache: .*file is a file, expected a folder"):
        open_store(tmp_path / "file")
    with pytest.raises(TcdmlInputError, match="is a file"):
        FeatureStore(tmp_path / "file" / "below")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(TcdmlInputError, match=re.escape(f"--feature-cache: {tmp_path} is not writable")):
        open_store(tmp_path / "new", what="--feature-cache")
    monkeypatch.setenv("TCDML_CACHE", str(tmp_path))  # the default folder is not writable: a note, no store
    assert open_store(True) is None and "features are not kept on disk" in capsys.readouterr().err
    assert open_store(False) is None and list(tmp_path.iterdir()) == [tmp_path / "file"]


def test_default_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TCDML_CACHE", str(tmp_path))
    assert default_folder() == tmp_path / "features" and open_store(True).folder == tmp_path / "features"
    monkeypatch.delenv("TCDML_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_folder() == tmp_path / "xdg" / "tcdml" / "features"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_folder() == Path.home() / ".cache" / "tcdml" / "features"
    hashes = text_hashes(["a", "b", "a"])
    assert hashes.shape == (3, 32) and (hashes[0] == hashes[2]).all() and not (hashes[0] == hashes[1]).all()


def test_frozen_minilm_reads_the_features_another_process_wrote(tmp_path: Path, monkeypatch) -> None:
    config = ModelConfig(backbone="minilm_l6", embedding_size=8, trainable_blocks=0)
    new_process(monkeypatch)  # nothing from other tests in memory
    first = build_model(config, feature_cache=str(tmp_path)).eval()
    expected = first.feature_cache(TEXTS)
    torch.testing.assert_close(expected, first.backbone(TEXTS))
    new_process(monkeypatch)
    second = build_model(config, feature_cache=str(tmp_path)).eval()
    monkeypatch.setattr(second.backbone, "encode", lambda texts: pytest.fail(f"re-encoded {texts}"))
    torch.testing.assert_close(second.feature_cache(TEXTS), expected, rtol=0, atol=0)
    settings = second.backbone.feature_settings()
    second.backbone.max_length = 16  # another token limit: other features, another key
    assert second.backbone.feature_settings() != settings
    assert key_of(second.backbone) != key_of(first.backbone)
