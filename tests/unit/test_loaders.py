"""Loaders: every supported type, BEIR JSONL conventions, and the error messages users will see."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pilotfish.errors import IngestError
from pilotfish.knowledge.loaders import SUPPORTED_SUFFIXES, load_documents, suffix_of


def _minimal_pdf(content: bytes) -> bytes:
    """A valid one-page PDF whose content stream is `content`, with a correct xref table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _load(path: Path, **kwargs: object) -> list:
    return load_documents(path, doc_id=path.name, **kwargs)  # type: ignore[arg-type]


# --- single-document files ---------------------------------------------------------------------------


def test_txt_title_normalisation_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"  Pilot fish  \r\n\r\nThey swim ahead.   \r\n\r\n\r\n\r\nSharks follow.\r\n")
    [doc] = _load(path)
    assert doc.doc_id == "notes.txt"
    assert doc.title == "Pilot fish"
    assert doc.text == "Pilot fish\n\nThey swim ahead.\n\nSharks follow."
    assert doc.source == str(path)
    assert doc.metadata == {"file_type": "txt"}


def test_txt_long_first_line_uses_stem_and_latin1_fallback(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_bytes(("x" * 130 + "\ncaf\xe9\n").encode("latin-1"))
    [doc] = _load(path)
    assert doc.title == "long"
    assert doc.text.endswith("café")


def test_binary_txt_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blob.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01")
    with pytest.raises(IngestError, match="looks binary"):
        _load(path)


def test_empty_single_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("  \n\n ")
    with pytest.raises(IngestError, match="empty document"):
        _load(path)


def test_markdown_is_stripped_lightly(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(
        "# The *Pilot* Guide\n\nSome **bold**, _italic_ and snake_case_name with a [link](http://x.org)"
        " ![logo](logo.png).\n\n```python\nx = 1  # keep me\n```\n\n> quoted `code`\n\n## Next ##\n"
    )
    [doc] = _load(path)
    assert doc.title == "The Pilot Guide"
    assert "Some bold, italic and snake_case_name with a link" in doc.text
    assert "x = 1  # keep me" in doc.text
    for gone in ("```", "**", "](", "logo", "## ", "> ", "`"):
        assert gone not in doc.text
    assert "quoted code" in doc.text and "Next" in doc.text
    assert doc.metadata["file_type"] == "md"


def test_markdown_without_heading_uses_stem(tmp_path: Path) -> None:
    path = tmp_path / "plain.markdown"
    path.write_text("Just text.\n")
    [doc] = _load(path)
    assert doc.title == "plain" and doc.metadata["file_type"] == "markdown"


def test_html_drops_boilerplate_and_separates_blocks(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Fish page</title><style>p{}</style></head><body><nav>Menu</nav>"
        "<h1>Heading</h1><p>First   para\n continues <b>bold</b>.</p><ul><li>one</li><li>two</li></ul>"
        "<script>var x = 1;</script><footer>Copyright</footer></body></html>"
    )
    [doc] = _load(path)
    assert doc.title == "Fish page"
    lines = [line for line in doc.text.split("\n") if line]
    assert lines == ["Heading", "First para continues bold.", "one", "two"]


def test_html_title_falls_back_to_h1(tmp_path: Path) -> None:
    path = tmp_path / "page.htm"
    path.write_text("<body><h1>Only H1</h1><p>Body text.</p></body>")
    [doc] = _load(path)
    assert doc.title == "Only H1" and doc.metadata["file_type"] == "html"


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    path = tmp_path / "hello.pdf"
    path.write_bytes(_minimal_pdf(b"BT /F1 24 Tf 72 720 Td (Hello PDF world) Tj ET"))
    [doc] = _load(path)
    assert doc.text == "Hello PDF world"
    assert doc.metadata == {"file_type": "pdf", "pages": 1}


def test_pdf_without_text_and_corrupt_pdf(tmp_path: Path) -> None:
    scanned = tmp_path / "scan.pdf"
    scanned.write_bytes(_minimal_pdf(b"0 0 m 100 100 l S"))
    with pytest.raises(IngestError, match=r"no extractable text \(scanned PDF\?\)"):
        _load(scanned)
    corrupt = tmp_path / "bad.pdf"
    corrupt.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(IngestError, match="not a readable PDF"):
        _load(corrupt)


def test_docx_paragraphs_and_title(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Report Title", level=1)
    document.add_paragraph("First paragraph.")
    document.add_paragraph("Second paragraph.")
    path = tmp_path / "report.docx"
    document.save(str(path))
    [doc] = _load(path)
    assert doc.title == "Report Title"
    assert doc.text == "Report Title\n\nFirst paragraph.\n\nSecond paragraph."
    assert doc.metadata == {"file_type": "docx"}

    bad = tmp_path / "bad.docx"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(IngestError, match="not a readable .docx"):
        _load(bad)


# --- CSV ---------------------------------------------------------------------------------------------


def test_csv_rows_with_id_column(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text("id,question,answer\nq1,What is it?,A fish.\nq2,Where?,\n")
    docs = _load(path)
    assert [d.doc_id for d in docs] == ["q1", "q2"]
    assert docs[0].text == "question: What is it?\nanswer: A fish."
    assert docs[1].text == "question: Where?"
    assert docs[0].metadata == {"question": "What is it?", "answer": "A fish."}
    assert docs[0].source == str(path)


def test_csv_fallback_ids_text_field_and_dialect(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("name;body;score\nalpha;First body;1\nbeta;Second body;2\n")
    docs = _load(path, text_field="body")
    assert [d.doc_id for d in docs] == ["rows.csv#row1", "rows.csv#row2"]
    assert [d.text for d in docs] == ["First body", "Second body"]
    assert docs[1].metadata == {"name": "beta", "score": "2"}
    by_name = _load(path, id_field="name", text_field="body")
    assert [d.doc_id for d in by_name] == ["alpha", "beta"]


def test_csv_errors(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(IngestError, match=r"column 'body' not found; available columns: a, b"):
        _load(path, text_field="body")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(IngestError, match="empty CSV"):
        _load(empty)
    dup = tmp_path / "dup.csv"
    dup.write_text("id,text\nx,one\nx,two\n")
    with pytest.raises(IngestError, match=r"dup.csv: row 2 \(line 3\): duplicate id 'x' \(first in row 1\)"):
        _load(dup)


def _skipping(path: Path, **kwargs: object) -> tuple[list, list[tuple[str, str]]]:
    """Load `path` with bad records skipped: (documents, [(where, reason)] reported)."""
    bad: list[tuple[str, str]] = []
    docs = load_documents(path, doc_id=path.name, on_bad_record=lambda *b: bad.append(b), **kwargs)  # type: ignore[arg-type]
    return docs, bad


def test_csv_bad_rows_are_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text('id,question,body\nq1,What?,A fish.\nq2,Where?\nq1,Again?,Dup.\n'
                    'q3,Who?,Sharks, mostly, and rays\nq4,When?,At dawn.\n')
    with pytest.raises(IngestError, match=r"faq.csv: row 2 \(line 3\): no value for the text column 'body'"):
        _load(path, text_field="body")  # strict by default: the first bad row stops the load
    docs, bad = _skipping(path, text_field="body")
    assert [d.doc_id for d in docs] == ["q1", "q4"]
    assert bad == [
        ("row 2 (line 3)", "no value for the text column 'body' (2 fields where the header has 3)"),
        ("row 3 (line 4)", "duplicate id 'q1' (first in row 1)"),
        ("row 4 (line 5)", "5 fields where the header has 3; is a quote missing around a value holding the "
                           "delimiter?"),
    ]
    docs, bad = _skipping(path)  # without --text-field a short row is text enough: its missing cells are empty
    assert [d.doc_id for d in docs] == ["q1", "q2", "q4"] and docs[1].text == "question: Where?"
    assert [where for where, _ in bad] == ["row 3 (line 4)", "row 4 (line 5)"]


# --- JSONL (BEIR conventions) ------------------------------------------------------------------------


def test_jsonl_beir_ids_titles_and_metadata(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "corpus.jsonl", [
        {"_id": "d1", "title": "T1", "text": "one", "metadata": {"year": 2020}, "score": 1.5},
        {"id": 7, "text": "two"},
        {"text": "three"},
    ])
    docs = _load(path)
    assert [d.doc_id for d in docs] == ["d1", "7", "corpus.jsonl#3"]
    assert [d.title for d in docs] == ["T1", "", ""]
    assert [d.text for d in docs] == ["one", "two", "three"]
    assert docs[0].metadata == {"metadata": {"year": 2020}, "score": 1.5}
    assert docs[1].metadata == {} and docs[0].source == str(path)


def test_jsonl_custom_fields(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "c.jsonl", [{"pid": "p1", "name": "N", "body": "hello", "id": "x"}])
    [doc] = _load(path, id_field="pid", text_field="body", title_field="name")
    assert (doc.doc_id, doc.title, doc.text, doc.metadata) == ("p1", "N", "hello", {"id": "x"})


def test_jsonl_gz(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "a", "text": "zipped"}) + "\n\n")
    assert suffix_of(path) == ".jsonl.gz"
    [doc] = _load(path)
    assert (doc.doc_id, doc.text) == ("a", "zipped")
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(IngestError, match="broken.jsonl.gz: cannot read file"):
        _load(broken)


def test_jsonl_bad_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"_id": "a", "text": "ok"}\n\n{"_id": "b", "text": \n')
    with pytest.raises(IngestError, match=r"bad.jsonl: line 3: not valid JSON \(Expecting value at column 22\)"):
        _load(path)
    path.write_text('{"_id": "a", "text": "ok"}\n[1, 2]\n')
    with pytest.raises(IngestError, match=r"line 2: expected a JSON object, got list"):
        _load(path)
    path.write_bytes(b'\xef\xbb\xbf{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "caf\xe9"}\n')  # BOM, then Latin-1
    with pytest.raises(IngestError, match=r"bad.jsonl: line 2: not UTF-8 text"):
        _load(path)


def test_jsonl_missing_text_field_message(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "c.jsonl", [{"_id": "a", "text": "ok"}, {"_id": "b", "body": "x"}])
    with pytest.raises(IngestError) as info:
        _load(path)
    message = str(info.value)
    assert 'line 2: no "text" field; set --text-field' in message
    assert "Fields seen: _id, body" in message


def test_jsonl_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "c.jsonl", [{"_id": "a", "text": "1"}, {"_id": "b", "text": "2"},
                                               {"_id": "a", "text": "3"}])
    with pytest.raises(IngestError, match=r"c.jsonl: line 3: duplicate id 'a' \(first on line 1\)"):
        _load(path)


def test_jsonl_bad_lines_are_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "a", "text": "one"}\n'
                    '{"_id": "b", "text": "two\n'  # cut short
                    '{"_id": "c", "text": "three"}\n'
                    '["not", "an", "object"]\n'
                    '{"_id": "d", "body": "no text field"}\n'
                    '{"_id": "a", "text": "dup"}\n')
    docs, bad = _skipping(path)
    assert [d.doc_id for d in docs] == ["a", "c"]
    assert bad == [
        ("line 2", "not valid JSON (Unterminated string starting at column 22)"),
        ("line 4", "expected a JSON object, got list"),
        ("line 5", 'no "text" field; set --text-field to the field holding the text. Fields seen: _id, body'),
        ("line 6", "duplicate id 'a' (first on line 1)"),
    ]


def test_a_file_of_only_bad_records_fails_as_a_whole(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "c.jsonl", [{"_id": "a", "body": "x"}, {"_id": "b", "body": "y"}])
    reported: list[tuple[str, str]] = []
    with pytest.raises(IngestError, match=r'c.jsonl: no usable lines; line 1: no "text" field; set --text-field'
                                          r'.*\(and 1 line more, bad too\)$'):
        load_documents(path, doc_id="c.jsonl", on_bad_record=lambda *b: reported.append(b))
    assert reported == []  # the file failed; its lines are not reported one by one as well
    rows = tmp_path / "rows.csv"
    rows.write_text("id,text\n,empty id\n")
    with pytest.raises(IngestError, match=r"rows.csv: no usable rows; row 1 \(line 2\): id field 'id' is empty$"):
        load_documents(rows, doc_id="rows.csv", on_bad_record=lambda *b: reported.append(b))


def test_many_bad_lines_are_listed_up_to_a_limit(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "good"}\n' + "oops\n" * 25)
    docs, bad = _skipping(path)
    assert len(docs) == 1 and len(bad) == 21
    assert bad[19][0] == "line 21"
    assert bad[20] == ("5 lines more", "bad too, not listed one by one; fix the ones above and ingest the file again")


def test_jsonl_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(IngestError, match="no records"):
        _load(path)


# --- dispatch ----------------------------------------------------------------------------------------


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "sheet.xyz"
    path.write_text("x")
    with pytest.raises(IngestError, match=r"unsupported file type '\.xyz'; supported: \.txt"):
        _load(path)
    with pytest.raises(IngestError, match="cannot read file: No such file"):
        _load(tmp_path / "missing.txt")
    assert suffix_of(Path("A.JSONL.GZ")) == ".jsonl.gz" and suffix_of(Path("b.MD")) == ".md"
    assert ".docx" in SUPPORTED_SUFFIXES and len(SUPPORTED_SUFFIXES) == 10
