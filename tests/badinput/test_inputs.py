"""Bad inputs to ``evaluate``, ``calibrate`` and ``embed`` (files, arrays, options) and to the Python API.

Each CLI row runs through ``expect_clean_failure``: exit 2, one ``tcdml: error:`` line, and nothing written
under the output folder that the argv names. Library rows expect one ``TcdmlInputError``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tcdml.errors import TcdmlInputError
from tcdml.io.yaml_file import MAX_ALIAS_EXPANSION, load_yaml_text, read_yaml_mapping
from tcdml.training.checkpoint import read_checkpoint
from tests.badinput.harness import expect_clean_failure
from tests.helpers import clustered_embeddings

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
X, Y = clustered_embeddings([12, 15, 10, 13], dim=8, spread=[0.3, 0.6, 0.9, 0.5], seed=1)
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcde", "bcdef", strict=True)
)


class NotATensor:
    """A class a checkpoint may name but ``weights_only`` loading must refuse."""


def npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path.with_suffix(".npz") if path.suffix != ".npz" else path


def with_row(value: float, row: int = 3) -> np.ndarray:
    x = X.copy()
    x[row] = value
    return x


def forged(path: Path, shape: tuple[int, ...], data: bytes = b"\0" * 64) -> Path:
    """An .npz whose 'embeddings' header claims ``shape`` (float32) over ``data``."""
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("embeddings.npy", "w") as member:
            header = {"descr": "<f4", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(member, header)
            member.write(data)
        with archive.open("labels.npy", "w") as member:
            np.save(member, Y)
    return path


def flipped(path: Path, needle: bytes) -> Path:
    """``path`` with one byte flipped inside the first occurrence of ``needle`` (a CRC-damaged member)."""
    data = bytearray(path.read_bytes())
    at = data.index(needle) + len(needle) // 2
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


# name -> (make the input file under a folder, text the error must contain)
BAD_FILES = {
    "missing": (lambda d: d / "absent.npz", "absent.npz: no such file"),
    "directory": (lambda d: (d / "adir.npz").mkdir() or d / "adir.npz", "is a directory"),
    "fifo": (lambda d: os.mkfifo(d / "pipe.npz") or d / "pipe.npz", "not a regular file"),
    "npy_as_npz": (
        lambda d: (np.save(d / "one.npy", X), (d / "one.npy").rename(d / "one.npz"))[1],
        "a single .npy array",
    ),
    "text": (lambda d: (d / "t.npz").write_text("hello") and d / "t.npz", "not a zip archive"),
    "truncated": (
        lambda d: (
            (d / "cut.npz").write_bytes(npz(d / "full.npz", embeddings=X, labels=Y).read_bytes()[:900])
            and d / "cut.npz"
        ),
        "cut.npz: cannot read as .npz",
    ),
    "empty_archive": (lambda d: npz(d / "e.npz", other=np.ones(2)), "missing array 'embeddings'"),
    "no_labels": (lambda d: npz(d / "e.npz", embeddings=X), "missing array 'labels'"),
    "string_embeddings": (lambda d: npz(d / "e.npz", embeddings=X.astype(str), labels=Y), "dtype <U"),
    "object_embeddings": (
        lambda d: npz(d / "e.npz", embeddings=np.array([None] * len(Y), dtype=object), labels=Y),
        "holds Python objects",
    ),
    "complex_embeddings": (lambda d: npz(d / "e.npz", embeddings=X + 1j, labels=Y), "dtype complex"),
    "bool_embeddings": (lambda d: npz(d / "e.npz", embeddings=X > 0, labels=Y), "dtype bool"),
    "structured_embeddings": (
        lambda d: npz(d / "e.npz", embeddings=np.zeros((len(Y), 2), dtype="f4,f4"), labels=Y),
        "array 'embeddings' has dtype",
    ),
    "1d_embeddings": (lambda d: npz(d / "e.npz", embeddings=X[:, 0], labels=Y), "expected 2-D"),
    "3d_embeddings": (lambda d: npz(d / "e.npz", embeddings=X[:, :, None], labels=Y), "expected 2-D"),
    "empty_embeddings": (
        lambda d: npz(d / "e.npz", embeddings=np.zeros((0, 8), "f4"), labels=np.zeros(0, int)),
        "empty array",
    ),
    "float_labels": (lambda d: npz(d / "e.npz", embeddings=X, labels=Y + 0.5), "integer class labels"),
    "string_labels": (lambda d: npz(d / "e.npz", embeddings=X, labels=Y.astype(str)), "integer class"),
    "2d_labels": (lambda d: npz(d / "e.npz", embeddings=X, labels=Y[:, None]), "expected 1-D"),
    "short_labels": (lambda d: npz(d / "e.npz", embeddings=X, labels=Y[:-1]), "like 'embeddings'"),
    "nan_row": (lambda d: npz(d / "e.npz", embeddings=with_row(np.nan), labels=Y), "row 3"),
    "inf_row": (lambda d: npz(d / "e.npz", embeddings=with_row(np.inf), labels=Y), "row 3"),
    "zero_row": (lambda d: npz(d / "e.npz", embeddings=with_row(0.0), labels=Y), "all-zero row(s)"),
    "single_class": (lambda d: npz(d / "e.npz", embeddings=X, labels=0 * Y), "a single class"),
    "singletons": (lambda d: npz(d / "e.npz", embeddings=X, labels=np.arange(len(Y))), "singletons"),
    "float_mask": (
        lambda d: npz(d / "e.npz", embeddings=X, labels=Y, is_query=np.ones(len(Y))),
        "'is_query' has dtype float64",
    ),
    "short_mask": (
        lambda d: npz(d / "e.npz", embeddings=X, labels=Y, is_gallery=np.ones(3, bool)),
        "'is_gallery' has shape (3,)",
    ),
    "empty_mask": (
        lambda d: npz(d / "e.npz", embeddings=X, labels=Y, is_query=np.zeros(len(Y), bool)),
        "selects no sample",
    ),
    "short_ids": (lambda d: npz(d / "e.npz", embeddings=X, labels=Y, ids=np.arange(3)), "'ids' has shape"),
    "huge_header": (lambda d: forged(d / "f.npz", (10**12, 10**6)), "damaged or forged header"),
    "header_beyond_data": (lambda d: forged(d / "f.npz", (1000, 8)), "holds 64 bytes"),
    "crc_damaged": (
        lambda d: flipped(npz(d / "c.npz", embeddings=X, labels=Y), X[20].tobytes()),
        "c.npz: cannot read as .npz (Bad CRC-32",
    ),
}

# name -> (options, text): evaluate's numeric options, each wrong in one way
BAD_EVALUATE_OPTIONS = {
    "thresholds_billion": (["--thresholds", "1000000000"], "at most 100,000"),
    "thresholds_one": (["--thresholds", "1"], "at least 2"),
    "thresholds_negative": (["--thresholds", "-5"], "thresholds=-5"),
    "thresholds_word": (["--thresholds", "many"], "--thresholds"),
    "bins_zero": (["--bins", "0"], "num_bins=0"),
    "bins_negative": (["--bins", "-16"], "num_bins=-16"),
    "bins_huge": (["--bins", "99999999999"], "num_bins=99999999999"),
    "eps_nan": (["--eps", "nan"], "eps=nan"),
    "eps_zero": (["--eps", "0"], "eps=0.0"),
    "eps_above_one": (["--eps", "1.5"], "eps=1.5"),
    "beta_inf": (["--beta", "inf"], "beta=inf"),
    "beta_nan": (["--beta", "nan"], "beta=nan"),
    "beta_negative": (["--beta", "-1"], "beta=-1.0"),
    "far_min_nan": (["--far-min", "nan"], "far_min=nan"),
    "far_range_reversed": (["--far-min", "0.5", "--far-max", "0.1"], "must be smaller"),
    "far_max_one": (["--far-max", "1"], "far_max=1.0"),
    "far_min_negative": (["--far-min", "-0.1"], "far_min=-0.1"),
    "far_max_inf": (["--far-max", "inf"], "far_max=inf"),
    "k_zero": (["--k", "0"], "positive integers"),
    "k_empty": (["--k", ""], "positive integers"),
    "k_fraction": (["--k", "1.5"], "positive integers"),
    "k_words": (["--k", "a,b"], "positive integers"),
    "k_negative": (["--k", "1,-3"], "positive integers"),
    "k_too_large": (["--k", "100000"], "larger than the"),
    "threshold_nan": (["--threshold", "nan"], "threshold=nan"),
    "threshold_above_one": (["--threshold", "2"], "threshold=2.0"),
    "device_unknown": (["--device", "bogus"], "not a torch device name"),
    "device_xla": (["--device", "xla"], "expected cpu, cuda"),
    "cuda_without_cuda": pytest.param(["--device", "cuda"], "CUDA is not available", marks=NO_CUDA),
    "fmr_zero": (["--fmr", "0,1e-3"], "--fmr: 0.0 is not a rate in (0, 1)"),
    "fmr_one": (["--fmr", "1e-3,1"], "--fmr: 1.0 is not a rate in (0, 1)"),
    "fmr_negative": (["--fmr", "-1e-3"], "--fmr: -0.001 is not a rate"),
    "fmr_nan": (["--fmr", "nan"], "--fmr: nan is not a rate"),
    "fmr_twice": (["--fmr", "1e-3,0.001"], "--fmr: 0.001 is given twice"),
    "fmr_too_many": (["--fmr", ",".join(f"{i / 100}" for i in range(1, 22))], "--fmr: 21 targets"),
    "fmr_words": (["--fmr", "low"], "--fmr='low'"),
    "fmr_empty": (["--fmr", ""], "--fmr=[]"),
    "bins_too_coarse": (["--bins", "1024"], "num_bins=1024 is too coarse for fmr=0.0001"),
    "bins_too_coarse_for_fmr": (["--bins", "512", "--fmr", "1e-3"], "use num_bins >= 1,000"),
}

BAD_CALIBRATE_OPTIONS = {
    "no_target": ([], "exactly one of"),
    "two_targets": (["--target-far", "0.01", "--target-frr", "0.1"], "exactly one of"),
    "far_nan": (["--target-far", "nan"], "target_far=nan"),
    "far_zero": (["--target-far", "0"], "target_far=0.0"),
    "far_one": (["--target-far", "1"], "target_far=1.0"),
    "far_inf": (["--target-far", "inf"], "target_far=inf"),
    "frr_negative": (["--target-frr", "-0.2"], "target_frr=-0.2"),
    "worst_zero": (["--target-far", "0.01", "--worst", "0"], "worst"),
    "worst_negative": (["--target-far", "0.01", "--worst", "-2"], "worst"),
    "bins_zero": (["--target-far", "0.01", "--bins", "0"], "num_bins=0"),
    "cuda_without_cuda": pytest.param(["--target-far", "0.01", "--device", "cuda"], "CUDA", marks=NO_CUDA),
}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return npz(tmp_path / "good.npz", embeddings=X, labels=Y)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_evaluate_bad_file(name: str, tmp_path: Path, out: Path, capsys) -> None:
    make, text = BAD_FILES[name]
    path = make(tmp_path)
    argv = ["evaluate", path, "--per-class", out / "c.csv", "--plot", out / "fig", "--format", "json"]
    expect_clean_failure(argv, capsys, watched=[out, path], contains=text)


@pytest.mark.parametrize("name", ["missing", "npy_as_npz", "string_embeddings", "huge_header", "nan_row"])
def test_calibrate_bad_file(name: str, tmp_path: Path, out: Path, capsys) -> None:
    make, text = BAD_FILES[name]
    path = make(tmp_path)
    argv = ["calibrate", path, "--target-far", "0.01", "-o", out / "t.json", "--plot", out / "fig"]
    expect_clean_failure(argv, capsys, watched=[out, path], contains=text)


@pytest.mark.parametrize(("options", "text"), BAD_EVALUATE_OPTIONS.values(), ids=BAD_EVALUATE_OPTIONS)
def test_evaluate_bad_option(options: list, text: str, good: Path, out: Path, capsys) -> None:
    argv = ["evaluate", good, *options, "--per-class", out / "c.csv", "--plot", out / "fig"]
    expect_clean_failure(argv, capsys, watched=[out, good], contains=text)


@pytest.mark.parametrize(("options", "text"), BAD_CALIBRATE_OPTIONS.values(), ids=BAD_CALIBRATE_OPTIONS)
def test_calibrate_bad_option(options: list, text: str, good: Path, out: Path, capsys) -> None:
    argv = ["calibrate", good, *options, "-o", out / "t.json", "--plot", out / "fig"]
    expect_clean_failure(argv, capsys, watched=[out, good], contains=text)


def test_arrays_beyond_available_memory_are_not_read(good: Path, out: Path, capsys, monkeypatch) -> None:
    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("M", (), {"available": 1000})())
    argv = ["evaluate", good, "--per-class", out / "c.csv"]
    expect_clean_failure(argv, capsys, watched=[out], contains="bytes of memory are available")


# ---- embed: damaged or foreign checkpoints, devices -------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image tree and a checkpoint of the tiny training config (untrained weights: loading is tested)."""
    from tcdml.models import build_model
    from tcdml.training.config import TrainConfig
    from tests.helpers import make_image_tree, tiny_config

    root = tmp_path_factory.mktemp("embed")
    make_image_tree(root / "images")
    config = TrainConfig.from_dict(tiny_config(root / "images", root / "run"))
    state = {f"model.{k}": v for k, v in build_model(config.model).state_dict().items()}
    torch.save({"state_dict": state, "tcdml_config": config.to_dict()}, root / "good.ckpt")
    return root


def _bad_checkpoint(folder: Path, name: str) -> Path:
    good = folder / "good.ckpt"
    path = folder / f"{name}.ckpt"
    if name == "flipped":  # 64 bytes in the middle
        data = bytearray(good.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
        path.write_bytes(bytes(data))
    elif name == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif name == "text":
        path.write_text("not a checkpoint")
    elif name == "directory":
        path.mkdir()
    elif name == "python_object":
        torch.save({"state_dict": {}, "extra": NotATensor()}, path)
    elif name == "no_state_dict":
        torch.save({"weights": torch.zeros(2)}, path)
    elif name == "no_config":
        torch.save({"state_dict": {}}, path)
    elif name == "config_not_mapping":
        torch.save({"state_dict": {}, "tcdml_config": [1, 2]}, path)
    return path


BAD_CHECKPOINTS = {
    "missing": "no such tcdml checkpoint file",
    "directory": "is a directory",
    "text": "not a torch zip file",
    "flipped": "fails its CRC check",
    "truncated": "cannot read as a tcdml checkpoint",
    "python_object": "NotATensor; only tensors and plain containers",
    "no_state_dict": "no 'state_dict'",
    "no_config": "no 'tcdml_config'",
    "config_not_mapping": "'tcdml_config' is not a config mapping",
}


@pytest.mark.parametrize("name", sorted(BAD_CHECKPOINTS))
def test_embed_bad_checkpoint(name: str, checkpoint_dir: Path, out: Path, capsys) -> None:
    path = _bad_checkpoint(checkpoint_dir, name)
    argv = ["embed", path, "--data", checkpoint_dir / "images", "-o", out / "e.npz", "--num-workers", "0"]
    line = expect_clean_failure(argv, capsys, watched=[out], contains=[str(path), BAD_CHECKPOINTS[name]])
    assert "weights_only" not in line


@pytest.mark.parametrize(
    ("options", "text"),
    [
        pytest.param(["--device", "cuda"], "CUDA is not available", marks=NO_CUDA, id="cuda_without_cuda"),
        pytest.param(["--device", "bogus"], "not a torch device name", id="device_unknown"),
        pytest.param(["--batch-size", "0"], "batch_size=0", id="batch_size_zero"),
        pytest.param(["--num-workers", "-1"], "num_workers=-1", id="num_workers_negative"),
    ],
)
def test_embed_bad_option(options: list, text: str, checkpoint_dir: Path, out: Path, capsys) -> None:
    argv = ["embed", checkpoint_dir / "good.ckpt", "--data", checkpoint_dir / "images", "-o", out / "e.npz"]
    expect_clean_failure([*argv, *options], capsys, watched=[out], contains=text)


def test_read_checkpoint_refuses_flipped_bytes(checkpoint_dir: Path) -> None:
    assert "state_dict" in read_checkpoint(checkpoint_dir / "good.ckpt")
    with pytest.raises(TcdmlInputError, match=r"flipped\.ckpt: damaged tcdml checkpoint \(member '.*'"):
        read_checkpoint(_bad_checkpoint(checkpoint_dir, "flipped"))


# ---- YAML configs: read through tcdml.io.yaml_file ---------------------------------------------------------

BAD_YAML = {
    "billion_laughs": (LAUGHS.encode(), f"limit {MAX_ALIAS_EXPANSION:,}"),
    "alias_cycle": (b"a: &a [1, *a]\n", "cycle"),
    "latin1": ("model: {backbone: r\xe9seau}\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    "deep_nesting": (b"a: " + b"[" * 3000 + b"]" * 3000 + b"\n", "nested too deeply"),
    "not_yaml": (b"a: [1, 2\n", "not valid YAML"),
    "a_list": (b"- 1\n- 2\n", "expected a mapping"),
}


@pytest.mark.parametrize("name", sorted(BAD_YAML))
def test_train_bad_yaml_config(name: str, tmp_path: Path, out: Path, capsys) -> None:
    content, text = BAD_YAML[name]
    config = tmp_path / "cfg.yaml"
    config.write_bytes(content)
    argv = ["train", config, f"output_dir={out / 'run'}"]
    expect_clean_failure(argv, capsys, watched=[out, config], contains=[str(config), text])


def test_yaml_reader_refuses_folders_and_expands_small_aliases(tmp_path: Path) -> None:
    with pytest.raises(TcdmlInputError, match="is a directory"):
        read_yaml_mapping(tmp_path)
    merged = load_yaml_text("base: &b {x: 1}\nrun: {<<: *b, y: 2}\ncopy: *b\n", "s")
    assert merged == {"base": {"x": 1}, "run": {"x": 1, "y": 2}, "copy": {"x": 1}}
