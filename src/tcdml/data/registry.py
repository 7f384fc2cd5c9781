"""Datasets by name, for configs: ``build_dataset("cub200", root, split="train")``.

A loader's own keyword options (e.g. ``max_per_class``) come through ``options`` (``DataConfig.options``).
"""

from __future__ import annotations

import inspect
import os
import typing
from collections.abc import Callable, Mapping
from typing import Any

from tcdml.checks import fits, type_name
from tcdml.data.base import LabelledDataset
from tcdml.data.cars import load_cars196
from tcdml.data.cub import load_cub200
from tcdml.data.fashion_mnist import load_fashion_mnist
from tcdml.data.folder import load_csv, load_image_folder
from tcdml.data.glyphs import load_glyphs
from tcdml.data.hscodes import load_hscodes
from tcdml.data.inaturalist import load_inaturalist2018
from tcdml.data.mnist import load_mnist
from tcdml.data.sop import load_sop
from tcdml.data.text_files import load_text_csv, load_text_jsonl
from tcdml.errors import ParameterError, TcdmlInputError

DATASETS: dict[str, Callable[..., LabelledDataset]] = {
    "cub200": load_cub200,
    "cars196": load_cars196,
    "sop": load_sop,
    "inaturalist2018": load_inaturalist2018,
    "folder": load_image_folder,
    "csv": load_csv,
    "mnist": load_mnist,
    "hscodes": load_hscodes,
    "glyphs": load_glyphs,
    "fashion_mnist": load_fashion_mnist,
    "text_csv": load_text_csv,
    "text_jsonl": load_text_jsonl,
}


def build_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> LabelledDataset:
    """The dataset ``name`` (a key of ``DATASETS``) read from ``root`` (for ``"csv"``, ``"text_csv"``
    and ``"text_jsonl"``: the file).

    A loader whose first parameter is ``split`` (``mnist``, ``hscodes``, ``glyphs``: their data ship with a
    package) takes no root, and ``root`` is ignored for it (configs of these datasets leave ``data.root``
    out); ``root=None`` for any other loader means its default root, an error when it has none. ``options``
    are keyword arguments of the loader (e.g. ``{"max_per_class": 100}`` for ``"fashion_mnist"``). Raises
    ``TcdmlInputError`` for an unknown name, split, option or a wrong layout.
    """
    check_options(name, options)
    loader, kwargs = DATASETS[name], dict(options or {})
    if takes_root(name) and root is not None:
        return loader(root, split=split, transform=transform, **kwargs)
    if needs_root(name):
        raise TcdmlInputError(f"dataset {name!r}: needs a root (the folder or file it reads)")
    return loader(split=split, transform=transform, **kwargs)


def takes_root(name: str) -> bool:
    """Whether the loader of ``name`` reads a root (its first parameter is not ``split``)."""
    return next(iter(inspect.signature(DATASETS[name]).parameters)) != "split"


def needs_root(name: str) -> bool:
    """Whether the loader of ``name`` reads a root and has no default for it."""
    first = next(iter(inspect.signature(DATASETS[name]).parameters.values()))
    return takes_root(name) and first.default is inspect.Parameter.empty


def check_options(name: str, options: Mapping[str, Any] | None) -> None:
    """Raise ``TcdmlInputError`` unless ``name`` is a dataset and ``options`` fit its loader's keyword-only
    parameters (names and annotated types): the check a config runs when it is loaded."""
    if name not in DATASETS:
        raise TcdmlInputError(f"unknown dataset {name!r} (expected one of {', '.join(DATASETS)})")
    loader = DATASETS[name]
    options = dict(options or {})
    if options:
        accepted = [
            param.name
            for param in inspect.signature(loader).parameters.values()
            if param.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            known = ", ".join(accepted) or "none"
            option = unknown[0]
            raise ParameterError(
                f"dataset {name!r}: unknown option {option!r} (its options: {known})",
                option,
                options[option],
                f"one of its options ({known})",
            )
        hints = typing.get_type_hints(loader)
        for key, value in options.items():
            if not fits(value, hints.get(key, Any)):
                expected = type_name(hints[key])
                raise ParameterError(
                    f"dataset {name!r}: option {key}={value!r}, expected {expected}", key, value, expected
                )
