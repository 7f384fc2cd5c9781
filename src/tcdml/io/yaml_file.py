"""Read a YAML mapping from a file with ``yaml.safe_load`` (no arbitrary objects); errors name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tcdml.errors import TcdmlInputError


def read_yaml_mapping(path: str | Path, kind: str = "config", *, empty_ok: bool = False) -> dict[str, Any]:
    """The mapping stored in the YAML file ``path`` (``kind`` names what it should be, for messages).

    Raises ``TcdmlInputError`` naming the file when it is missing, not valid YAML, or not a mapping (an empty
    file is ``{}`` when ``empty_ok``).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TcdmlInputError(f"{path}: no such {kind} file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TcdmlInputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if raw is None and empty_ok:
        return {}
    if not isinstance(raw, dict):
        raise TcdmlInputError(f"{path}: expected a mapping of {kind} keys, got {type(raw).__name__}")
    return raw
