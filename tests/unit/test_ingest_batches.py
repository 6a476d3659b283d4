"""Ingest in staged batches: a large JSONL or CSV file is streamed, and an ingest that dies halfway resumes from
its last staged batch (nothing lost, nothing duplicated, nothing already stored touched). BM25 only, no model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

import pilotfish.knowledge.staging as staging_module
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.knowledge.records import count_records, iter_records
from pilotfish.knowledge.store import ChunkRow, DocumentRow

SETTINGS = {"tokenizer": "words", "dense": False}


def _jsonl(path: Path, n: int, *, start: int = 0, word: str = "fish") -> Path:
    with path.open("w") as fh:
        for i in range(start, start + n):
            fh.write(json.dumps({"_id": f"d{i}", "title": f"Doc {i}", "text": f"record {i} about {word} number {i}."})
                     + "\n")
    return path


def _chunk_ids(kb: KnowledgeBase) -> list[str]:
    with kb.store.reading() as s:
        return list(s.scalars(select(ChunkRow.chunk_id).order_by(ChunkRow.chunk_id)))


class _Killed(Exception):
    pass


def _die_after(monkeypatch: pytest.MonkeyPatch, batches: int) -> list[int]:
    """Make the ingest die (as a kill would) when it is about to stage batch `batches + 1`."""
    real = staging_module.IngestStaging.add_batch
    staged: list[int] = []

    def add_batch(self, *args, **kwargs):
        if len(staged) == batches:
            raise _Killed
        real(self, *args, **kwargs)
        staged.append(1)

    monkeypatch.setattr(staging_module.IngestStaging, "add_batch", add_batch)
    return staged


def test_records_stream_one_at_a_time_and_are_counted_for_the_bar(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "big.jsonl", 50_000)
    docs = iter_records(path, doc_id="big.jsonl")
    assert next(docs).doc_id == "d0"  # the first record comes before the file is read to its end
    assert count_records(path) == 50_000
    csv = tmp_path / "t.csv"
    csv.write_text("id,text\n1,one\n2,two")
    assert [d.doc_id for d in iter_records(csv, doc_id="t.csv", text_field="text")] == ["1", "2"]
    assert count_records(csv) == 3


def test_a_killed_ingest_resumes_from_its_last_staged_batch(tmp_path: Path, monkeypatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    _jsonl(docs / "a.jsonl", 300)
    (docs / "b.md").write_text("# Pilot fish\n\nThey swim ahead of sharks.")
    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings=SETTINGS)
    staged = _die_after(monkeypatch, 2)
    with pytest.raises(_Killed):
        kb.ingest([docs], batch_chunks=50)
    assert staged == [1, 1]
    assert kb.store.counts()["chunks"] == 0 and kb.index_generation() == 0  # nothing committed yet
    monkeypatch.undo()

    report = kb.ingest([docs], batch_chunks=50)
    assert report.resumed_batches == 2
    assert report.resumed_records == 2 * 50  # one chunk a document: 50 records a batch
    assert report.documents == 301 and report.chunks == report.total_chunks == 301
    fresh = KnowledgeBase.open(tmp_path / "fresh", create=True, settings=SETTINGS)
    fresh.ingest([docs], batch_chunks=50)
    assert _chunk_ids(kb) == _chunk_ids(fresh)  # nothing lost, nothing twice
    assert kb.search("record 250 fish", mode="bm25", top_k=1)[0].doc_id == "d250"
    assert not (kb.directory / "indexes" / "staging").exists()  # cleared once committed


def test_a_kill_before_the_commit_loses_nothing_already_stored(tmp_path: Path, monkeypatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    _jsonl(docs / "a.jsonl", 100)
    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings=SETTINGS)
    kb.ingest([docs])
    before = _chunk_ids(kb)
    _jsonl(docs / "a.jsonl", 100, word="shark")  # changed: every record is read again
    _jsonl(docs / "c.jsonl", 200, start=1000)
    _die_after(monkeypatch, 1)
    with pytest.raises(_Killed):
        kb.ingest([docs], batch_chunks=40)
    monkeypatch.undo()
    reopened = KnowledgeBase.open(kb.directory)
    assert _chunk_ids(reopened) == before
    assert reopened.search("fish number 17", mode="bm25", top_k=1)[0].doc_id == "d17"
    report = reopened.ingest([docs], batch_chunks=40)
    assert report.resumed_batches == 1 and report.total_chunks == 300
    assert reopened.search("shark number 17", mode="bm25", top_k=1)[0].doc_id == "d17"


def test_a_file_changed_since_the_kill_is_read_again_from_its_start(tmp_path: Path, monkeypatch) -> None:
    path = _jsonl(tmp_path / "a.jsonl", 200)
    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings=SETTINGS)
    _die_after(monkeypatch, 1)
    with pytest.raises(_Killed):
        kb.ingest([path], batch_chunks=30)
    monkeypatch.undo()
    _jsonl(path, 150, word="whale")
    report = kb.ingest([path], batch_chunks=30)
    assert report.resumed_records == 0 and report.total_chunks == 150
    assert kb.search("whale number 33", mode="bm25", top_k=1)[0].doc_id == "d33"
    with kb.store.reading() as s:
        assert s.scalar(select(func.count(DocumentRow.id)).where(DocumentRow.text.like("%fish%"))) == 0


def test_batches_staged_with_other_settings_are_not_taken_up(tmp_path: Path, monkeypatch) -> None:
    path = _jsonl(tmp_path / "a.jsonl", 200)
    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings=SETTINGS)
    _die_after(monkeypatch, 1)
    with pytest.raises(_Killed):
        kb.ingest([path], batch_chunks=30, collection="papers")
    monkeypatch.undo()
    report = kb.ingest([path], batch_chunks=30, collection="notes")  # another collection: other documents
    assert report.resumed_batches == 0
    assert {p.metadata["collection"] for p in kb.search("record", mode="bm25", top_k=5)} == {"notes"}


def test_a_file_broken_halfway_is_refused_whole_and_its_batches_dropped(tmp_path: Path) -> None:
    import gzip

    raw = _jsonl(tmp_path / "rows.jsonl", 3000).read_bytes()
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress(raw)[: len(gzip.compress(raw)) * 2 // 3])  # a truncated download
    assert next(iter_records(path, doc_id="rows")).doc_id == "d0"  # the first records read fine
    (tmp_path / "ok.md").write_text("# Fine\n\nA good file.")
    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings=SETTINGS)
    report = kb.ingest([path, tmp_path / "ok.md"], batch_chunks=20)
    assert report.total_documents == 1  # none of the broken file's records, though batches of it were staged
    assert [f for f, _ in report.failed] == [str(path)] and "cannot read file" in report.failed[0][1]
    assert not (kb.directory / "indexes" / "staging").exists()


def test_batch_size_must_be_positive(tmp_path: Path) -> None:
    from pilotfish.errors import IngestError

    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings=SETTINGS)
    with pytest.raises(IngestError, match="at least 1 chunk"):
        kb.ingest([_jsonl(tmp_path / "a.jsonl", 3)], batch_chunks=0)
