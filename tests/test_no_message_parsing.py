"""No code finds which parameter failed by reading an error's message (issue: settings own their checks).

A ``ParameterError`` carries ``name``, ``value`` and ``expected``; a front end renames it
(``ParameterError.renamed``). Parsing the text would silently move an error to another key when a message
is reworded, so these patterns are refused anywhere in ``src/``.
"""

import re
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "tcdml"
PARSING = re.compile(
    r"str\((?:exc|error|err|e)\)\s*\.\s*(?:startswith|partition|rpartition|replace|removeprefix|index|find)\("
    r"|re\.(?:search|match|fullmatch|findall)\([^\n]*str\((?:exc|error|err|e)\)"
    r"|message\.(?:partition|startswith)\("
)


def test_no_error_message_is_parsed_for_a_key() -> None:
    found = [
        f"{path.relative_to(SOURCE)}:{number}: {line.strip()}"
        for path in sorted(SOURCE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PARSING.search(line)
    ]
    assert not found, "\n".join(found)


def test_the_pattern_catches_what_it_is_for() -> None:
    for line in (
        'key = str(exc).partition("=")[0]',
        'if str(exc).startswith("far"):',
        "re.search(r'x', str(exc))",
    ):
        assert PARSING.search(line), line
