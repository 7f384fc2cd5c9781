"""The one exception type tcdml raises for bad input.

Every message is a single line that names the problem (file, key, value, expected), so the CLI can print it
as ``tcdml: error: <message>`` and exit non-zero.
"""

import numbers


class TcdmlInputError(ValueError):
    """Bad input: the message names the offending file/key/value and what was expected."""


class ParameterError(TcdmlInputError):
    """A bad value of one named parameter. ``name``, ``value`` and ``expected`` travel with the message, so a
    layer above can name the parameter in its own terms (a config names the dotted key and the file)."""

    def __init__(self, message: str, name: str, value: object, expected: str) -> None:
        self.name, self.value, self.expected = name, value, expected
        super().__init__(message)

    @classmethod
    def of(cls, name: str, value: object, expected: str) -> "ParameterError":
        """The error in the one message shape every check uses: ``name=value: expected ...``."""
        return cls(f"{name}={show(value)}: expected {expected}", name, value, expected)

    def renamed(self, name: str) -> "ParameterError":
        """The same value and expectation under a front end's name (a dotted config key, a CLI option):
        how a layer above names the parameter without reading the message."""
        return ParameterError.of(name, self.value, self.expected)


def show(value: object) -> str:
    """``value`` for a message: numbers as printed (``0.1``, not ``np.float32(0.1)``), else its repr, cut
    to 80 characters."""
    text = str(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``exc``'s message (its type's name when empty), cut to ``limit`` characters: how a
    third-party error is quoted inside a one-line ``TcdmlInputError``."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
