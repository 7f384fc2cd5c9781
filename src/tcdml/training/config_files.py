"""Config files: YAML parts composed with ``include``, ``key.sub=value`` overrides, the typed ``TrainConfig``.

A config file is a YAML mapping of sections (``data``, ``model``, ``loss``, ``optim``, ``trainer``,
``eval``) plus ``seed`` and ``output_dir``. It may start with ``include: [part.yaml, ...]`` (paths
relative to the file): the parts are merged in order (mappings merge key by key, anything else is
replaced), then the file's own keys on top. Every file is checked before merging, so an unknown key or a
value of the wrong type is an error that names the key and the file. Command-line overrides
(``trainer.max_epochs=2``) are parsed as YAML values and checked the same way; every key remembers where it
was set, so a bad value names its file or override (``tcdml.training.config`` holds the sections).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tcdml.errors import TcdmlInputError
from tcdml.io.yaml_file import load_yaml_text, read_yaml_mapping
from tcdml.training.config import TrainConfig
from tcdml.training.config_checks import check_keys


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read ``path`` (with its includes), apply ``overrides`` (``"a.b=value"``), return the typed config.

    ``output_dir`` defaults to ``runs/<file stem>``. Raises ``TcdmlInputError`` naming the file (or the
    override) and the key of a bad entry: unknown, of the wrong type or out of range.
    """
    path = Path(path)
    origins: dict[str, str] = {}
    merged = _read(path, (), origins)
    merged.setdefault("output_dir", f"runs/{path.stem}")
    for text in overrides:
        _apply_override(merged, text, origins)
    return TrainConfig.from_dict(merged, source=str(path), origins=origins)


def _record(origins: dict[str, str], values: Mapping[str, Any], source: str, prefix: str = "") -> None:
    """Note ``source`` as the origin of every key (and leaf) of ``values``."""
    for key, value in values.items():
        origins[f"{prefix}{key}"] = source
        if isinstance(value, Mapping):
            _record(origins, value, source, f"{prefix}{key}.")


def _read(path: Path, chain: tuple[Path, ...], origins: dict[str, str] | None = None) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        raise TcdmlInputError(f"{path}: include cycle ({' -> '.join(p.name for p in (*chain, resolved))})")
    raw = read_yaml_mapping(path, "config", empty_ok=True)
    includes = raw.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(item, str) for item in includes):
        raise TcdmlInputError(f"{path}: key 'include' must be a list of file paths")
    check_keys(raw, str(path), TrainConfig)
    merged: dict[str, Any] = {}
    for item in includes:
        merged = _merge(merged, _read(path.parent / item, (*chain, resolved), origins))
    if origins is not None:
        _record(origins, raw, str(path))
    return _merge(merged, raw)


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``top``; mappings merge recursively, other values are replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_override(config: dict[str, Any], text: str, origins: dict[str, str] | None = None) -> None:
    key, sep, value_text = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise TcdmlInputError(f"override {text!r}: expected KEY.SUB=VALUE, e.g. trainer.max_epochs=2")
    value = load_yaml_text(value_text, f"override {text!r}")  # bounded aliases, one-line errors
    *parents, leaf = key.split(".")
    nested: dict[str, Any] = {leaf: value}
    for part in reversed(parents):
        nested = {part: nested}
    check_keys(nested, f"override {text!r}", TrainConfig)
    node = config
    for part in parents:
        if not isinstance(node.get(part), dict):  # e.g. loss.tcm: true -> a mapping of TCM parameters
            node[part] = {}
        node = node[part]
    node[leaf] = value
    if origins is not None:
        _record(origins, {key: value}, f"override {text!r}")
