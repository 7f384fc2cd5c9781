"""``tcdml init``: a commented, checked training config for the user's own images or texts.

The templates (``tcdml/training/templates/*.yaml``, shipped with the package) hold defaults a user can start
from: a pretrained backbone that ships with tcdml's extras and the recipe that beat it on held-out classes in
docs/study.md (images: EfficientNet-lite0, a PCA-initialised 128-d head, Smooth-AP, 20 epochs; texts: all of
all-MiniLM-L6-v2, no head, NT-Xent, 2 epochs; neither with TCM). The dataset layout is
read off the data path: a folder (``folder``) or a ``.csv`` file (``csv`` for images, ``text_csv`` for
texts), a ``.jsonl`` file (``text_jsonl``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from string import Template

from tcdml.errors import TcdmlInputError
from tcdml.training.config import TrainConfig
from tcdml.training.config_files import load_config

TEMPLATES = Path(__file__).resolve().parent / "templates"
KINDS = ("images", "texts")


def dataset_for(kind: str, data: Path) -> str:
    """The dataset layout of ``data`` for ``kind`` (module docstring); ``TcdmlInputError`` if none fits."""
    suffix = data.suffix.lower()
    if kind == "images":
        if data.is_dir():
            return "folder"
        if suffix == ".csv":
            return "csv"
        raise TcdmlInputError(f"{data}: expected a folder of class folders or a .csv of path,label (images)")
    if kind == "texts":
        if suffix in (".csv", ".tsv", ".txt"):
            return "text_csv"
        if suffix in (".jsonl", ".ndjson"):
            return "text_jsonl"
        raise TcdmlInputError(f"{data}: expected a .csv (text,label) or a .jsonl file of labelled texts")
    raise TcdmlInputError(f"kind={kind!r}: expected one of {', '.join(KINDS)}")


def render_template(kind: str, data: str | os.PathLike, output_dir: str) -> str:
    """The template of ``kind`` filled in for the data path ``data`` and the run folder ``output_dir``."""
    data = Path(data)
    if kind in KINDS and not data.exists():
        raise TcdmlInputError(f"{data}: no such file or folder (the data to train on)")
    dataset = dataset_for(kind, data)  # kind checked here
    text = (TEMPLATES / f"{kind}.yaml").read_text(encoding="utf-8")
    values = {"dataset": dataset, "root": json.dumps(str(data)), "output_dir": json.dumps(output_dir)}
    return Template(text).substitute(values)


def write_config(
    kind: str, data: str | os.PathLike, path: str | os.PathLike, output_dir: str, *, force: bool = False
) -> TrainConfig:
    """Write the filled template to ``path`` (atomically) once it loads as a config; return that config.

    An existing ``path`` is refused unless ``force`` (it may be a config the user edited).
    """
    from tcdml.io.outputs import OutputSet

    if Path(path).exists() and not force:
        raise TcdmlInputError(f"{path}: exists (pass --force to replace it)")
    outputs = OutputSet(inputs=[Path(data)])
    target = outputs.check_file(Path(path), "--output")
    text = render_template(kind, data, output_dir)
    with outputs.staging() as staging:
        staged = staging.file(target)
        Path(staged).write_text(text, encoding="utf-8")
        config = load_config(staged)  # a template that does not load is never written
    return config
