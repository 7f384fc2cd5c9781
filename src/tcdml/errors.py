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
