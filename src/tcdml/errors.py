"""The one exception type tcdml raises for bad input.

Every message is a single line that names the problem (file, key, value, expected), so the CLI can print it
as ``tcdml: error: <message>`` and exit non-zero.
"""


class TcdmlInputError(ValueError):
    """Bad input: the message names the offending file/key/value and what was expected."""


class ParameterError(TcdmlInputError):
    """A bad value of one named parameter. ``name``, ``value`` and ``expected`` travel with the message, so a
    layer above can name the parameter in its own terms (a config names the dotted key and the file)."""

    def __init__(self, message: str, name: str, value: object, expected: str) -> None:
        self.name, self.value, self.expected = name, value, expected
        super().__init__(message)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``exc``'s message (its type's name when empty), cut to ``limit`` characters: how a
    third-party error is quoted inside a one-line ``TcdmlInputError``."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
