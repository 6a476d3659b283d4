"""Multi-record files, streamed: a CSV row or a JSONL line becomes a `Document`, one at a time, so a file of
any size is read in constant memory (only the ids seen so far are kept, to refuse duplicates).

A line or row that cannot become a document (not JSON, no text field, a duplicate id...) stops the file with
an `IngestError` naming it, unless the caller's `report(where, reason)` is given: then it is skipped and, once
the file has given at least one document, reported. A file without one good record fails as a whole.

>>> import tempfile
>>> from pathlib import Path
>>> p = Path(tempfile.mkdtemp()) / "corpus.jsonl"
>>> _ = p.write_text('{"_id": "a", "text": "one"}\\nnot json\\n{"_id": "b", "text": "two"}\\n')
>>> bad = []
>>> [d.doc_id for d in iter_records(p, doc_id="corpus.jsonl", report=lambda *b: bad.append(b))]
['a', 'b']
>>> bad
[('line 2', 'not valid JSON (Expecting value at column 1)')]
>>> count_records(p)
3
"""

from __future__ import annotations

import codecs
import csv
import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from pilotfish.errors import IngestError
from pilotfish.jsonl import read_jsonl
from pilotfish.types import Document

RECORD_SUFFIXES = (".csv", ".jsonl", ".jsonl.gz")
_MAX_LISTED_BAD = 20  # bad records of one file reported one by one; the rest as one count
_BLOCK = 1 << 20


def iter_records(path: Path, *, doc_id: str, id_field: str | None = None, text_field: str | None = None,
                 title_field: str = "title", report: Callable[[str, str], None] | None = None) -> Iterator[Document]:
    """The documents of a CSV or JSONL(.gz) file, streamed; `doc_id` names records that have no id field."""
    name = path.name.lower()
    if name.endswith(".csv"):
        yield from _csv_documents(path, doc_id, id_field, text_field, title_field, _BadRecords(path, "row", report))
    else:
        yield from _jsonl_documents(path, doc_id, id_field, text_field, title_field,
                                    _BadRecords(path, "line", report))


def count_records(path: Path) -> int:
    """About how many records `path` holds (its line count; a CSV's header counts too), for a progress bar:
    one pass over the bytes, decompressing `.gz`."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    lines, last = 0, b"\n"
    try:
        with opener(path, "rb") as fh:
            for block in iter(lambda: fh.read(_BLOCK), b""):
                lines += block.count(b"\n")
                last = block[-1:]
    except (OSError, EOFError):
        return 0  # the loader reports the damage with its own message
    return lines + (last != b"\n")


class _BadRecord(Exception):
    """Why one line or row cannot become a document (the message is the reason, without the file)."""


class _BadRecords:
    """The bad lines or rows of one file. Without `report` the first one raises `IngestError`; with it they
    are kept and, once the file has given documents, reported: the first `_MAX_LISTED_BAD` one by one, the rest
    as a count. A file without a good record fails as a whole, naming its first bad one."""

    def __init__(self, path: Path, unit: str, report: Callable[[str, str], None] | None) -> None:
        self.path, self.unit, self.report = path, unit, report
        self.listed: list[tuple[str, str]] = []
        self.count = 0

    def add(self, where: str, reason: str) -> None:
        if self.report is None:
            raise IngestError(f"{self.path}: {where}: {reason}")
        self.count += 1
        if len(self.listed) < _MAX_LISTED_BAD:
            self.listed.append((where, reason))

    def finish(self, documents: int, empty: str) -> None:
        """Report the bad records of a file that gave `documents`; with none, raise IngestError."""
        if not documents:
            if not self.listed:
                raise IngestError(f"{self.path}: {empty}")
            where, reason = self.listed[0]
            more = f" (and {self._count(self.count - 1)} more, bad too)" if self.count > 1 else ""
            raise IngestError(f"{self.path}: no usable {self.unit}s; {where}: {reason}{more}")
        if self.report is not None:
            for where, reason in self.listed:
                self.report(where, reason)
            if self.count > len(self.listed):
                self.report(f"{self._count(self.count - len(self.listed))} more",
                            "bad too, not listed one by one; fix the ones above and ingest the file again")

    def _count(self, n: int) -> str:
        return f"{n} {self.unit}" if n == 1 else f"{n} {self.unit}s"


def _record_id(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _BadRecord(f"id field '{field}' must be a string or integer, got {value!r}")
    value = str(value).strip()
    if not value:
        raise _BadRecord(f"id field '{field}' is empty")
    return value


def _open_csv(path: Path) -> IO[str]:
    """`path` opened as text: BOM-aware UTF-8/UTF-16, else latin-1; content that looks binary is refused.
    The encoding is decided by one streaming pass, so a non-UTF-8 byte deep in a large file is found too."""
    try:
        with path.open("rb") as fh:
            head = fh.read(_BLOCK)
            if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                return path.open(encoding="utf-16", newline="")
            if b"\x00" in head:
                raise IngestError(f"{path}: file looks binary (contains NUL bytes); is the suffix right?")
            decoder, block = codecs.getincrementaldecoder("utf-8")(), head
            try:
                while block:
                    decoder.decode(block)
                    block = fh.read(_BLOCK)
                decoder.decode(b"", final=True)
                return path.open(encoding="utf-8-sig", newline="")
            except UnicodeDecodeError:
                pass
    except OSError as exc:
        raise IngestError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    sample = head[:4096].decode("latin-1")
    controls = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\n\r\t\f") or 0x7F <= ord(ch) < 0xA0)
    if sample and controls / len(sample) > 0.1:
        raise IngestError(f"{path}: file looks binary (not UTF-8 text); is the suffix right?")
    return path.open(encoding="latin-1", newline="")


def _csv_documents(path: Path, doc_id: str, id_field: str | None, text_field: str | None,
                   title_field: str, bad: _BadRecords) -> Iterator[Document]:
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # long text cells are normal here
    with _open_csv(path) as fh:
        sample = fh.read(4096)
        fh.seek(0)
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(fh, dialect)
        try:
            header = [name.strip() for name in next(reader, [])]
        except csv.Error as exc:
            raise IngestError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from exc
        if not any(header):
            raise IngestError(f"{path}: empty CSV (no header row)")
        for option, column in (("--id-field", id_field), ("--text-field", text_field)):
            if column is not None and column not in header:
                raise IngestError(f"{path}: {option} column '{column}' not found; available columns: "
                                  f"{', '.join(header)}")
        id_col = id_field or next((c for c in ("_id", "id") if c in header), None)
        used = {id_col, text_field, title_field if title_field in header else None}
        seen: dict[str, int] = {}

        def document(n: int, values: list[str]) -> Document | None:
            record = dict(zip(header, (v.strip() for v in values)))
            if not any(v.strip() for v in values):
                return None
            if any(v.strip() for v in values[len(header):]):
                raise _BadRecord(f"{len(values)} fields where the header has {len(header)}; "
                                 "is a quote missing around a value holding the delimiter?")
            if text_field is not None and text_field not in record:
                raise _BadRecord(f"no value for the text column '{text_field}' ({len(values)} fields where the "
                                 f"header has {len(header)})")
            rid = _record_id(record.get(id_col, ""), id_col) if id_col else f"{doc_id}#row{n}"
            if rid in seen:
                raise _BadRecord(f"duplicate id '{rid}' (first in row {seen[rid]})")
            seen[rid] = n
            if text_field is not None:
                body = record[text_field]
            else:
                body = "\n".join(f"{k}: {v}" for k, v in record.items() if v and k != id_col)
            metadata = {k: v for k, v in record.items() if k not in used and k}
            return Document(doc_id=rid, text=body, title=record.get(title_field, ""), source=str(path),
                            metadata=metadata)

        good, n, line = 0, 0, reader.line_num + 1
        try:
            for values in reader:
                n += 1
                try:
                    doc = document(n, values)
                except _BadRecord as exc:
                    bad.add(f"row {n} (line {line})", str(exc))
                    doc = None
                line = reader.line_num + 1
                if doc is not None:
                    good += 1
                    yield doc
        except csv.Error as exc:
            raise IngestError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from exc
    bad.finish(good, "empty CSV (a header but no data rows)")


def _jsonl_documents(path: Path, doc_id: str, id_field: str | None, text_field: str | None,
                     title_field: str, bad: _BadRecords) -> Iterator[Document]:
    text_key = text_field or "text"
    seen: dict[str, int] = {}

    def document(line_no: int, record: Any) -> Document:
        if not isinstance(record, dict):
            raise _BadRecord(f"expected a JSON object, got {type(record).__name__}")
        if text_key not in record:
            hint = "set --text-field to the field holding the text"
            raise _BadRecord(f'no "{text_key}" field; {hint}. Fields seen: {", ".join(record)}')
        body = record[text_key]
        if body is None or isinstance(body, int | float) and not isinstance(body, bool):
            body = "" if body is None else str(body)
        if not isinstance(body, str):
            raise _BadRecord(f'field "{text_key}" must be a string, got {type(body).__name__}')
        if id_field is not None and id_field not in record:
            raise _BadRecord(f'no "{id_field}" id field. Fields seen: {", ".join(record)}')
        id_key = id_field or next((k for k in ("_id", "id") if k in record), None)
        rid = _record_id(record[id_key], id_key) if id_key else f"{doc_id}#{line_no}"
        if rid in seen:
            raise _BadRecord(f"duplicate id '{rid}' (first on line {seen[rid]})")
        seen[rid] = line_no
        title = record.get(title_field)
        metadata = {k: v for k, v in record.items() if k not in (id_key, text_key, title_field)}
        return Document(doc_id=rid, text=body, title="" if title is None else str(title), source=str(path),
                        metadata=metadata)

    good = 0
    for line_no, record in read_jsonl(path, error=IngestError, on_bad_line=lambda n, why: bad.add(f"line {n}", why)):
        try:
            doc = document(line_no, record)
        except _BadRecord as exc:
            bad.add(f"line {line_no}", str(exc))
            continue
        good += 1
        yield doc
    bad.finish(good, "no records (the file is empty)")
