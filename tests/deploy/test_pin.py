"""The pin holds on the bytes that run (issue 23, parts 1-3): files swapped between the hash and the use
(fault injection), links, FIFOs, unlisted external data, sizes, the pin's spelling, scale-invariant and
checked served inputs, and a manifest that must agree with its model."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from tcdml.adapt import apply_adapter, build_head
from tcdml.deploy import load_matcher
from tcdml.deploy import manifest as manifest_module
from tcdml.deploy.manifest import MANIFEST_NAME
from tcdml.errors import TcdmlInputError
from tcdml.export import export_module
from tests.deploy.helpers import write_calibration


def _export(folder: Path, width: int, threshold: float, seed: int) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(seed)
    head = build_head("linear", 64, width, None)
    with torch.no_grad():
        head.proj.weight.normal_(std=0.3)
    folder.mkdir(parents=True, exist_ok=True)
    calibration = write_calibration(folder / "t.json", threshold=threshold)
    example = torch.randn(2, 64, generator=torch.Generator().manual_seed(seed))
    export_module(head, example, {"kind": "embedding", "input_size": 64}, calibration, folder / "export",
                  format="both")  # fmt: skip
    return folder / "export", head


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("pin")
    good, head = _export(root / "good", 16, 0.4, 0)
    evil, _ = _export(root / "evil", 32, 0.99, 1)
    rows = np.random.default_rng(0).normal(size=(20, 64)).astype(np.float32)
    return {"good": good, "evil": evil, "head": head, "rows": rows}


def _pin(folder: Path) -> str:
    return hashlib.sha256((folder / MANIFEST_NAME).read_bytes()).hexdigest()


def _copy(folder: Path, tmp_path: Path, name: str = "served") -> Path:
    return Path(shutil.copytree(folder, tmp_path / name))


class _SwapAfterHash:
    """``hashlib`` for the manifest module whose ``after``-th digest, once computed, swaps ``names`` in the
    folder for the evil export's files: what is used after a hash must be what was hashed."""

    def __init__(self, folder: Path, evil: Path, names: list[str], after: int) -> None:
        self.folder, self.evil, self.names, self.left = folder, evil, names, after

    def sha256(self, *args):
        real = hashlib.sha256(*args)
        owner = self

        class Digest:
            def update(self, data) -> None:
                real.update(data)

            def hexdigest(self) -> str:
                owner.left -= 1
                if owner.left == 0:
                    owner.swap()
                return real.hexdigest()

        return Digest()

    def swap(self) -> None:
        for name in self.names:
            shutil.copyfile(self.evil / name, self.folder / f".{name}.swap")
            os.replace(self.folder / f".{name}.swap", self.folder / name)


def test_a_manifest_swapped_after_its_hash_is_not_the_one_used(exports, tmp_path, monkeypatch) -> None:
    folder = _copy(exports["good"], tmp_path)
    pin = _pin(folder)
    swapper = _SwapAfterHash(folder, exports["evil"], [MANIFEST_NAME], after=1)
    monkeypatch.setattr(manifest_module, "hashlib", swapper)
    matcher = load_matcher(folder, manifest_sha256=pin)
    monkeypatch.undo()
    assert _pin(folder) == _pin(exports["evil"])  # the swap did happen, right after the pin's check
    assert matcher.threshold == pytest.approx(0.4) and matcher.embedding_size == 16  # not the swapped 0.99


@pytest.mark.parametrize("backend", ["onnx", "torchscript"])
def test_models_swapped_after_their_hash_are_never_run(exports, tmp_path, monkeypatch, backend: str) -> None:
    folder = _copy(exports["good"], tmp_path)
    pin = _pin(folder)
    names = ["model.onnx", "model.pt"]
    monkeypatch.setattr(manifest_module, "hashlib", _SwapAfterHash(folder, exports["evil"], names, after=3))
    matcher = load_matcher(folder, manifest_sha256=pin, backend=backend)
    monkeypatch.undo()
    assert (folder / "model.pt").read_bytes() == (exports["evil"] / "model.pt").read_bytes()  # swapped
    expected = apply_adapter(exports["head"], exports["rows"])
    np.testing.assert_allclose(matcher.embed(exports["rows"]), expected, atol=1e-5)


def test_the_pin_may_be_any_case_with_whitespace_around(exports) -> None:
    pin = _pin(exports["good"])
    assert load_matcher(exports["good"], manifest_sha256=f"  {pin.upper()}\n").threshold == pytest.approx(0.4)
    with pytest.raises(TcdmlInputError, match="64 hex digits"):
        load_matcher(exports["good"], manifest_sha256="not-a-pin")


def test_links_leaving_the_folder_are_refused_before_reading(exports, tmp_path: Path) -> None:
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"x" * 1000)
    for name in (MANIFEST_NAME, "model.onnx"):
        folder = _copy(exports["good"], tmp_path, f"link-{name}")
        (folder / name).unlink()
        (folder / name).symlink_to(outside)
        with pytest.raises(TcdmlInputError, match=f"{name}: is a symbolic link") as caught:
            load_matcher(folder)
        assert "sha256" not in str(caught.value)  # nothing of the outside file was hashed or shown


def test_a_fifo_is_refused_without_hanging(exports, tmp_path: Path) -> None:
    for name in (MANIFEST_NAME, "model.onnx"):
        folder = _copy(exports["good"], tmp_path, f"fifo-{name}")
        (folder / name).unlink()
        os.mkfifo(folder / name)
        errors: list[BaseException] = []

        def load(folder: Path = folder, errors: list = errors) -> None:
            try:
                load_matcher(folder)
            except BaseException as exc:  # handed to the test's thread
                errors.append(exc)

        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), f"load_matcher hangs on a FIFO {name}"
        assert isinstance(errors[0], TcdmlInputError) and "pipe (FIFO)" in str(errors[0])


def _relist(folder: Path, name: str) -> None:
    """Make the manifest list ``name``'s current bytes (a folder re-signed by whoever edits it)."""
    data = json.loads((folder / MANIFEST_NAME).read_text())
    content = (folder / name).read_bytes()
    data["files"][name] = {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
    (folder / MANIFEST_NAME).write_text(json.dumps(data))


def test_unlisted_onnx_external_data_is_refused(exports, tmp_path: Path) -> None:
    import onnx

    folder = _copy(exports["good"], tmp_path)
    model = onnx.load(str(folder / "model.onnx"))
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True, location="weights.bin",
                    size_threshold=0)  # fmt: skip
    _relist(folder, "model.onnx")  # the manifest (and so its pin) covers model.onnx, not weights.bin
    with pytest.raises(TcdmlInputError, match=r"external data 'weights\.bin'"):
        load_matcher(folder, manifest_sha256=_pin(folder))


def test_a_size_that_differs_from_the_manifest_is_refused_before_hashing(exports, tmp_path, monkeypatch):
    folder = _copy(exports["good"], tmp_path)
    with open(folder / "model.onnx", "ab") as handle:
        handle.truncate(1 << 33)  # 8 GB, sparse
    monkeypatch.setattr(manifest_module, "hashlib", None)  # only the manifest's own check may hash
    with pytest.raises(TcdmlInputError, match=r"model.onnx: 8589934592 bytes, but tcdml-export.json lists"):
        load_matcher(folder)


@pytest.mark.parametrize("backend", ["onnx", "torchscript"])
def test_served_inputs_are_checked_and_scale_invariant_like_the_library(exports, backend: str) -> None:
    matcher = load_matcher(exports["good"], backend=backend)
    rows = exports["rows"].astype(np.float64)
    expected = apply_adapter(exports["head"], rows)
    for scale in (1e20, 1e-20, 1e-40, 1e200):
        scaled = rows * scale
        np.testing.assert_allclose(apply_adapter(exports["head"], scaled), expected, atol=1e-5)
        np.testing.assert_allclose(matcher.embed(scaled), expected, atol=1e-5)
    np.testing.assert_allclose(matcher.embed((rows * 1e-20).astype(np.float32)), expected, atol=1e-5)
    bad = rows[:6].copy()
    bad[[1, 4]] = 0.0
    with pytest.raises(TcdmlInputError, match=r"2 rows \(1, 4\) are all zero"):
        matcher.embed(bad)
    bad[1, 3], bad[4] = np.nan, np.inf
    with pytest.raises(TcdmlInputError, match=r"2 rows \(1, 4\) contain NaN or Inf"):
        matcher.embed(bad)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (32, "embedding_size=32"),
        (10**30, r"embedding_size=1000000000000000000000000000000, expected an integer"),
    ],
)
def test_an_edited_embedding_size_is_refused_at_load(exports, tmp_path, size: int, message: str) -> None:
    folder = _copy(exports["good"], tmp_path)
    data = json.loads((folder / MANIFEST_NAME).read_text())
    (folder / MANIFEST_NAME).write_text(json.dumps({**data, "embedding_size": size}))
    for backend in ("onnx", "torchscript"):
        with pytest.raises(TcdmlInputError, match=message):
            load_matcher(folder, backend=backend)


def test_a_model_of_another_width_is_refused_at_load(exports, tmp_path: Path) -> None:
    folder = _copy(exports["good"], tmp_path)
    for name in ("model.onnx", "model.pt"):
        shutil.copyfile(exports["evil"] / name, folder / name)
        _relist(folder, name)
    with pytest.raises(
        TcdmlInputError, match=r"graph output has shape \[.*32\], but the manifest says embedding_size=16"
    ):
        load_matcher(folder)
    with pytest.raises(TcdmlInputError, match=r"32,\)-wide outputs, but the manifest says embedding_size=16"):
        load_matcher(folder, backend="torchscript")


def test_an_unknown_provider_is_refused(exports) -> None:
    with pytest.raises(TcdmlInputError, match=r"providers=\['BogusProvider'\]: not available"):
        load_matcher(exports["good"], providers=["BogusProvider"])


def test_a_calibration_from_a_pipe_is_hashed_from_the_bytes_read(tmp_path: Path) -> None:
    from tcdml.export import read_calibration

    content = write_calibration(tmp_path / "t.json", threshold=0.3).read_bytes()
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write_end, content), os.close(write_end)))
    writer.start()
    try:
        record = read_calibration(f"/dev/fd/{read_end}")
    finally:
        writer.join()
        os.close(read_end)
    assert record.threshold == 0.3
    assert record.sha256 == hashlib.sha256(content).hexdigest() != hashlib.sha256(b"").hexdigest()


def test_a_threshold_at_or_below_zero_is_warned_about_in_one_line(tmp_path: Path, capsys) -> None:
    from tcdml.cli.main import main
    from tcdml.io.embeddings_file import save_embeddings_file

    rng = np.random.default_rng(0)  # no class structure at all: a 5 % FRR needs a threshold below 0
    data = save_embeddings_file(tmp_path / "noise.npz", rng.normal(size=(300, 8)), rng.integers(0, 10, 300))
    assert main(["calibrate", str(data), "--target-frr", "0.05", "-o", str(tmp_path / "t.json")]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert json.loads((tmp_path / "t.json").read_text())["threshold"] <= 0
    assert len(lines) == 1 and lines[0].startswith("tcdml: warning: threshold=")
    assert "orthogonal (unrelated) or closer is accepted" in lines[0]
    head = build_head("linear", 64, 16, None)
    calibration = write_calibration(tmp_path / "low.json", threshold=-0.2)
    with pytest.warns(UserWarning, match=r"threshold=-0\.2 <= 0"):
        export_module(head, torch.ones(2, 64), {"kind": "embedding", "input_size": 64}, calibration,
                      tmp_path / "export")  # fmt: skip
