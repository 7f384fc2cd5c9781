"""The manifest and calibration readers check their numbers through ``tcdml.checks``: a bad value is one
``ParameterError`` line naming the file and the key, with the key, value and expectation attached (so a caller
never parses the message), and an integer too large for a float is refused like any other bad number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcdml.deploy.manifest import MANIFEST_NAME, parse_manifest
from tcdml.errors import ParameterError
from tcdml.export.calibration import read_calibration
from tests.deploy.helpers import write_calibration

HUGE = 10**400  # JSON reads it as a Python int that no float can hold

MANIFEST = {
    "format": "tcdml-export",
    "format_version": 1,
    "threshold": 0.5,
    "embedding_size": 16,
    "input": {"kind": "embedding", "input_size": 64},
    "model": {"onnx": "model.onnx", "torchscript": None},
    "files": {"model.onnx": {"sha256": "0" * 64, "bytes": 10}},
    "calibration": {},
}


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        ({"threshold": HUGE}, "threshold", "a number in [-1, 1]"),
        ({"threshold": True}, "threshold", "a number in [-1, 1]"),
        ({"format_version": True}, "format_version", "1"),
        ({"embedding_size": 2.0}, "embedding_size", "an integer in [1, 1048576]"),
        ({"input": {"kind": "embedding", "input_size": 0}}, "input.input_size", "an integer in [1, 1048576]"),
        ({"input": {"kind": ["image"]}}, "input.kind", "'image' or 'text' or 'embedding'"),
        ({"model": {"onnx": None, "torchscript": None}}, "model", "a model file name in model.onnx or"),
        ({"model": {"onnx": 3}}, "model.onnx", "a file name or null"),
        ({"files": {"model.onnx": {"sha256": "0" * 64, "bytes": True}}}, "files.model.onnx.bytes", "a byte"),
    ],
)
def test_a_bad_manifest_value_names_file_and_key(change: dict, key: str, expected: str, tmp_path) -> None:
    path = tmp_path / MANIFEST_NAME
    with pytest.raises(ParameterError) as caught:
        parse_manifest({**MANIFEST, **change}, path)
    message = str(caught.value)
    assert message.startswith(f"{path}: malformed manifest: {key}=") and "\n" not in message
    assert caught.value.name == key and caught.value.expected.startswith(expected)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"threshold": HUGE}, "threshold"),
        ({"target_rate": HUGE}, "target_rate"),
        ({"target_rate": True}, "target_rate"),
        ({"embedding_size": True}, "embedding_size"),
        ({"frr": HUGE}, "frr"),
        ({"target": ["far"]}, "target"),
    ],
)
def test_a_bad_calibration_value_names_file_and_key(change: dict, key: str, tmp_path: Path) -> None:
    path = write_calibration(tmp_path / "t.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ParameterError) as caught:
        read_calibration(path)
    assert str(caught.value).startswith(f"{path}: {key}=") and "\n" not in str(caught.value)
    assert caught.value.name == key and caught.value.value == change[key]


def test_a_good_calibration_reads_as_numbers(tmp_path: Path) -> None:
    record = read_calibration(write_calibration(tmp_path / "t.json", threshold=1, embedding_size=16))
    assert (record.threshold, record.target, record.target_rate, record.embedding_size) == (
        1.0,
        "far",
        0.01,
        16,
    )
    assert isinstance(record.threshold, float)
