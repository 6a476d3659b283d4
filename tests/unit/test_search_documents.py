"""KnowledgeBase.search_documents: each document once, at its best chunk, deepening until k documents."""

from __future__ import annotations

from pathlib import Path

import pytest

import pilotfish.knowledge.base as base_module
from pilotfish.errors import QueryError
from pilotfish.knowledge.base import KnowledgeBase, best_per_document
from pilotfish.types import Passage

SETTINGS = {"tokenizer": "words", "dense": False, "chunk_tokens": 16, "overlap_tokens": 0}


def passage(doc_id: str, n: int, score: float) -> Passage:
    return Passage(chunk_id=f"{doc_id}::{n}", doc_id=doc_id, text="", score=score)


def test_best_per_document_keeps_order_and_first_chunk() -> None:
    ranked = [passage("a", 2, 0.9), passage("a", 0, 0.8), passage("b", 1, 0.7), passage("a", 1, 0.6),
              passage("c", 0, 0.5)]
    assert [p.chunk_id for p in best_per_document(ranked, 10)] == ["a::2", "b::1", "c::0"]
    assert [p.chunk_id for p in best_per_document(ranked, 2)] == ["a::2", "b::1"]
    assert best_per_document([], 3) == []


@pytest.fixture()
def kb(tmp_path: Path) -> KnowledgeBase:
    docs = tmp_path / "docs"
    docs.mkdir()
    # six chunks that all say "otter" twice, then one document that says it once
    (docs / "many.txt").write_text("".join(f"Otter note {i}: the otter swims in cold water today.\n" for i in range(6)))
    (docs / "once.txt").write_text("A single otter was seen on the shore near the harbour wall.\n")
    (docs / "none.txt").write_text("Nothing here mentions that animal at all, only boats and gulls.\n")
    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings=SETTINGS)
    assert kb.ingest([docs]).chunks == 8
    return kb


def test_search_documents_deepens_until_k_documents(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base_module, "DOCUMENT_DEPTH", 2)  # the first fetch holds only chunks of many.txt
    chunk_level = kb.search("otter", mode="bm25", top_k=2)
    assert [p.doc_id for p in chunk_level] == ["docs/many.txt"] * 2
    docs = kb.search_documents("otter", mode="bm25", top_k=2)
    assert [p.doc_id for p in docs] == ["docs/many.txt", "docs/once.txt"]
    assert docs[0].chunk_id == chunk_level[0].chunk_id and docs[0].score == chunk_level[0].score
    # only two documents match: asking for more returns those two, not repeats
    assert [p.doc_id for p in kb.search_documents("otter", mode="bm25", top_k=5)] == ["docs/many.txt",
                                                                                      "docs/once.txt"]


def test_search_documents_batch_matches_single_and_validates(kb: KnowledgeBase) -> None:
    batch = kb.search_documents_batch(["otter", "boats gulls"], mode="bm25", top_k=3)
    assert batch[0] == kb.search_documents("otter", mode="bm25", top_k=3)
    assert [p.doc_id for p in batch[1]] == ["docs/none.txt"]
    assert kb.search_documents_batch([], mode="bm25") == []
    with pytest.raises(QueryError, match="empty query"):
        kb.search_documents_batch(["otter", " "], mode="bm25")
    with pytest.raises(QueryError, match="-k must be at least 1"):
        kb.search_documents("otter", mode="bm25", top_k=0)
    with pytest.raises(QueryError, match="unknown search mode"):
        kb.search_documents("otter", mode="fuzzy")
