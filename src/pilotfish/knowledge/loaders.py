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
import io
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pilotfish.errors import IngestError
from pilotfish.knowledge.records import RECORD_SUFFIXES, iter_records
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
    """Every document of one file as a list (`iter_documents` streams them)."""
    return list(iter_documents(path, doc_id=doc_id, id_field=id_field, text_field=text_field,
                               title_field=title_field, on_bad_record=on_bad_record))


def iter_documents(
    path: Path,
    *,
    doc_id: str,
    id_field: str | None = None,
    text_field: str | None = None,
    title_field: str = "title",
    on_bad_record: Callable[[str, str], None] | None = None,
) -> Iterator[Document]:
    """The documents of one file, streamed: a CSV or JSONL file record by record, in constant memory.
    `doc_id` is the stable id for the file (the caller passes the path relative to the ingest root);
    multi-record files derive record ids from it or from an id field.

    A csv row or jsonl line that cannot become a document (not JSON, no text field, a duplicate id...)
    raises `IngestError`, unless `on_bad_record(where, reason)` is given, e.g. ("line 3", "not valid
    JSON (...)"): then it is skipped and reported there once the file has given at least one document.
    A file whose records are all bad raises, naming the first."""
    path = Path(path)
    suffix = suffix_of(path)
    if suffix not in SUPPORTED_SUFFIXES:
        shown = f"'{suffix}'" if suffix else "(no suffix)"
        raise IngestError(f"{path}: unsupported file type {shown}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    if suffix in RECORD_SUFFIXES:
        yield from iter_records(path, doc_id=doc_id, id_field=id_field, text_field=text_field,
                                title_field=title_field, report=on_bad_record)
        return
    text, title, extra = _SINGLE_LOADERS[suffix](path)
    text = _normalise(text)
    if not text:
        raise IngestError(f"{path}: empty document (no text after extraction)")
    file_type = "markdown" if suffix == ".markdown" else "html" if suffix == ".htm" else suffix[1:]
    metadata = {"file_type": file_type, **extra}
    yield Document(doc_id=doc_id, text=text, title=title.strip() or path.stem, source=str(path), metadata=metadata)


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
