"""Read YAML safely: ``yaml.SafeLoader`` (no arbitrary objects), bounded aliases, errors naming the file.

Every YAML read in tcdml goes through here. A document is composed to its node graph first; an alias makes
a node appear again wherever it is used, so a few hundred bytes of nested aliases (a "billion laughs") can
stand for billions of values once the config is printed or stored. Documents whose aliases add more than
``MAX_ALIAS_EXPANSION`` nodes, or refer to a node inside itself, are refused before anything is built.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tcdml.errors import TcdmlInputError, first_line

#: The most nodes that aliases may add to a document once expanded (ordinary configs add a few dozen).
MAX_ALIAS_EXPANSION = 10_000


def read_yaml_mapping(path: str | Path, kind: str = "config", *, empty_ok: bool = False) -> dict[str, Any]:
    """The mapping stored in the YAML file ``path`` (``kind`` names what it should be, for messages).

    Raises ``TcdmlInputError`` naming the file when it is missing, a folder, unreadable, not UTF-8, not
    valid YAML, alias-expanding beyond ``MAX_ALIAS_EXPANSION`` nodes, or not a mapping (an empty file is
    ``{}`` when ``empty_ok``).
    """
    path = Path(path)
    if path.is_dir():
        raise TcdmlInputError(f"{path}: is a directory, expected a YAML {kind} file")
    if not path.is_file():
        raise TcdmlInputError(f"{path}: no such {kind} file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TcdmlInputError(f"{path}: cannot read the {kind} file ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TcdmlInputError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the "
            f"{kind} file as UTF-8"
        ) from None
    raw = load_yaml_text(text, str(path))
    if raw is None and empty_ok:
        return {}
    if not isinstance(raw, dict):
        raise TcdmlInputError(f"{path}: expected a mapping of {kind} keys, got {type(raw).__name__}")
    return raw


def load_yaml_text(text: str, source: str) -> Any:
    """The value of one YAML document (``yaml.SafeLoader``, bounded aliases); errors name ``source``."""
    import yaml

    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        first = first_line(exc)
        raise TcdmlInputError(f"{source}: not valid YAML ({first})") from None
    except RecursionError:
        raise TcdmlInputError(f"{source}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def _loader_class() -> type:
    """``yaml.SafeLoader`` that also reads ``1e-3`` / ``2E5`` as floats (YAML 1.2; YAML 1.1 needs a dot).

    Built once, on first use, so that ``import tcdml.io`` does not import yaml.
    """
    global _LOADER
    if _LOADER is None:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        Loader.add_implicit_resolver(
            "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
        )
        _LOADER = Loader
    return _LOADER


_LOADER: type | None = None


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: Any, source: str) -> None:
    """Refuse a node graph whose aliases add over ``MAX_ALIAS_EXPANSION`` nodes or form a cycle."""
    expanded: dict[int, int] = {}  # id(node) -> nodes under it (itself included) with aliases expanded
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            expanded[key] = 1 + sum(expanded[id(child)] for child in _children(node))
            continue
        if key in expanded:
            continue
        if key in on_path:
            raise TcdmlInputError(f"{source}: a YAML alias refers to a node that contains it (a cycle)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in expanded)
    extra = expanded[id(root)] - len(expanded)
    if extra > MAX_ALIAS_EXPANSION:
        raise TcdmlInputError(
            f"{source}: YAML aliases expand to {extra:,} more nodes (limit {MAX_ALIAS_EXPANSION:,}); "
            "write the values out or use fewer nested aliases"
        )
