"""Read table files (CSV, TSV, XLSX, Parquet) into clean, typed pandas DataFrames.

`read_tables` returns one `LoadedTable` per table (a CSV or Parquet file, or each workbook sheet that
holds data) and one `SkippedSheet` per chart or empty sheet. Headers become unique lower_snake_case
SQL-safe names; fully empty rows and columns are dropped; text cells are typed by `infer_types`. Every
fix is recorded in the table's `notes`, and a file that cannot become any table raises `TableError`.

Type inference is all or nothing: a text column converts only when 100% of its non-empty values parse
the same way, so "1st", "12 (3)", or one stray "n/a" keep the whole column as text, and numbers with
leading zeros ("007", zip codes, ids) stay text. Booleans stay text.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "Sales 2023.csv"
>>> _ = path.write_text("Region Name;Sales ($);Zip\\nNorth;$1,200;007\\nSouth;$950.50;010\\n")
>>> tables, skipped = read_tables(path)
>>> table = tables[0]
>>> table.name, list(table.frame.columns), [str(t) for t in table.frame.dtypes]
('sales_2023', ['region_name', 'sales', 'zip'], ['str', 'Float64', 'str'])
>>> table.frame["sales"].tolist()
[1200.0, 950.5]
>>> print("\\n".join(table.notes))
'Region Name' -> region_name
'Sales ($)' -> sales
sales: number (removed '$' and ',')
>>> clean_headers(["2023 Revenue", "", "Total", "Total"])[0]
['c_2023_revenue', 'column_2', 'total', 'total_2']
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotfish.errors import TableError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TABLE_SUFFIXES", "LoadedTable", "SkippedSheet", "clean_headers", "clean_name", "infer_types",
           "read_tables"]

TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".xlsx", ".parquet")

_MAX_NAME = 60
_SNIFF_BYTES = 64 * 1024
_DELIMITERS = ",;\t|"
_CURRENCY = "$€£"
_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)?(\.\d+)?([eE][+-]?\d+)?")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y", "%Y-%m-%d %H:%M:%S",
                 "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%B %d, %Y", "%b %d, %Y", "%Y-%m")
_EXCEL_ERRORS = frozenset({"#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!"})


@dataclass(frozen=True)
class LoadedTable:
    """One table read from a file: a SQL-safe `name`, the `frame` with clean headers and inferred dtypes,
    and `notes` saying what was fixed on the way."""

    name: str
    source: str
    sheet: str | None
    frame: pd.DataFrame
    notes: tuple[str, ...]


@dataclass(frozen=True)
class SkippedSheet:
    """A workbook sheet that holds no table ("chart sheet", "empty sheet", "header only, no data rows")."""

    source: str
    sheet: str
    reason: str


def clean_name(text: str, *, fallback: str) -> str:
    """`text` as a lower_snake_case ASCII name of [a-z0-9_], at most 60 characters, starting with a letter.

    Accents are folded, camelCase is split, "%" reads "pct" and "#" reads "num"; a name that would start
    with a digit gets the first letter of `fallback` and "_" in front ("2023 Revenue" -> "c_2023_revenue"
    for a column fallback, "t_..." for a table); text with no usable characters becomes `fallback`.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,59}", fallback):
        raise ValueError(f"fallback must be a clean name (lower-case letter, then [a-z0-9_]); got {fallback!r}")
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    ascii_text = ascii_text.replace("%", " pct ").replace("#", " num ")
    ascii_text = re.sub(r"([a-z0-9])([A-Z])|([A-Z])([A-Z][a-z])", r"\1\3_\2\4", ascii_text)
    name = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    if not name:
        return fallback
    if not name[0].isalpha():
        name = f"{fallback[0]}_{name}"
    return name[:_MAX_NAME].rstrip("_")


def _header_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date().isoformat()
    return str(value).strip()


def clean_headers(headers: Sequence[Any]) -> tuple[list[str], list[str]]:
    """(unique clean column names, notes) for `headers`.

    A blank header becomes "column_N" (N is its 1-based position); a repeated name gets "_2", "_3", ...
    Every header whose clean name differs from its lower-cased original is named in a note.
    """
    names: list[str] = []
    notes: list[str] = []
    used: set[str] = set()
    for position, header in enumerate(headers, start=1):
        text = _header_text(header)
        base = clean_name(text, fallback=f"column_{position}")
        name, k = base, 2
        while name in used:
            suffix = f"_{k}"
            name, k = base[: _MAX_NAME - len(suffix)].rstrip("_") + suffix, k + 1
        used.add(name)
        names.append(name)
        if not text:
            notes.append(f"column {position} has no header -> {name}")
        elif name != base:
            notes.append(f"{text!r} (column {position}) repeats a header -> {name}")
        elif name != text.lower():
            notes.append(f"{text!r} -> {name}")
    return names, notes


def _parse_numbers(values: list[str]) -> tuple[list[Any], list[str], bool] | None:
    """(numbers, what was removed, all integers) when every value is a number, else None."""
    percents = sum(value.endswith("%") for value in values)
    if percents not in (0, len(values)):
        return None  # "5%" next to "0.05" is ambiguous
    symbols: set[str] = set()
    numbers: list[Any] = []
    integers, commas = True, False
    for value in values:
        text, sign = (value[:-1].rstrip() if percents else value), ""
        for _ in range(2):  # the sign may stand before or after a currency symbol: "-$5", "$-5"
            if not sign and text.startswith(("+", "-")):
                sign, text = text[0], text[1:]
            if text.startswith(tuple(_CURRENCY)):
                symbols.add(text[0])
                text = text[1:].lstrip()
            elif text.endswith(tuple(_CURRENCY)):
                symbols.add(text[-1])
                text = text[:-1].rstrip()
        match = _NUMBER.fullmatch(text)
        if match is None or not (match.group(1) or match.group(2)):
            return None
        whole = match.group(1) or ""
        if len(whole) > 1 and whole.startswith("0"):
            return None  # leading zeros: an id or a code, not a quantity
        commas = commas or "," in whole
        plain = sign + text.replace(",", "")
        if match.group(2) or match.group(3):
            integers = False
            numbers.append(float(plain))
        else:
            numbers.append(int(plain))
    if len(symbols) > 1:
        return None  # mixed currencies are not one quantity
    if integers and any(not -(2**63) <= n < 2**63 for n in numbers):
        return None  # too big for int64: keep the digits as text
    removed = [f"'{s}'" for s in sorted(symbols)] + ["','"] * commas + ["'%'"] * bool(percents)
    return numbers, removed, integers


def _infer_column(name: str, column: pd.Series, notes: list[str]) -> pd.Series:
    import pandas as pd

    column = column.astype(object)
    present = column.notna()
    kinds = {type(v) for v in column[present]}
    if kinds and kinds <= {int, float}:  # native numbers (a workbook); bool is not among them
        values = [float(v) for v in column[present]]
        if all(v.is_integer() and abs(v) < 2**63 for v in values):
            return pd.Series([None if pd.isna(v) else int(v) for v in column], index=column.index, dtype="Int64")
        return column.astype("Float64")
    if kinds and kinds <= {dt.datetime, dt.date, pd.Timestamp}:
        return pd.to_datetime(column)
    text = column.map(lambda v: None if _blank(v) else str(v).strip())
    mask = text.notna()
    strings = [str(v) for v in text[mask]]
    numbers = _parse_numbers(strings) if strings else None
    if numbers is not None:
        parsed, removed, integers = numbers
        kind = "integer" if integers else "number"
        notes.append(f"{name}: {kind}" + (f" (removed {' and '.join(removed)})" if removed else ""))
        if "'%'" in removed:
            notes.append(f"{name}: values are percents (50% is stored as 50)")
        series = pd.Series(parsed, index=text.index[mask], dtype="Int64" if integers else "Float64")
        return series.reindex(text.index)
    for fmt in _DATE_FORMATS if strings else ():
        dates = pd.to_datetime(pd.Series(strings, index=text.index[mask], dtype=object), format=fmt, errors="coerce")
        if not dates.isna().any():
            notes.append(f"{name}: date (format {fmt})")
            return dates.reindex(text.index)
    return text.astype("str")


def infer_types(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(typed copy of `frame`, notes). Only text columns (object or string dtype) are converted.

    Blank text becomes missing. A column converts only when 100% of its non-empty values parse:
    integers ("1,234", "+5", "-$3") become Int64 when they fit int64; decimals ("1,234.5", "2.5e3") become
    Float64; "$", "€" and "£" before or after a number and "%" after it (on every value) are stripped with
    a note, a percent keeping its number (3.5% -> 3.5). Numbers with leading zeros ("007") stay text.
    Dates convert to datetimes when every value fits ONE format of: %Y-%m-%d, %Y/%m/%d, %d.%m.%Y,
    %m/%d/%Y, %d/%m/%Y (tried after %m/%d/%Y), ISO date-times, "%B %d, %Y", "%b %d, %Y", %Y-%m. Columns
    of native numbers or dates (from a workbook) become Int64/Float64/datetime; mixed ones become text.
    """
    import pandas as pd

    notes: list[str] = []
    columns: dict[Any, pd.Series] = {}
    for name, column in frame.items():
        if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            columns[name] = _infer_column(str(name), column, notes)
        else:
            columns[name] = column
    return pd.DataFrame(columns, index=frame.index), notes


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and math.isnan(value))


def _build(header: Sequence[Any], rows: list[list[Any]], what: str) -> tuple[pd.DataFrame, list[str]]:
    """A typed frame from a header and rows no longer than it: pads, drops empty rows/columns, cleans."""
    import pandas as pd

    width, short = len(header), sum(len(row) < len(header) for row in rows)
    notes = [f"padded {short} short row(s) with empty values"] if short else []
    rows = [list(row) + [None] * (width - len(row)) for row in rows]
    kept = [row for row in rows if not all(_blank(v) for v in row)]
    if len(kept) < len(rows):
        notes.append(f"dropped {len(rows) - len(kept)} empty row(s)")
    if not kept:
        raise TableError(f"{what} holds a header but no data rows; add rows below the header or remove the file")
    keep = [i for i in range(width) if not (_blank(header[i]) and all(_blank(row[i]) for row in kept))]
    if len(keep) < width:
        notes.append(f"dropped {width - len(keep)} empty column(s) (no header, no values)")
    names, header_notes = clean_headers([header[i] for i in keep])
    data = {name: pd.Series([row[i] for row in kept], dtype=object) for name, i in zip(names, keep)}
    frame, type_notes = infer_types(pd.DataFrame(data))
    return frame, header_notes + notes + type_notes


def _decode(raw: bytes, notes: list[str]) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start}"
    try:
        text, encoding = raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined; latin-1 decodes every byte
        text, encoding = raw.decode("latin-1"), "latin-1"
    notes.append(f"file is not UTF-8 (at {where}); read it as {encoding}")
    return text


def _sniff(sample: str) -> str:
    """The delimiter whose split of the sample gives a multi-field header that most rows agree with."""
    if len(sample) >= _SNIFF_BYTES and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    best, best_score = ",", (-1.0, 0)
    for delimiter in _DELIMITERS:
        try:
            rows = [row for row in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter) if row]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        score = (sum(len(row) == len(rows[0]) for row in rows) / len(rows), len(rows[0]))
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _read_delimited(path: Path, source: str) -> LoadedTable:
    notes: list[str] = []
    text = _decode(path.read_bytes(), notes)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff(text[:_SNIFF_BYTES])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[list[str]] = []
    trimmed = end = 0
    try:
        for row in reader:
            line, end = end + 1, reader.line_num  # the line the record starts on, and the one it ends on
            if header is None:
                header = row if any(v.strip() for v in row) else None
            elif len(row) <= len(header):
                rows.append(row)
            elif not any(v.strip() for v in row[len(header):]):
                rows.append(row[: len(header)])
                trimmed += 1
            else:
                raise TableError(
                    f"{source}: line {line} has {len(row)} fields but the header has {len(header)}; fix the "
                    f"file, or quote the field that holds the delimiter {delimiter!r} (\"a{delimiter}b\")")
    except csv.Error as exc:
        raise TableError(f"{source}: cannot parse line {reader.line_num} ({exc}); fix the quoting there") from exc
    if header is None:
        raise TableError(f"{source} holds no rows; give it a header row and at least one data row")
    if trimmed:
        notes.append(f"dropped empty trailing fields beyond the header on {trimmed} row(s)")
    frame, more = _build(header, rows, source)
    return LoadedTable(clean_name(path.stem, fallback="table"), source, None, frame, tuple(more + notes))


def _read_parquet(path: Path, source: str) -> LoadedTable:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
        raise TableError(f"{source} is not a readable Parquet file ({exc}); rewrite it with a Parquet writer") from exc
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise TableError(f"{source} holds no rows; write at least one row and one column to it")
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()  # a saved index holds data (an id, a date): keep it as columns
    names, notes = clean_headers(list(frame.columns))
    frame.columns = names
    return LoadedTable(clean_name(path.stem, fallback="table"), source, None, frame, tuple(notes))


def _clear_errors(rows: list[list[Any]]) -> tuple[list[list[Any]], int]:
    """Rows with Excel error values ("#N/A", "#DIV/0!", ...) made empty, and how many there were."""
    cleared = [[None if isinstance(v, str) and v.strip() in _EXCEL_ERRORS else v for v in row] for row in rows]
    return cleared, sum(a is not b for old, new in zip(rows, cleared) for a, b in zip(old, new))


def _read_workbook(path: Path, source: str) -> tuple[list[LoadedTable], list[SkippedSheet]]:
    import openpyxl
    from openpyxl.chartsheet import Chartsheet

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML and openpyxl errors all mean "not a readable workbook"
        raise TableError(f"{source} is not a readable .xlsx workbook ({exc}); save it again as .xlsx") from exc
    found: list[tuple[str, pd.DataFrame, list[str]]] = []
    skipped: list[SkippedSheet] = []
    try:
        for sheet in workbook.sheetnames:
            worksheet = workbook[sheet]
            if isinstance(worksheet, Chartsheet):
                skipped.append(SkippedSheet(source, sheet, "chart sheet"))
                continue
            worksheet.reset_dimensions()
            rows = [list(row) for row in worksheet.iter_rows(values_only=True)]
            start = next((i for i, row in enumerate(rows) if not all(_blank(v) for v in row)), None)
            if start is None:
                skipped.append(SkippedSheet(source, sheet, "empty sheet"))
                continue
            width = max(len(row) for row in rows[start:])
            header = rows[start] + [None] * (width - len(rows[start]))
            body, errors = _clear_errors(rows[start + 1:])
            try:
                frame, notes = _build(header, body, f"{source} sheet {sheet!r}")
            except TableError:
                skipped.append(SkippedSheet(source, sheet, "header only, no data rows"))
                continue
            if start:
                notes.insert(0, f"header is row {start + 1}; skipped {start} empty row(s) above it")
            if errors:
                notes.append(f"{errors} Excel error value(s) (#N/A, #DIV/0!, ...) are now empty")
            found.append((sheet, frame, notes))
    finally:
        workbook.close()
    if not found:
        why = "; ".join(f"{s.sheet!r}: {s.reason}" for s in skipped) or "it has no sheets"
        raise TableError(f"{source} holds no table in any sheet ({why}); put a header row and data rows on a sheet")
    tables: list[LoadedTable] = []
    used: set[str] = set()
    for sheet, frame, notes in found:
        name = base = clean_name(path.stem if len(found) == 1 else f"{path.stem}_{sheet}", fallback="table")
        while name in used:  # "Q1 Data" and "Q1-Data" clean to the same name
            name = f"{base[:55]}_{len(used) + 1}"
        used.add(name)
        tables.append(LoadedTable(name, source, sheet, frame, tuple(notes)))
    return tables, skipped


def read_tables(path: str | Path) -> tuple[list[LoadedTable], list[SkippedSheet]]:
    """(tables, skipped sheets) read from a .csv, .tsv, .xlsx or .parquet file.

    Raises `TableError` for a missing file, another suffix, or a file that holds no table: empty, header
    only, all blank, a row with more fields than the header, or a workbook whose every sheet was skipped.
    """
    source = str(path)
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise TableError(f"{source}: cannot read {suffix or 'a file without a suffix'} as a table; "
                         f"supported: {', '.join(TABLE_SUFFIXES)} (save the file as one of them)")
    if not file.is_file():
        raise TableError(f"{source}: no such file; check the path")
    if suffix == ".xlsx":
        return _read_workbook(file, source)
    if suffix == ".parquet":
        return [_read_parquet(file, source)], []
    return [_read_delimited(file, source)], []
