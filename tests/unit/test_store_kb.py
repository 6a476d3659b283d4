"""KnowledgeStore (SQL) and KnowledgeBase ingest/search without model files (words tokenizer, BM25 only)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import delete, select

import pilotfish.knowledge.ingest as ingest_module
from pilotfish.errors import ConfigError, KnowledgeBaseError, QueryError
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.knowledge.store import ChunkRow, DocumentRow, KnowledgeStore, SourceRow

SETTINGS = {"tokenizer": "words", "dense": False}

# --- KnowledgeStore -----------------------------------------------------------------------------


def _source(path: str, doc_ids: list[str], chunks_per_doc: int = 2) -> SourceRow:
    source = SourceRow(path=path, collection="c", content_hash="h" * 64, size=1, mtime=0.0,
                       ingested_at=dt.datetime(2024, 1, 1))
    for doc_id in doc_ids:
        doc = DocumentRow(doc_id=doc_id, collection="c", title="", text=f"text of {doc_id}", meta={"k": doc_id})
        doc.chunks = [ChunkRow(chunk_id=f"{doc_id}::{i}", ord=i, text=f"chunk {i}", start_char=0, end_char=1,
                               n_tokens=1) for i in range(chunks_per_doc)]
        source.documents.append(doc)
    return source


@pytest.fixture()
def store(tmp_path) -> KnowledgeStore:
    s = KnowledgeStore(f"sqlite:///{tmp_path / 'kb.db'}")
    assert not s.has_schema()
    s.create()
    assert s.has_schema()
    return s


def test_store_meta_get_set(store: KnowledgeStore) -> None:
    assert store.get_meta("index_generation", 0) == 0
    assert store.get_meta("missing") is None
    with store.transaction() as session:
        store.set_meta(session, "index_generation", 3)
        store.set_meta(session, "settings", {"a": [1, 2], "b": {"c": "ü"}})
    assert store.get_meta("index_generation") == 3
    assert store.get_meta("settings") == {"a": [1, 2], "b": {"c": "ü"}}
    with store.transaction() as session:
        store.set_meta(session, "index_generation", 4)  # update in place
        assert store.get_meta("index_generation", session=session) == 4
    assert store.get_meta("index_generation") == 4
    # a failed transaction leaves the value alone
    with pytest.raises(RuntimeError), store.transaction() as session:
        store.set_meta(session, "index_generation", 99)
        raise RuntimeError("boom")
    assert store.get_meta("index_generation") == 4
    # a second store on the same file sees the committed values
    assert KnowledgeStore(store.url).get_meta("index_generation") == 4


def test_store_delete_source_removes_its_documents_and_chunks(store: KnowledgeStore) -> None:
    with store.transaction() as session:
        session.add(_source("/a.txt", ["a1", "a2"]))
        session.add(_source("/b.txt", ["b1"], chunks_per_doc=3))
    assert store.counts() == {"sources": 2, "documents": 3, "chunks": 7, "tables": 0, "triples": 0, "entities": 0}
    assert set(store.sources()) == {"/a.txt", "/b.txt"}
    with store.transaction() as session:
        store.delete_source(session, "/a.txt")
        store.delete_source(session, "/not-there.txt")  # no-op
    assert store.counts() == {"sources": 1, "documents": 1, "chunks": 3, "tables": 0, "triples": 0, "entities": 0}
    with store.reading() as session:
        assert [r.chunk_id for r in store.iter_chunks(session)] == ["b1::0", "b1::1", "b1::2"]
        assert [(r.doc_id, r.path) for r in store.iter_chunks(session, batch=2)] == [("b1", "/b.txt")] * 3


def test_store_foreign_key_cascade_in_the_database(store: KnowledgeStore) -> None:
    with store.transaction() as session:
        session.add(_source("/a.txt", ["a1", "a2"]))
        session.add(_source("/b.txt", ["b1"]))
    with store.transaction() as session:  # a plain SQL delete: the ON DELETE CASCADE must do the rest
        session.execute(delete(SourceRow).where(SourceRow.path == "/a.txt"))
    assert store.counts() == {"sources": 1, "documents": 1, "chunks": 2, "tables": 0, "triples": 0, "entities": 0}
    with store.reading() as session:
        assert session.scalars(select(DocumentRow.doc_id)).all() == ["b1"]


def test_store_taken_doc_ids(store: KnowledgeStore) -> None:
    many = [f"d{i}" for i in range(1200)]  # more than one 500-id batch
    with store.transaction() as session:
        session.add(_source("/a.txt", ["x", "y"], chunks_per_doc=1))
        session.add(_source("/many.jsonl", many, chunks_per_doc=0))
    with store.reading() as session:
        assert store.taken_doc_ids(session, []) == {}
        assert store.taken_doc_ids(session, ["x", "nope"]) == {"x": "/a.txt"}
        found = store.taken_doc_ids(session, ["y", *many[::100], "zzz", many[-1]])
    assert found == {"y": "/a.txt", **{d: "/many.jsonl" for d in [*many[::100], many[-1]]}}


def test_store_bad_url_is_a_knowledge_base_error() -> None:
    with pytest.raises(KnowledgeBaseError):
        KnowledgeStore("nosuchdialect://x")


# --- KnowledgeBase ------------------------------------------------------------------------------


def _write_docs(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir(parents=True)
    (docs / "alpha.txt").write_text("Alpha report\n\nThe pelican migrates across the estuary every spring.\n")
    (docs / "notes.md").write_text("# Beta notes\n\nQuantum **tunnelling** explains the odd flux readings.\n")
    (docs / "data.jsonl").write_text(
        json.dumps({"_id": "j1", "title": "Gamma", "text": "The zeppelin hovered over the harbour.", "year": 1937})
        + "\n" + json.dumps({"_id": "j2", "text": "Marmalade is made from bitter oranges."}) + "\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf\x00\x01")
    (docs / ".hidden.txt").write_text("hidden files are never ingested: pelican")
    return docs


def _ids(passages) -> list[str]:
    return [p.doc_id for p in passages]


@pytest.fixture()
def kb(tmp_path) -> KnowledgeBase:
    return KnowledgeBase.open(tmp_path / "kb", create=True, settings=SETTINGS)


def test_kb_ingest_report_and_search(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = _write_docs(tmp_path)
    report = kb.ingest([docs])
    assert (report.files_new, report.files_changed, report.files_skipped, report.files_pruned) == (3, 0, 0, 0)
    assert report.documents == 4 and report.total_documents == 4
    assert report.chunks >= 4 and report.total_chunks == report.chunks
    assert report.embedded == 0
    assert len(report.failed) == 1
    failed_path, reason = report.failed[0]
    assert failed_path.endswith("broken.pdf")
    assert "PDF" in reason and not reason.startswith(failed_path)  # a reason, not the path again
    assert kb.index_generation() == 1

    assert _ids(kb.search("pelican estuary", mode="bm25"))[0] == "docs/alpha.txt"
    assert _ids(kb.search("zeppelin", mode="bm25")) == ["j1"]
    assert _ids(kb.search("oranges marmalade"))[0] == "j2"  # hybrid falls back to bm25 without dense
    hit = kb.search("quantum tunnelling", mode="bm25")[0]
    assert hit.doc_id == "docs/notes.md" and hit.title == "Beta notes"
    assert hit.metadata["file_type"] == "md" and hit.metadata["collection"] == "default"
    assert Path(hit.source) == (docs / "notes.md").resolve()
    assert "hidden" not in " ".join(p.text for p in kb.search("pelican", mode="bm25", top_k=10))
    stats = kb.stats()
    assert stats["documents"] == 4 and stats["index_generation"] == 1


def test_kb_filters_by_collection_and_file_type(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = _write_docs(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "delta.txt").write_text("Delta field notes\n\nA pelican colony nests in the papers archive.\n")
    kb.ingest([docs])
    report = kb.ingest([other], collection="papers")
    assert report.files_new == 1 and report.total_documents == 5
    assert set(_ids(kb.search("pelican", mode="bm25"))) == {"docs/alpha.txt", "other/delta.txt"}
    assert _ids(kb.search("pelican", mode="bm25", filters={"collection": "papers"})) == ["other/delta.txt"]
    assert _ids(kb.search("pelican", mode="bm25", filters={"collection": ["default"]})) == ["docs/alpha.txt"]
    both = kb.search("pelican", mode="bm25", filters={"collection": ["default", "papers"]})
    assert set(_ids(both)) == {"docs/alpha.txt", "other/delta.txt"}
    assert _ids(kb.search("pelican quantum", mode="bm25", filters={"file_type": "md"})) == ["docs/notes.md"]
    assert kb.search("pelican", mode="bm25", filters={"file_type": "md"}) == []
    assert kb.search("pelican", mode="bm25", filters={"collection": "papers", "file_type": "md"}) == []


def test_kb_incremental_reingest_change_and_prune(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = _write_docs(tmp_path)
    kb.ingest([docs])
    generation = kb.index_generation()

    again = kb.ingest([docs])
    assert (again.files_new, again.files_changed, again.files_skipped) == (0, 0, 3)
    assert kb.index_generation() == generation
    assert again.total_documents == 4

    (docs / "alpha.txt").write_text("Alpha report\n\nAn albatross glides above the open ocean.\n")
    changed = kb.ingest([docs])
    assert (changed.files_new, changed.files_changed, changed.files_skipped) == (0, 1, 2)
    assert kb.index_generation() == generation + 1
    assert _ids(kb.search("albatross ocean", mode="bm25")) == ["docs/alpha.txt"]
    assert kb.search("pelican estuary", mode="bm25") == []
    assert changed.total_documents == 4
    assert [p.name for p in (kb.directory / "indexes").iterdir()] == [f"gen-{generation + 1:06d}"]

    (docs / "notes.md").unlink()
    not_pruned = kb.ingest([docs])  # without prune the deleted file's document stays
    assert not_pruned.files_pruned == 0
    assert _ids(kb.search("quantum", mode="bm25")) == ["docs/notes.md"]
    pruned = kb.ingest([docs], prune=True)
    assert pruned.files_pruned == 1
    assert kb.search("quantum tunnelling", mode="bm25") == []
    assert pruned.total_documents == 3
    # a fresh handle on the folder sees the same state
    reopened = KnowledgeBase.open(kb.directory)
    assert reopened.store.counts()["documents"] == 3
    assert _ids(reopened.search("albatross", mode="bm25")) == ["docs/alpha.txt"]


def test_kb_duplicate_jsonl_id_in_two_files(kb: KnowledgeBase, tmp_path: Path) -> None:
    folder = tmp_path / "dups"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps({"_id": "same", "text": "first file owns the walrus"}) + "\n")
    (folder / "b.jsonl").write_text(json.dumps({"_id": "same", "text": "second file mentions a narwhal"}) + "\n"
                                    + json.dumps({"_id": "other", "text": "and an otter"}) + "\n")
    report = kb.ingest([folder])
    assert len(report.failed) == 1
    path, reason = report.failed[0]
    assert path.endswith("b.jsonl")
    assert "already belongs to" in reason and "'same'" in reason and "a.jsonl" in reason
    assert report.total_documents == 1
    assert _ids(kb.search("walrus", mode="bm25")) == ["same"]
    assert kb.search("narwhal otter", mode="bm25") == []

    # the same clash across two ingests
    later = tmp_path / "later"
    later.mkdir()
    (later / "c.jsonl").write_text(json.dumps({"_id": "same", "text": "a third file with a seal"}) + "\n")
    generation = kb.index_generation()
    report = kb.ingest([later])
    assert [p for p, _ in report.failed] == [str(later / "c.jsonl")]
    assert "already belongs to" in report.failed[0][1]
    assert kb.index_generation() == generation  # nothing was written, so the indexes were not rebuilt
    assert _ids(kb.search("walrus", mode="bm25")) == ["same"]
    assert kb.search("seal", mode="bm25") == []


def test_kb_open_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(KnowledgeBaseError, match="pilotfish ingest"):
        KnowledgeBase.open(missing)
    assert not missing.exists()
    (tmp_path / "empty-folder").mkdir()
    with pytest.raises(KnowledgeBaseError, match="pilotfish ingest"):
        KnowledgeBase.open(tmp_path / "empty-folder")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(KnowledgeBaseError):
        KnowledgeBase.open(tmp_path / "afile", create=True)
    with pytest.raises(ConfigError, match="bogus"):
        KnowledgeBase.open(tmp_path / "new", create=True, settings={"bogus": 1})


def test_kb_settings_are_fixed_after_creation(kb: KnowledgeBase) -> None:
    assert kb.settings["tokenizer"] == "words" and kb.settings["dense"] is False
    assert kb.settings["bm25"]["k1"] == 1.5  # defaults merged in
    # the same settings (or none) reopen fine, and the stored ones apply
    assert KnowledgeBase.open(kb.directory, settings=SETTINGS).settings == kb.settings
    assert KnowledgeBase.open(kb.directory).settings == kb.settings
    with pytest.raises(ConfigError):
        KnowledgeBase.open(kb.directory, settings={"chunk_tokens": 50})
    with pytest.raises(ConfigError):
        KnowledgeBase.open(kb.directory, settings={"bm25": {"k1": 0.9}})
    with pytest.raises(ConfigError, match="bogus"):
        KnowledgeBase.open(kb.directory, settings={"bogus": True})


def test_kb_partial_nested_settings_merge(tmp_path: Path) -> None:
    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings={**SETTINGS, "bm25": {"stemmer": None}})
    assert kb.settings["bm25"] == {"k1": 1.5, "b": 0.75, "method": "lucene", "stemmer": None, "stopwords": "en"}
    assert kb.new_bm25().tokenize(["running"]) == [["running"]]


def test_kb_search_errors(kb: KnowledgeBase, tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="pilotfish ingest"):
        kb.search("anything", mode="bm25")
    kb.ingest([_write_docs(tmp_path)])
    with pytest.raises(QueryError, match="foo"):
        kb.search("pelican", mode="foo")
    with pytest.raises(QueryError):
        kb.search("   ", mode="bm25")
    with pytest.raises(QueryError):
        kb.search("pelican", mode="bm25", top_k=0)
    with pytest.raises(QueryError):
        kb.search("pelican", mode="dense")  # created with dense=False


def test_kb_leftover_generation_folders_are_cleaned(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = _write_docs(tmp_path)
    stale = kb.directory / "indexes" / "gen-000009"
    next_gen = kb.directory / "indexes" / "gen-000001"  # exactly the folder the next ingest writes
    for folder in (stale, next_gen):
        folder.mkdir(parents=True)
        (folder / "corpus.jsonl").write_text("not json at all\n")
        (folder / "junk.bin").write_bytes(b"\x00" * 10)
    report = kb.ingest([docs])
    assert report.documents == 4
    assert kb.index_generation() == 1
    assert not stale.exists()
    assert not (next_gen / "junk.bin").exists()
    assert _ids(kb.search("pelican", mode="bm25")) == ["docs/alpha.txt"]
    # and again once the knowledge base has a committed generation
    stale.mkdir()
    (docs / "extra.txt").write_text("Extra\n\nA kingfisher dives for minnows.\n")
    kb.ingest([docs])
    assert not stale.exists()
    assert sorted(p.name for p in (kb.directory / "indexes").iterdir()) == ["gen-000002"]
    assert _ids(kb.search("kingfisher", mode="bm25")) == ["docs/extra.txt"]


def test_kb_crash_while_building_indexes_keeps_previous_state(kb: KnowledgeBase, tmp_path: Path,
                                                               monkeypatch) -> None:
    docs = _write_docs(tmp_path)
    kb.ingest([docs])
    before_counts = kb.store.counts()
    before_search = kb.search("pelican estuary", mode="bm25")
    generation = kb.index_generation()

    (docs / "alpha.txt").write_text("Alpha report\n\nAn albatross glides above the open ocean.\n")
    (docs / "new.txt").write_text("New\n\nA heron waits in the reeds.\n")
    (docs / "notes.md").unlink()
    original = ingest_module._build_indexes
    calls: list[int] = []

    def crash_after_building(*args, **kwargs):
        calls.append(1)
        original(*args, **kwargs)  # the new generation's files are written ...
        raise RuntimeError("simulated crash")  # ... but the process dies before the commit

    monkeypatch.setattr(ingest_module, "_build_indexes", crash_after_building)
    with pytest.raises(RuntimeError, match="simulated crash"):
        kb.ingest([docs], prune=True)
    assert calls == [1]
    monkeypatch.undo()

    for handle in (kb, KnowledgeBase.open(kb.directory)):
        assert handle.store.counts() == before_counts
        assert handle.index_generation() == generation
        assert handle.search("pelican estuary", mode="bm25") == before_search
        assert handle.search("albatross heron", mode="bm25") == []
        assert _ids(handle.search("quantum", mode="bm25")) == ["docs/notes.md"]
    assert (kb.generation_dir(generation) / "corpus.jsonl").exists()

    # the next ingest picks up every change and drops the half-written generation
    report = kb.ingest([docs], prune=True)
    assert (report.files_new, report.files_changed, report.files_pruned) == (1, 1, 1)
    assert kb.index_generation() == generation + 1
    assert sorted(p.name for p in (kb.directory / "indexes").iterdir()) == [f"gen-{generation + 1:06d}"]
    assert _ids(kb.search("heron", mode="bm25")) == ["docs/new.txt"]
    assert kb.search("quantum", mode="bm25") == []


def test_kb_ingest_explicit_files_and_unsupported(kb: KnowledgeBase, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Solo\n\nA lone puffin on the cliff.\n")
    odd = tmp_path / "image.xyz"
    odd.write_text("x")
    report = kb.ingest([note, odd, tmp_path / "missing.txt"])
    assert report.files_new == 1
    reasons = dict(report.failed)
    assert "unsupported" in reasons[str(odd)] and "no such file" in reasons[str(tmp_path / "missing.txt")]
    assert _ids(kb.search("puffin", mode="bm25")) == ["note.txt"]
    assert os.path.samefile(kb.search("puffin", mode="bm25")[0].source, note)


def test_kb_jsonl_bad_line_is_skipped_and_reported_the_rest_ingested(kb: KnowledgeBase, tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    data = folder / "data.jsonl"
    data.write_text(json.dumps({"_id": "j1", "text": "The zeppelin hovered over the harbour."}) + "\n"
                    + '{"_id": "j2", "text": "cut short\n'
                    + json.dumps({"_id": "j3", "text": "Marmalade is made from bitter oranges."}) + "\n")
    report = kb.ingest([folder])
    assert (report.files_new, report.documents, report.total_documents) == (1, 2, 2)
    assert report.failed == [(str(data), "line 2: not valid JSON (Unterminated string starting at column 23)")]
    assert _ids(kb.search("zeppelin", mode="bm25")) == ["j1"]
    assert _ids(kb.search("marmalade", mode="bm25")) == ["j3"]

    # a new version whose lines are all bad fails as a whole: what was stored stays, nothing is lost
    data.write_text("not json\n{also not json\n")
    report = kb.ingest([folder])
    [(path, reason)] = report.failed
    assert path == str(data) and reason.startswith("no usable lines; line 1: not valid JSON")
    assert reason.endswith("(and 1 line more, bad too)")
    assert report.total_documents == 2 and _ids(kb.search("zeppelin", mode="bm25")) == ["j1"]


class _Recording:
    """A `Progress` that keeps the stage names, and what happened during which stage."""

    def __init__(self) -> None:
        self.stages: list[str] = []
        self.events: list[tuple[str, str]] = []
        self.advanced: dict[str, int] = {}

    def stage(self, name: str, total: int | None) -> None:
        self.stages.append(name)

    def advance(self, n: int = 1) -> None:
        self.advanced[self.stages[-1]] = self.advanced.get(self.stages[-1], 0) + n


def test_ingest_reports_each_stage_in_order(kb: KnowledgeBase, tmp_path: Path) -> None:
    progress = _Recording()
    kb.ingest([_write_docs(tmp_path)], progress=progress)
    assert progress.stages == ["Reading and chunking records", "Saving to database", "Indexing BM25"]
    assert progress.advanced == {"Reading and chunking records": 5}  # one per record, the failing pdf too
    unchanged = _Recording()
    kb.ingest([tmp_path / "docs"], progress=unchanged)
    assert unchanged.stages == ["Reading and chunking records"]  # nothing to save or index


def test_ingest_loads_the_tokenizer_and_the_embedding_model_in_stages_of_their_own(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    import numpy as np
    from tokenizers import Tokenizer, models, pre_tokenizers

    from pilotfish.models.embedding import Embedder

    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tokenizer / "tokenizer.json"))
    progress = _Recording()

    class FakeModel:  # stands in for sentence-transformers: a unit vector per text, no model file
        def encode(self, texts: list[str], **_: object) -> np.ndarray:
            vectors = np.array([[len(t), t.count(" "), 1.0, 0.5] for t in texts], dtype=np.float32)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def load(self: Embedder) -> dict:
        progress.events.append(("model loaded", progress.stages[-1]))
        return {"format": "sentence-transformers", "model": FakeModel(), "dim": 4, "query_prefix": ""}

    monkeypatch.setattr(Embedder, "_load", load)
    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings={"tokenizer": str(tokenizer), "dense": True})
    report = kb.ingest([_write_docs(tmp_path)], progress=progress)
    assert report.embedded == report.chunks > 0
    assert progress.stages == [f"Loading tokenizer {tokenizer}", "Loading embedding model minilm-l6",
                               "Reading, chunking and embedding records", "Saving to database", "Indexing BM25",
                               "Building vector index"]  # every chunk was embedded in its batch: no empty stage
    assert progress.events[0] == ("model loaded", "Loading embedding model minilm-l6")
    assert progress.advanced["Reading, chunking and embedding records"] == 5


def test_a_knowledge_base_made_with_dense_index_ivfsq8_builds_and_reloads_that_index(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    import numpy as np

    from pilotfish.models.embedding import Embedder

    class FakeModel:  # a unit vector per text, no model file
        def encode(self, texts: list[str], **_: object) -> np.ndarray:
            vectors = np.array([[len(t), t.count(" "), t.count("e"), 1.0] for t in texts], dtype=np.float32)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    monkeypatch.setattr(Embedder, "_load", lambda self: {"format": "sentence-transformers", "model": FakeModel(),
                                                          "dim": 4, "query_prefix": ""})
    settings = {"tokenizer": "words", "dense": True, "dense_index": "ivfsq8"}
    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings=settings)
    kb.ingest([_write_docs(tmp_path)])
    assert kb.current_dense().index_kind == "ivfsq8"
    again = KnowledgeBase.open(tmp_path / "kb")
    assert again.current_dense().index_kind == "ivfsq8"
    hits = again.search("The zeppelin hovered over the harbour.", mode="dense", top_k=2)
    assert hits and all(h.score > 0 for h in hits)
