"""load_matcher: match and search against brute force at the threshold (faiss and numpy give the same
results), inputs vs precomputed embeddings, the manifest's hashes, and no training dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tcdml.deploy import load_matcher
from tcdml.errors import TcdmlInputError
from tcdml.export import export_module
from tests.deploy.helpers import reference, write_calibration

THRESHOLD = 0.8


@pytest.fixture(scope="module")
def digits_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module, np.ndarray]:
    """A linear adapter head (64 -> 16) over scikit-learn's real 8 x 8 digits, exported with threshold 0.8."""
    from sklearn.datasets import load_digits

    from tcdml.adapt import build_head

    torch.manual_seed(0)
    head = build_head("linear", 64, 16, None)
    with torch.no_grad():
        head.proj.weight.normal_(std=0.3)
    pixels = load_digits().data.astype(np.float32)[:300]
    folder = tmp_path_factory.mktemp("digits")
    export_module(
        head,
        torch.from_numpy(pixels[:2]),
        {"kind": "embedding", "input_size": 64},
        write_calibration(folder / "t.json", threshold=THRESHOLD),
        folder / "export",
    )
    return folder / "export", head, pixels


def brute_force(queries: np.ndarray, gallery: np.ndarray, threshold: float) -> list[list[int]]:
    """Each query's gallery rows with s >= threshold, by s descending then index (float64 product)."""
    sims = queries.astype(np.float64) @ gallery.astype(np.float64).T
    hits = []
    for row in sims:
        found = np.flatnonzero(row >= threshold)
        hits.append(sorted(found.tolist(), key=lambda j: (-row[j], j)))
    return hits


def test_search_and_match_equal_brute_force_and_faiss_equals_numpy(digits_export) -> None:
    folder, head, pixels = digits_export
    matcher = load_matcher(folder)
    queries, gallery = pixels[:100], pixels[100:]
    embedded_q, embedded_g = matcher.embed(queries), matcher.embed(gallery)
    sims = embedded_q.astype(np.float64) @ embedded_g.astype(np.float64).T
    assert np.abs(sims - THRESHOLD).min() > 1e-5  # no pair on the edge: the sets are well defined
    assert 0 < (sims >= THRESHOLD).mean() < 0.5

    by_numpy = matcher.search(queries, gallery, backend="numpy")
    by_faiss = matcher.search(queries, gallery, backend="faiss")
    for name in ("offsets", "indices", "similarities"):
        np.testing.assert_array_equal(getattr(by_numpy, name), getattr(by_faiss, name))
    expected = brute_force(embedded_q, embedded_g, THRESHOLD)
    assert [hits.indices.tolist() for hits in by_numpy] == expected
    for i, (indices, similarities) in enumerate(by_numpy):
        np.testing.assert_allclose(similarities, sims[i, indices], atol=1e-6)
        assert similarities.dtype == np.float32 and np.all(np.diff(similarities) <= 0)
    embedded = matcher.search(embedded_q, embedded_g, embedded=True)
    np.testing.assert_array_equal(embedded.indices, by_numpy.indices)

    accept, similarities = matcher.match(queries, gallery[:100])
    diagonal = np.einsum("ij,ij->i", embedded_q.astype(np.float64), embedded_g[:100].astype(np.float64))
    np.testing.assert_array_equal(accept, diagonal >= THRESHOLD)
    np.testing.assert_allclose(similarities, diagonal, atol=1e-6)
    again = matcher.match(embedded_q, embedded_g[:100], embedded=True)
    np.testing.assert_array_equal(again.accept, accept)
    # search and match agree on every pair: i's hit j exactly when match(i, j) accepts
    pairs = matcher.match(np.repeat(embedded_q[:5], 200, axis=0), np.tile(embedded_g, (5, 1)), embedded=True)
    for i in range(5):
        accepted = np.flatnonzero(pairs.accept[i * 200 : (i + 1) * 200])
        assert sorted(by_numpy[i].indices.tolist()) == accepted.tolist()
    assert np.abs(matcher.embed(pixels) - reference(head, pixels)).max() <= 1e-4
    assert json.loads(json.dumps(by_numpy.to_dict()))["threshold"] == THRESHOLD


def test_empty_and_bad_inputs(digits_export) -> None:
    folder, _, pixels = digits_export
    matcher = load_matcher(folder)
    assert matcher.embed(pixels[:0]).shape == (0, 16)
    assert len(matcher.search(pixels[:3], pixels[:0])) == 3
    with pytest.raises(TcdmlInputError, match=r"expected \(N, 64\)"):
        matcher.embed(pixels[:, :10])
    with pytest.raises(TcdmlInputError, match="L2-normalised"):
        matcher.match(np.ones((2, 16)), np.ones((2, 16)), embedded=True)
    with pytest.raises(TcdmlInputError, match="aligned pairs"):
        matcher.match(pixels[:2], pixels[:3])


def _copy(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "copy"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda f: f.joinpath("model.onnx").write_bytes(f.joinpath("model.onnx").read_bytes()[:-1] + b"x"),
            "sha256",
        ),
        (lambda f: f.joinpath("model.onnx").unlink(), "model.onnx: missing"),
        (lambda f: f.joinpath("tcdml-export.json").unlink(), "tcdml-export.json: missing"),
        (lambda f: f.joinpath("tcdml-export.json").write_text("{"), "not JSON"),
        (lambda f: _edit(f, threshold=1.5), "threshold=1.5"),
        (lambda f: _edit(f, input={"kind": "audio"}), "input.kind='audio'"),
        (lambda f: _edit(f, files={"../x": {"sha256": "0" * 64}}), "plain file name"),
    ],
    ids=["tampered", "missing-model", "no-manifest", "bad-json", "threshold", "kind", "path-escape"],
)
def test_a_damaged_folder_is_one_line_error(digits_export, tmp_path: Path, damage, message: str) -> None:
    folder = _copy(digits_export[0], tmp_path)
    damage(folder)
    with pytest.raises(TcdmlInputError, match=message) as caught:
        load_matcher(folder)
    assert "\n" not in str(caught.value)


def _edit(folder: Path, **changes) -> None:
    path = folder / "tcdml-export.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_serving_imports_no_training_dependencies(digits_export) -> None:
    folder = digits_export[0]
    code = (
        "import sys, numpy as np\n"
        "from tcdml.deploy import load_matcher\n"
        f"m = load_matcher({str(folder)!r})\n"
        "x = np.random.default_rng(0).normal(size=(4, 64)).astype(np.float32)\n"
        "m.search(x, x, backend='numpy'); m.match(x, x)\n"
        "heavy = ('torch', 'pytorch_lightning', 'lightning', 'timm', 'transformers', 'torchvision')\n"
        "print(','.join(name for name in heavy if name in sys.modules))\n"
    )
    assert _run(code) == ""


def test_without_onnxruntime_the_error_says_what_to_install(digits_export) -> None:
    code = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "from tcdml.deploy import load_matcher\nfrom tcdml.errors import TcdmlInputError\n"
        f"try:\n    load_matcher({str(digits_export[0])!r})\nexcept TcdmlInputError as exc:\n    print(exc)\n"
    )
    message = _run(code)
    assert "pip install 'tcdml[deploy]'" in message and "\n" not in message


@pytest.mark.parametrize(("key", "value"), [("pad_id", "x"), ("pad_id", -1), ("pad_token", 0)])
def test_a_malformed_text_contract_is_one_line(digits_export, key: str, value: object) -> None:
    from tcdml.deploy.manifest import MANIFEST_NAME, parse_manifest

    folder = digits_export[0]
    data = json.loads((folder / MANIFEST_NAME).read_text())
    data["input"] = {"kind": "text", "tokenizer": "tokenizer.json", "max_length": 8, key: value}
    with pytest.raises(TcdmlInputError, match=rf"input\.{key}"):
        parse_manifest(data, folder / MANIFEST_NAME)


def test_a_pinned_manifest_refuses_a_changed_threshold(digits_export, tmp_path: Path) -> None:
    import hashlib
    import shutil

    from tcdml.deploy.manifest import MANIFEST_NAME

    folder = digits_export[0]
    pin = hashlib.sha256((folder / MANIFEST_NAME).read_bytes()).hexdigest()
    assert load_matcher(folder, manifest_sha256=pin).threshold == pytest.approx(0.8)
    copy = shutil.copytree(folder, tmp_path / "served")
    data = json.loads((copy / MANIFEST_NAME).read_text())
    data["threshold"] = 0.1  # every model file intact: only the pin can tell
    (copy / MANIFEST_NAME).write_text(json.dumps(data))
    assert load_matcher(copy).threshold == pytest.approx(0.1)
    with pytest.raises(TcdmlInputError, match=r"tcdml-export.json: sha256 .* the pinned manifest_sha256"):
        load_matcher(copy, manifest_sha256=pin)


def test_a_search_with_every_pair_a_hit_gathers_candidates_in_blocks(monkeypatch) -> None:
    """Memory: the exact pass over 360,000 hits (D = 256) holds one block of gathered rows, not one copy of
    each hit's embeddings (which took ~2 GB); smaller blocks give the same result."""
    import tracemalloc

    from tcdml.deploy import similarity

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 256)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries, gallery = x[:600], x[600:]
    tracemalloc.start()
    try:
        found = similarity.search_embeddings(queries, gallery, -1.0, backend="numpy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(found.indices) == 600 * 600
    assert peak < 600 << 20, f"peak {peak / 2**20:.0f} MB"
    monkeypatch.setattr(similarity, "BLOCK_BYTES", 1 << 16)
    again = similarity.search_embeddings(queries, gallery, -1.0, backend="numpy")
    for name in ("offsets", "indices", "similarities"):
        np.testing.assert_array_equal(getattr(again, name), getattr(found, name))
