"""Messages that name the right thing (issue 23, part 6): an unclosed quote is named at its line, a non-UTF-8
CSV header and a device output are one line (not a traceback), file kinds read as words ("an adapter weights
file", not "a adapter weights file file"), and ``--help`` reads well in an 80-column terminal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tcdml.cli.main import main
from tcdml.errors import TcdmlInputError
from tcdml.io.embeddings_file import save_embeddings_file
from tests.badinput.harness import expect_clean_failure
from tests.badinput.test_adapt import FAST, X, Y


def test_an_unclosed_quote_is_named_at_its_line(tmp_path: Path) -> None:
    from tcdml.data.text_files import load_text_csv

    lines = ["text,label", "Live horses,1", "Coffee,2", "Tea,3", '"Woven fabrics, of cotton,4']
    lines += [f"Text number {i},{i % 4}" for i in range(50)]
    path = tmp_path / "texts.csv"
    path.write_text("\n".join(lines) + '\nclosing",1\n')
    with pytest.raises(TcdmlInputError, match=r"texts.csv, line 5: a quoted field runs on to line 56"):
        load_text_csv(path, "all")


def test_a_csv_header_that_is_not_utf8_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"lab\xe9l,e0,e1\n1,0.5,0.2\n2,0.1,0.3\n")
    expect_clean_failure(
        ["evaluate", path], capsys, watched=[tmp_path], contains=["latin.csv, line 1", "0xe9"]
    )


def test_adapt_apply_writes_through_a_device(tmp_path: Path, capsys) -> None:
    train = save_embeddings_file(tmp_path / "train.npz", X, Y)
    assert main(["adapt", "train", str(train), "-o", str(tmp_path / "ad"), *FAST]) == 0
    assert main(["adapt", "apply", str(tmp_path / "ad"), str(train), "-o", "/dev/null"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_file_kinds_read_as_words(tmp_path: Path) -> None:
    from tcdml.adapt import load_adapter

    train = save_embeddings_file(tmp_path / "train.npz", X, Y)
    assert main(["adapt", "train", str(train), "-o", str(tmp_path / "ad"), *FAST]) == 0
    weights = tmp_path / "ad" / "adapter.pt"
    content = weights.read_bytes()
    weights.unlink()
    with pytest.raises(TcdmlInputError, match=r"adapter.pt: no such adapter weights file$"):
        load_adapter(tmp_path / "ad")
    weights.write_bytes(content[:-200])
    with pytest.raises(TcdmlInputError, match=r"adapter.pt: cannot read as adapter weights"):
        load_adapter(tmp_path / "ad")
    from tcdml.io.torch_file import load_torch_file

    with pytest.raises(TcdmlInputError, match=r"cannot read as an adapter weights file \(not a torch zip"):
        load_torch_file(weights, "adapter weights file")
    with pytest.raises(TcdmlInputError, match=r"absent.pt: no such weights file$"):
        load_torch_file(tmp_path / "absent.pt", "weights file")


@pytest.mark.parametrize("command", [["adapt", "train"], ["adapt", "apply"], ["export"]])
def test_help_reads_well_in_80_columns(capsys, monkeypatch, command: list[str]) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    main([*command, "--help"])
    text = capsys.readouterr().out
    options = text[text.index("Options:") :].splitlines()[1:]
    assert options and all(len(line) <= 80 for line in text.splitlines())
    starts = []
    for line in options:
        found = re.match(r"^(  -\S.*?\s{2,})\S", line) or re.match(r"^(\s{3,})\S", line)
        if found:
            starts.append(len(found.group(1)))
    assert starts and 80 - max(starts) >= 30, f"an option's help column is {80 - max(starts)} characters wide"
