"""`pilotfish ingest` through the CLI: its exit codes (0 all ingested, 3 partly failed, 1 nothing ingested),
the failures it lists, and its --json summary (BM25-only knowledge bases: no model loads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from pilotfish.cli import app
from pilotfish.cli.ingest import EXIT_FAILED, EXIT_PARTLY_FAILED
from pilotfish.knowledge.base import KnowledgeBase

GOOD = json.dumps({"_id": "j1", "text": "The zeppelin hovered over the harbour."}) + "\n"
BAD_LINE = '{"_id": "j2", "text": "cut short\n'
MORE = json.dumps({"_id": "j3", "text": "Marmalade is made from bitter oranges."}) + "\n"


def _ingest(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["ingest", *args, "--kb", str(tmp_path / "kb"), "--no-dense"])


@pytest.fixture(autouse=True)
def _kb(tmp_path: Path) -> None:
    """The knowledge base the commands ingest into, made with the words tokenizer: no model file needed."""
    KnowledgeBase.open(tmp_path / "kb", create=True, settings={"tokenizer": "words", "dense": False})


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "note.txt").write_text("Pilot fish\n\nSmall fish swim ahead of sharks.\n")
    return folder


def test_exit_codes_are_distinct_and_documented() -> None:
    assert (EXIT_FAILED, EXIT_PARTLY_FAILED) == (1, 3)  # 2 is click's usage error
    result = CliRunner().invoke(app, ["ingest", "--help"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 0
    assert "0 when nothing failed; 3 when something failed and the rest was ingested; 1 when nothing" in flat


def test_everything_ingested_exits_0(tmp_path: Path, docs: Path) -> None:
    (docs / "data.jsonl").write_text(GOOD + MORE)
    result = _ingest(tmp_path, str(docs))
    assert result.exit_code == 0, result.output
    assert "0 failed, in" in result.stdout and "exit code" not in result.output


def test_a_bad_jsonl_line_is_listed_and_exits_3_with_the_rest_ingested(tmp_path: Path, docs: Path) -> None:
    data = docs / "data.jsonl"
    data.write_text(GOOD + BAD_LINE + MORE)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    result = _ingest(tmp_path, str(docs))
    assert result.exit_code == EXIT_PARTLY_FAILED, result.output
    assert "ingested 2 new and 0 changed files (3 documents" in result.stdout
    assert "2 failed (exit code 3)" in result.stdout  # the summary line says so
    assert f"failed {data}: line 2: not valid JSON (Unterminated string starting at column 23)" in result.stderr
    assert "broken.pdf: not a readable PDF" in result.stderr
    assert "2 file(s) or record(s) failed and were skipped (reasons above); the rest was ingested" in result.stderr

    # unchanged files are skipped; a new file that fails on its own is still a partial failure
    (docs / "empty.txt").write_text("   \n")
    again = _ingest(tmp_path, str(docs))
    assert again.exit_code == EXIT_PARTLY_FAILED, again.output
    assert "2 unchanged skipped" in again.stdout and "empty.txt: empty document" in again.stderr


def test_json_summary_is_printed_before_the_non_zero_exit(tmp_path: Path, docs: Path) -> None:
    data = docs / "data.jsonl"
    data.write_text(GOOD + BAD_LINE + MORE)
    result = _ingest(tmp_path, str(docs), "--json")
    assert result.exit_code == EXIT_PARTLY_FAILED, result.output
    summary = json.loads(result.stdout)
    assert summary["documents"] == 3 and summary["total_documents"] == 3
    assert summary["failed"] == [[str(data), "line 2: not valid JSON (Unterminated string starting at column 23)"]]
    assert "(reasons in the JSON)" in result.stderr


def test_nothing_ingested_exits_1(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "all_bad.jsonl").write_text("not json\n" + BAD_LINE)
    result = _ingest(tmp_path, str(folder), str(tmp_path / "missing.txt"))
    assert result.exit_code == EXIT_FAILED, result.output
    assert "all_bad.jsonl: no usable lines; line 1: not valid JSON" in result.stderr
    assert "missing.txt: no such file or folder" in result.stderr
    assert "nothing was ingested: 2 file(s) or record(s) failed" in result.stderr


def test_an_unknown_dense_index_names_the_kinds_and_creates_nothing(tmp_path: Path, docs: Path) -> None:
    result = CliRunner().invoke(app, ["ingest", str(docs), "--kb", str(tmp_path / "new-kb"), "--dense-index",
                                      "annoy"])
    assert result.exit_code == 1
    assert "unknown --dense-index 'annoy'" in result.output and "ivfsq8" in result.output
    assert not (tmp_path / "new-kb").exists()
