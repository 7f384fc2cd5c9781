"""The one exception type tcdml raises for bad input.

Every message is a single line that names the problem (file, key, value, expected), so the CLI can print it
as ``tcdml: error: <message>`` and exit non-zero.
"""


class TcdmlInputError(ValueError):
    """Bad input: the message names the offending file/key/value and what was expected."""
