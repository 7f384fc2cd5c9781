"""Every embedding input of ``evaluate``/``calibrate``/``compare``: one reader, dispatched by suffix.

- ``.npz``: docs/spec.md's embedding file (``load_embeddings_file``, the default, unchanged).
- ``.npy``: the embeddings alone (N x D numbers), with the labels in a second ``.npy`` (``labels=``, the
  CLI's ``--labels``): N integers, or N strings numbered 0 .. C-1 in sorted order.
- ``.parquet`` / ``.csv``: a table (read with pyarrow, the ``tables`` extra) with a ``label`` column
  (integers, or strings numbered 0 .. C-1 in sorted order) and the embedding as either one list column
  ``embedding`` (list or fixed-size list of numbers, D per row) or, without it, every column other than
  ``label``, ``id``, ``is_query``, ``is_gallery``: one numeric column per dimension, in table order (e.g.
  ``e0 .. e{D-1}``). ``id`` (any scalar), ``is_query`` and ``is_gallery`` (bool, or 0/1) are optional. A CSV
  needs a header row; its delimiter (``,``, ``;``, tab or ``|``) is sniffed.

The ``.npz`` checks are reused: ``.npy`` headers are read (shape, dtype, no objects, bytes present) before
any data, all inputs must fit in the available memory (Parquet: twice its decoded size, from the footer's
value counts and types, ``parquet_nbytes``; a CSV: ``CSV_CELL_BYTES`` a cell, the measured peak of reading
it), and the arrays pass ``check_arrays``. Errors are one ``TcdmlInputError`` line naming the file and the
column and row (Parquet: ``row i``, 0-based) or line (CSV: ``line n``, the header being line 1).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.errors import TcdmlInputError, first_line
from tcdml.io.embeddings_file import (
    EmbeddingsFile,
    check_arrays,
    check_input_file,
    check_memory,
    load_embeddings_file,
    read_npy_header,
)

SUFFIXES = (".npz", ".npy", ".parquet", ".csv")
#: Columns of a table that are not embedding dimensions.
LABEL, EMBEDDING = "label", "embedding"
RESERVED = (LABEL, "id", "is_query", "is_gallery")
#: Delimiters a CSV may use (sniffed from its first lines; comma when undecided).
DELIMITERS = ",;\t|"
TABLES_EXTRA = "install tcdml[tables] (pip install 'tcdml[tables]')"


def read_embeddings(path: str | os.PathLike, labels: str | os.PathLike | None = None) -> EmbeddingsFile:
    """The embeddings and labels of ``path`` (``.npz``, ``.npy`` + ``labels``, ``.parquet`` or ``.csv``).

    ``labels`` (a ``.npy``) is required with a ``.npy`` and refused with the other formats, which hold their
    labels. Raises ``TcdmlInputError`` (one line naming the file and key, column, row or line) before the
    data is read where the check allows it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise TcdmlInputError(
            f"{path}: unknown embedding file type {suffix or '(no suffix)'!r} "
            f"(expected {', '.join(SUFFIXES[:-1])} or {SUFFIXES[-1]})"
        )
    if labels is not None and suffix != ".npy":
        raise TcdmlInputError(f"--labels {labels}: only for .npy embeddings ({path} holds its own labels)")
    if suffix == ".npz":
        return load_embeddings_file(path)
    if suffix == ".npy":
        if labels is None:
            raise TcdmlInputError(
                f"{path}: a .npy holds only the embeddings; give the labels as --labels LABELS.npy"
            )
        return _read_npy_pair(path, Path(labels))
    check_input_file(path, f"a {suffix} table with a '{LABEL}' column")
    if suffix == ".parquet":
        return _read_parquet(path)
    return _read_csv_table(path)


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV from its first lines (one of ``DELIMITERS``; comma when the sniffer cannot
    tell, e.g. a single column)."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


# --- .npy pairs ---------------------------------------------------------------------------------------


def _read_npy_pair(path: Path, labels_path: Path) -> EmbeddingsFile:
    """Embeddings from ``path``, labels from ``labels_path``: headers and memory first, then the data."""
    check_input_file(path, "a .npy of embeddings (N x D)")
    check_input_file(labels_path, "a .npy of labels (N)")
    headers = {"embeddings": _npy_header(path, "embeddings"), "labels": _npy_header(labels_path, "labels")}
    check_memory(path, {key: nbytes for key, (_, _, nbytes) in headers.items()})
    (emb_shape, _, _), (label_shape, label_dtype, _) = headers["embeddings"], headers["labels"]
    if len(label_shape) != 1 or len(emb_shape) < 1 or label_shape[0] != emb_shape[0]:
        rows = emb_shape[0] if emb_shape else 0
        raise TcdmlInputError(
            f"{labels_path}: labels of shape {label_shape}, expected ({rows},): one per row of {path}"
        )
    if label_dtype.kind not in "iuUS":
        raise TcdmlInputError(f"{labels_path}: labels of dtype {label_dtype}, expected integers or strings")
    embeddings, label_values = _npy_data(path), _npy_data(labels_path)
    if label_values.dtype.kind in "US":
        label_values = np.unique(label_values, return_inverse=True)[1].astype(np.int64)
    arrays = {"embeddings": embeddings, "labels": label_values}
    check_arrays(path, arrays)
    return EmbeddingsFile(**arrays)


def _npy_header(path: Path, key: str) -> tuple[tuple[int, ...], np.dtype, int]:
    try:
        with open(path, "rb") as handle:
            return read_npy_header(path, key, handle, path.stat().st_size)
    except TcdmlInputError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise TcdmlInputError(f"{path}: cannot read as .npy ({first_line(exc)})") from None


def _npy_data(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise TcdmlInputError(f"{path}: cannot read as .npy ({first_line(exc)})") from None


# --- tables -------------------------------------------------------------------------------------------


def _pyarrow(path: Path) -> Any:
    try:
        import pyarrow
    except ImportError:
        raise TcdmlInputError(f"{path}: reading {path.suffix} tables needs pyarrow: {TABLES_EXTRA}") from None
    return pyarrow


def _read_parquet(path: Path) -> EmbeddingsFile:
    pa = _pyarrow(path)
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).metadata
        check_memory(path, {"table and its arrays": 2 * parquet_nbytes(metadata)})
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise TcdmlInputError(f"{path}: cannot read as Parquet ({first_line(exc)})") from None
    return _from_table(path, table, lambda row: f"row {row}")


def _read_csv_table(path: Path) -> EmbeddingsFile:
    pa = _pyarrow(path)
    import pyarrow.csv as pacsv

    with open(path, "rb") as handle:
        raw = handle.read(1 << 16)
    header = raw.partition(b"\n")[0]
    try:
        header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TcdmlInputError(
            f"{path}, line 1: the header is not UTF-8 (byte 0x{header[exc.start]:02x}); save it as UTF-8"
        ) from None
    sample = raw.decode("utf-8", errors="replace")
    columns = len(next(csv.reader([sample.partition("\n")[0]], delimiter=sniff_delimiter(sample)), []))
    check_memory(path, {"table": CSV_CELL_BYTES * max(1, columns) * count_lines(path)})
    try:
        # Blank lines stay rows (of empty cells, refused as such), so row r is line r + 2 of the file.
        parse = pacsv.ParseOptions(delimiter=sniff_delimiter(sample), ignore_empty_lines=False)
        convert = pacsv.ConvertOptions(null_values=[""])  # "nan" is a number (refused as one), not a gap
        table = pacsv.read_csv(path, parse_options=parse, convert_options=convert)
    except (OSError, pa.ArrowException) as exc:
        raise TcdmlInputError(
            f"{path}: cannot read as a CSV table with a header row ({first_line(exc)})"
        ) from None
    return _from_table(path, table, lambda row: f"line {row + 2}")


#: Width in bytes of a Parquet physical type once read (variable-width types: their uncompressed size).
_PARQUET_WIDTH = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}
#: Peak memory of reading a CSV table, per cell (measured: 30-36 bytes a cell for 1-character and 9-character
#: cells alike, 300,000-400,000 rows of 17 and 65 columns, pyarrow's reader plus the arrays made from it).
CSV_CELL_BYTES = 40


def parquet_nbytes(metadata: Any) -> int:
    """The bytes a Parquet file's columns take once decoded, from its footer only: every column chunk's
    value count (list elements included) times its type's width, plus 8 bytes a row and column for offsets
    and validity (the encoded sizes say nothing: a constant column of 40 M rows encodes in a few kB)."""
    total = 0
    for group_index in range(metadata.num_row_groups):
        group = metadata.row_group(group_index)
        for column_index in range(group.num_columns):
            column = group.column(column_index)
            width = _PARQUET_WIDTH.get(column.physical_type)
            total += column.num_values * width if width else column.total_uncompressed_size
            total += 8 * group.num_rows
    return total


def count_lines(path: Path) -> int:
    """The number of lines of a file, read in 1 MB blocks (bounded memory)."""
    count = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return count + 1


def _from_table(path: Path, table: Any, where: Callable[[int], str]) -> EmbeddingsFile:
    """The arrays of a table (layout in the module doc); ``where(row)`` names a row in messages."""
    names = table.column_names
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise TcdmlInputError(f"{path}: column {duplicates[0]!r} appears more than once")
    if LABEL not in names:
        raise TcdmlInputError(
            f"{path}: no column '{LABEL}' (found: {', '.join(names) or 'none'}); expected '{LABEL}' and "
            f"an '{EMBEDDING}' list column or one numeric column per dimension"
        )
    if table.num_rows == 0:
        raise TcdmlInputError(f"{path}: no rows")
    arrays = {"labels": _labels(path, table.column(LABEL), where)}
    dims = [EMBEDDING] if EMBEDDING in names else [name for name in names if name not in RESERVED]
    if EMBEDDING in names:
        arrays["embeddings"] = _list_column(path, table.column(EMBEDDING), where)
    else:
        if not dims:
            raise TcdmlInputError(
                f"{path}: no embedding columns (expected an '{EMBEDDING}' list column or numeric columns "
                f"besides {', '.join(RESERVED)})"
            )
        columns = [_numeric_column(path, name, table.column(name), where) for name in dims]
        arrays["embeddings"] = np.stack(columns, axis=1)
    _check_finite(path, arrays["embeddings"], dims, where)
    if "id" in names:
        arrays["ids"] = _scalars(path, "id", table.column("id"), where)
    for key in ("is_query", "is_gallery"):
        if key in names:
            arrays[key] = _mask(path, key, table.column(key), where)
    check_arrays(path, arrays)
    return EmbeddingsFile(**arrays)


def _check_finite(
    path: Path, embeddings: np.ndarray, columns: list[str], where: Callable[[int], str]
) -> None:
    """Refuse a NaN or infinite value, naming its column and row (or line)."""
    bad = np.argwhere(~np.isfinite(embeddings))
    if len(bad):
        row, dim = (int(i) for i in bad[0])
        column = columns[0] if columns == [EMBEDDING] else columns[dim]
        raise TcdmlInputError(
            f"{path}: column {column!r}, {where(row)}: {embeddings[row, dim]}, expected a finite number"
        )


def _first_null(path: Path, name: str, column: Any, where: Callable[[int], str]) -> None:
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise TcdmlInputError(f"{path}: column {name!r} is empty at {where(row)}")


def _labels(path: Path, column: Any, where: Callable[[int], str]) -> np.ndarray:
    """Integer labels as they are; string labels numbered 0 .. C-1 in sorted order."""
    import pyarrow as pa

    _first_null(path, LABEL, column, where)
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_integer(kind):
        return column.to_numpy().astype(np.int64)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = np.asarray(column.to_pylist(), dtype=str)
        return np.unique(values, return_inverse=True)[1].astype(np.int64)
    raise TcdmlInputError(f"{path}: column '{LABEL}' has type {kind}, expected integers or strings")


def _numeric_column(path: Path, name: str, column: Any, where: Callable[[int], str]) -> np.ndarray:
    import pyarrow as pa

    _first_null(path, name, column, where)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.to_numpy()
    message = f"{path}: column {name!r} has type {column.type}, expected numbers"
    if pa.types.is_string(column.type):
        for row, value in enumerate(column.to_pylist()):
            try:
                float(value)
            except ValueError:
                message = f"{path}: column {name!r}, {where(row)}: {value!r} is not a number"
                break
    hint = f" (every column besides {', '.join(RESERVED)} is an embedding dimension)"
    raise TcdmlInputError(message + hint)


def _list_column(path: Path, column: Any, where: Callable[[int], str]) -> np.ndarray:
    """The N x D array of a list column: every row a list of D numbers (no empty row, no missing value)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
        raise TcdmlInputError(f"{path}: column '{EMBEDDING}' has type {kind}, expected a list of numbers")
    if not (pa.types.is_integer(kind.value_type) or pa.types.is_floating(kind.value_type)):
        raise TcdmlInputError(
            f"{path}: column '{EMBEDDING}' holds {kind.value_type} values, expected numbers"
        )
    _first_null(path, EMBEDDING, column, where)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    other = np.flatnonzero(lengths != lengths[0])
    if len(other):
        row = int(other[0])
        raise TcdmlInputError(
            f"{path}: column '{EMBEDDING}' has {lengths[row]} values at {where(row)} but {lengths[0]} at "
            f"{where(0)}; expected the same length D on every row"
        )
    if lengths[0] == 0:
        raise TcdmlInputError(f"{path}: column '{EMBEDDING}' holds empty lists")
    values = pa.chunked_array([chunk.flatten() for chunk in column.chunks], type=kind.value_type)
    if values.null_count:
        position = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise TcdmlInputError(
            f"{path}: column '{EMBEDDING}' has a missing value at {where(position // int(lengths[0]))}"
        )
    return values.to_numpy().reshape(len(column), int(lengths[0])).copy()  # writable, like np.load's


def _scalars(path: Path, name: str, column: Any, where: Callable[[int], str]) -> np.ndarray:
    """Ids as a numpy array without objects (strings become a unicode array)."""
    _first_null(path, name, column, where)
    values = column.to_numpy(zero_copy_only=False)
    return np.asarray(values.tolist(), dtype=str) if values.dtype.hasobject else values


def _mask(path: Path, name: str, column: Any, where: Callable[[int], str]) -> np.ndarray:
    """A bool mask from a bool column, or from an integer column of 0 and 1."""
    import pyarrow as pa

    _first_null(path, name, column, where)
    values = column.to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(column.type):
        return values.astype(bool)
    if pa.types.is_integer(column.type):
        bad = np.flatnonzero((values != 0) & (values != 1))
        if not len(bad):
            return values.astype(bool)
        raise TcdmlInputError(
            f"{path}: column {name!r}, {where(int(bad[0]))}: {values[bad[0]]!r}, expected true/false or 1/0"
        )
    raise TcdmlInputError(f"{path}: column {name!r} has type {column.type}, expected bool (or 0/1)")
