"""Model formats declared once (``tcdml.deploy.formats``): every declared format exports and serves, each has
its writer and its ``--format`` choice, and an unknown format is one line naming the choices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tcdml.deploy import load_matcher
from tcdml.deploy.formats import FORMATS, export_choices, export_help
from tcdml.deploy.manifest import MANIFEST_NAME
from tcdml.errors import ParameterError
from tcdml.export import export_module
from tcdml.export.convert import TOLERANCE, WRITERS
from tests.badinput.harness import expect_clean_failure
from tests.deploy.helpers import reference, write_calibration

CONTRACT = {"kind": "embedding", "input_size": 64}


@pytest.fixture(scope="module")
def head_and_rows() -> tuple[torch.nn.Module, np.ndarray]:
    """A linear adapter head (64 -> 16) and real inputs: scikit-learn's 8 x 8 digits."""
    from sklearn.datasets import load_digits

    from tcdml.adapt import build_head

    torch.manual_seed(0)
    head = build_head("linear", 64, 16, None)
    with torch.no_grad():
        head.proj.weight.normal_(std=0.3)
    return head, load_digits().data.astype(np.float32)[:50]


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_declared_format_exports_and_serves(name: str, head_and_rows, tmp_path: Path) -> None:
    head, rows = head_and_rows
    result = export_module(
        head, torch.from_numpy(rows[:2]), CONTRACT, write_calibration(tmp_path / "t.json"), tmp_path / "out",
        format=name, check_input=torch.from_numpy(rows[2:7]),
    )  # fmt: skip
    declared = FORMATS[name]
    assert {path.name for path in (tmp_path / "out").iterdir()} == {declared.file_name, MANIFEST_NAME}
    model = result.manifest["model"]
    assert {key: model[key] for key in FORMATS} == {
        key: declared.file_name if key == name else None for key in FORMATS
    }
    assert result.to_dict()[name] == declared.file_name
    for backend in (None, name):  # None: the first format the folder holds, here the only one
        matcher = load_matcher(tmp_path / "out", backend=backend)
        assert matcher.backend == name
        assert np.abs(matcher.embed(rows) - reference(head, rows)).max() <= TOLERANCE


def test_each_format_has_a_writer_a_choice_and_help() -> None:
    from tcdml.cli.export import ExportFormat

    assert set(WRITERS) == set(FORMATS)
    assert export_choices() == ("auto", *FORMATS, "both")
    assert [choice.value for choice in ExportFormat] == list(export_choices())
    text = export_help()
    assert all(name in text and declared.title in text for name, declared in FORMATS.items())
    assert len({declared.file_name for declared in FORMATS.values()}) == len(FORMATS)


def test_an_unknown_format_is_one_line_naming_the_choices(head_and_rows, tmp_path: Path, capsys) -> None:
    head, rows = head_and_rows
    calibration = write_calibration(tmp_path / "t.json")
    with pytest.raises(ParameterError) as caught:
        export_module(
            head, torch.from_numpy(rows[:2]), CONTRACT, calibration, tmp_path / "out", format="tflite"
        )
    message = str(caught.value)
    assert caught.value.name == "format" and "\n" not in message and "'tflite'" in message
    assert all(choice in message for choice in export_choices())
    assert not (tmp_path / "out").exists()

    export_module(head, torch.from_numpy(rows[:2]), CONTRACT, calibration, tmp_path / "out")
    for backend in ("tflite", ["onnx"]):
        with pytest.raises(ParameterError) as caught:
            load_matcher(tmp_path / "out", backend=backend)
        assert caught.value.name == "backend" and "\n" not in str(caught.value)
        assert all(repr(name) in str(caught.value) for name in FORMATS)

    argv = ["export", tmp_path / "out", "--calibration", calibration, "-o", tmp_path / "again"]
    line = expect_clean_failure([*argv, "--format", "tflite"], capsys, watched=[tmp_path], contains="tflite")
    assert all(choice in line for choice in export_choices())
