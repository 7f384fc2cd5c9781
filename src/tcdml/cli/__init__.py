"""The ``tcdml`` command line: a thin skin over library functions (parse, call, print or write, exit)."""
