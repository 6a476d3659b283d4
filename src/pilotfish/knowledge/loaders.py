"""Load one file into `Document`s: txt, md, html, pdf, docx (one document each), csv and jsonl(.gz) (one
document per row / line, following BEIR corpus conventions: `_id`, `title`, `text`).

Every failure is an `IngestError` that names the file (and the line or column) and says what to do. In a
csv or jsonl file, a line or row that cannot become a document either stops the load (the default) or,
given `on_bad_record`, is reported there and skipped, as bulk loaders do; a file without one good record
still fails as a whole.

>>> import tempfile
>>> from pathlib import Path
>>> p = Path(tempfile.mkdtemp()) / "note.txt"
>>> _ = p.write_text("Pilot fish\\n\\nSmall fish swim ahead of sharks.\\n")
>>> [(d.doc_id, d.title, d.metadata["file_type"]) for d in load_documents(p, doc_id="note.txt")]
[('note.txt', 'Pilot fish', 'txt')]
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilotfish.errors import IngestError
from pilotfish.jsonl import read_jsonl
from pilotfish.types import Document

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".csv", ".jsonl", ".jsonl.gz", ".docx",
)
_MAX_TITLE_CHARS = 120


def suffix_of(path: Path) -> str:
    """The lower-cased suffix that picks the loader; `.jsonl.gz` counts as one suffix."""
    name = Path(path).name.lower()
    return ".jsonl.gz" if name.endswith(".jsonl.gz") else Path(name).suffix


def load_documents(
    path: Path,
    *,
    doc_id: str,
    id_field: str | None = None,
    text_field: str | None = None,
    title_field: str = "title",
    on_bad_record: Callable[[str, str], None] | None = None,
) -> list[Document]:
    """Load one file into Documents. `doc_id` is the stable id for the file (the caller passes the path
    relative to the ingest root); multi-record files derive record ids from it or from an id field.

    A csv row or jsonl line that cannot become a document (not JSON, no text field, a duplicate id...)
    raises `IngestError`, unless `on_bad_record(where, reason)` is given, e.g. ("line 3", "not valid
    JSON (...)"): then it is skipped and reported there once the file has given at least one document.
    A file whose records are all bad raises, naming the first."""
    path = Path(path)
    suffix = suffix_of(path)
    if suffix not in SUPPORTED_SUFFIXES:
        shown = f"'{suffix}'" if suffix else "(no suffix)"
        raise IngestError(f"{path}: unsupported file type {shown}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    if suffix == ".csv":
        return _load_csv(path, doc_id, id_field, text_field, title_field, _BadRecords(path, "row", on_bad_record))
    if suffix in (".jsonl", ".jsonl.gz"):
        return _load_jsonl(path, doc_id, id_field, text_field, title_field,
                           _BadRecords(path, "line", on_bad_record))
    text, title, extra = _SINGLE_LOADERS[suffix](path)
    text = _normalise(text)
    if not text:
        raise IngestError(f"{path}: empty document (no text after extraction)")
    file_type = "markdown" if suffix == ".markdown" else "html" if suffix == ".htm" else suffix[1:]
    metadata = {"file_type": file_type, **extra}
    return [Document(doc_id=doc_id, text=text, title=title.strip() or path.stem, source=str(path), metadata=metadata)]


# --- shared helpers ---------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{path}: cannot read file: {exc.strerror or exc}") from exc


def _decode(data: bytes, path: Path) -> str:
    """Bytes -> str: BOM-aware UTF-8/UTF-16, else latin-1; refuse content that looks binary."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    if b"\x00" in data:
        raise IngestError(f"{path}: file looks binary (contains NUL bytes); is the suffix right?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    sample = text[:4096]
    controls = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\n\r\t\f") or 0x7F <= ord(ch) < 0xA0)
    if sample and controls / len(sample) > 0.1:
        raise IngestError(f"{path}: file looks binary (not UTF-8 text); is the suffix right?")
    logger.debug("%s is not valid UTF-8; decoded as latin-1", path)
    return text


def _normalise(text: str) -> str:
    """Remove \\r, strip trailing spaces on each line, collapse 3+ newlines into 2, strip the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _first_line_title(text: str, path: Path) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= _MAX_TITLE_CHARS else path.stem
    return path.stem


# --- single-document formats -------------------------------------------------------------------------

_Loaded = tuple[str, str, dict[str, Any]]  # text, title, extra metadata


def _load_txt(path: Path) -> _Loaded:
    text = _normalise(_decode(_read_bytes(path), path))
    return text, _first_line_title(text, path), {}


_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)|!\[[^\]]*\]\[[^\]]*\]")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\[[^\]]*\]")
_MD_LINK_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+\S+.*$")
_MD_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_MD_RULE = re.compile(r"^\s{0,3}([-=*_])(?:\s*\1){2,}\s*$")
_MD_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_MD_EMPHASIS = (
    re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"),
    re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"),
    re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"),
    re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"),
)


def _md_inline(line: str) -> str:
    line = _MD_IMAGE.sub("", line)
    line = _MD_LINK.sub(lambda m: m.group(1) or m.group(2), line)
    line = re.sub(r"`([^`]+)`", r"\1", line)
    for pattern in _MD_EMPHASIS:
        line = pattern.sub(lambda m: m.group(m.lastindex or 1), line)
    line = re.sub(r"<!--.*?-->", "", line)
    return re.sub(r"^\s{0,3}>\s?", "", line)


def _load_markdown(path: Path) -> _Loaded:
    raw = _decode(_read_bytes(path), path).replace("\r\n", "\n").replace("\r", "\n")
    front = re.match(r"---\n.*?\n---\n", raw, flags=re.DOTALL)  # YAML front matter
    if front:
        raw = raw[front.end():]
    title, out, in_code = "", [], False
    for line in raw.split("\n"):
        if _MD_FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            out.append(line)
            continue
        if _MD_LINK_DEF.match(line) or _MD_RULE.match(line):
            continue
        heading = _MD_HEADING.match(line)
        if heading:
            line = _md_inline(heading.group(2))
            if not title and len(heading.group(1)) == 1:
                title = line.strip()
            out.append(line)
            continue
        out.append(_md_inline(line))
    return "\n".join(out), title, {}


_HTML_DROP = ("script", "style", "nav", "footer", "head", "noscript", "template")
_HTML_BLOCKS = (
    "p", "div", "section", "article", "main", "header", "aside", "blockquote", "pre", "ul", "ol", "li",
    "dl", "dt", "dd", "table", "thead", "tbody", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "figure",
    "figcaption", "form", "fieldset", "address", "details", "summary", "hr", "body", "caption",
)


def _load_html(path: Path) -> _Loaded:
    from bs4 import BeautifulSoup, Comment, NavigableString

    soup = BeautifulSoup(_read_bytes(path), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if not title and (h1 := soup.find("h1")):
        title = h1.get_text(" ", strip=True)
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    for tag in soup.find_all(_HTML_DROP):
        tag.decompose()
    for node in list(soup.find_all(string=True)):  # HTML whitespace is collapsible, except in <pre>
        if node.find_parent("pre") is None:
            node.replace_with(NavigableString(re.sub(r"\s+", " ", str(node))))
    for br in soup.find_all("br"):
        br.replace_with(NavigableString("\n"))
    for cell in soup.find_all(("td", "th")):
        cell.append(NavigableString(" "))
    for block in soup.find_all(_HTML_BLOCKS):
        block.insert_before(NavigableString("\n"))
        block.append(NavigableString("\n"))
    lines = (line.strip() for line in soup.get_text().split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text, title, {}


def _load_pdf(path: Path) -> _Loaded:
    from pypdf import PdfReader

    data = _read_bytes(path)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(f"{path}: PDF is encrypted with a password; decrypt it first")
        pages = [page.extract_text() or "" for page in reader.pages]
        info_title = (reader.metadata.title if reader.metadata else None) or ""
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files
        raise IngestError(f"{path}: not a readable PDF ({type(exc).__name__}: {exc})") from exc
    if not any(page.strip() for page in pages):
        raise IngestError(f"{path}: no extractable text (scanned PDF?); run OCR on it first")
    text = "\n\n".join(page.strip() for page in pages)
    title = str(info_title).strip() or _first_line_title(_normalise(text), path)
    return text, title, {"pages": len(pages)}


def _load_docx(path: Path) -> _Loaded:
    import docx
    from docx.table import Table

    data = _read_bytes(path)
    try:
        document = docx.Document(io.BytesIO(data))
        parts: list[str] = []
        heading = ""
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                rows = (" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows)
                parts.append("\n".join(rows))
                continue
            para = block.text.strip()
            if not para:
                continue
            style = (block.style.name if block.style is not None else "") or ""
            if not heading and style.startswith(("Title", "Heading")):
                heading = para
            parts.append(para)
        title = (document.core_properties.title or "").strip() or heading
    except Exception as exc:  # python-docx raises zip, XML and KeyError types on damaged files
        raise IngestError(f"{path}: not a readable .docx file ({type(exc).__name__}: {exc})") from exc
    return "\n\n".join(parts), title, {}


_SINGLE_LOADERS: dict[str, Callable[[Path], _Loaded]] = {
    ".txt": _load_txt, ".md": _load_markdown, ".markdown": _load_markdown, ".html": _load_html,
    ".htm": _load_html, ".pdf": _load_pdf, ".docx": _load_docx,
}


# --- multi-record formats ----------------------------------------------------------------------------

_MAX_LISTED_BAD = 20  # bad records of one file reported one by one; the rest as one count


class _BadRecord(Exception):
    """Why one line or row cannot become a document (the message is the reason, without the file)."""


class _BadRecords:
    """The bad lines or rows of one file. Without `report` the first one raises `IngestError`; with it
    they are kept and, once the file has given documents, reported: the first `_MAX_LISTED_BAD` one by
    one, the rest as a count. A file without a good record fails as a whole, naming its first bad one."""

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

    def finish(self, documents: list[Document], empty: str) -> list[Document]:
        """`documents` if there are any (reporting the bad records), else IngestError."""
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
        return documents

    def _count(self, n: int) -> str:
        return f"{n} {self.unit}" if n == 1 else f"{n} {self.unit}s"


def _record_id(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _BadRecord(f"id field '{field}' must be a string or integer, got {value!r}")
    value = str(value).strip()
    if not value:
        raise _BadRecord(f"id field '{field}' is empty")
    return value


def _load_csv(path: Path, doc_id: str, id_field: str | None, text_field: str | None,
              title_field: str, bad: _BadRecords) -> list[Document]:
    text = _decode(_read_bytes(path), path)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # long text cells are normal here
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    rows: list[tuple[int, list[str]]] = []  # (line the row starts on, values)
    try:
        header = [name.strip() for name in next(reader, [])]
        line = reader.line_num + 1
        for values in reader:
            rows.append((line, values))
            line = reader.line_num + 1
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
    documents: list[Document] = []
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

    for n, (line, values) in enumerate(rows, start=1):
        try:
            doc = document(n, values)
        except _BadRecord as exc:
            bad.add(f"row {n} (line {line})", str(exc))
            continue
        if doc is not None:
            documents.append(doc)
    return bad.finish(documents, "empty CSV (a header but no data rows)")


def _load_jsonl(path: Path, doc_id: str, id_field: str | None, text_field: str | None,
                title_field: str, bad: _BadRecords) -> list[Document]:
    text_key = text_field or "text"
    documents: list[Document] = []
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

    for line_no, record in read_jsonl(path, error=IngestError, on_bad_line=lambda n, why: bad.add(f"line {n}", why)):
        try:
            documents.append(document(line_no, record))
        except _BadRecord as exc:
            bad.add(f"line {line_no}", str(exc))
    return bad.finish(documents, "no records (the file is empty)")
