"""PilotfishRetriever: pilotfish retrievers and knowledge bases as LangChain retrievers (BM25 only, no models)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.documents import Document
from pydantic import ValidationError

from pilotfish.integrations.langchain import PilotfishRetriever, to_document
from pilotfish.retrievers.bm25 import BM25Retriever
from pilotfish.retrievers.corpus import ChunkCorpus
from pilotfish.types import Passage

TEXTS = [
    "Cats purr when they are content.",
    "Dogs bark at the mail carrier.",
    "Dogs and cats can live together.",
    "Parrots mimic human speech.",
    "A dog's sense of smell is strong.",
]
METAS = [{"animal": "cat", "lang": "en"}, {"animal": "dog", "lang": "en"}, {"animal": ["dog", "cat"], "lang": "en"},
         {"animal": "bird", "lang": "en"}, {"animal": "dog", "lang": "de"}]
IDS = ["cat-1", "dog-1", "both-1", "bird-1", "dog-2"]


@pytest.fixture(scope="module")
def bm25() -> BM25Retriever:
    r = BM25Retriever()
    r.index(ChunkCorpus.from_texts(TEXTS, ids=IDS, metadatas=METAS))
    return r


def test_invoke_returns_documents_with_metadata(bm25: BM25Retriever) -> None:
    docs = PilotfishRetriever(retriever=bm25).invoke("why do dogs bark?")
    assert docs and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.page_content == "Dogs bark at the mail carrier."
    assert top.id == "dog-1"
    assert top.metadata["doc_id"] == "dog-1" and top.metadata["chunk_id"] == "dog-1"
    assert top.metadata["retriever"] == "bm25"
    assert top.metadata["animal"] == "dog" and top.metadata["lang"] == "en"
    assert {"source", "title"} <= set(top.metadata)
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_k_in_constructor_and_per_call(bm25: BM25Retriever) -> None:
    retriever = PilotfishRetriever(retriever=bm25, k=2)
    assert len(retriever.invoke("dogs cats")) == 2
    assert len(retriever.invoke("dogs cats", k=1)) == 1
    assert len(retriever.invoke("dogs cats", k=3)) == 3
    assert retriever.k == 2  # per-call k does not stick
    with pytest.raises(ValueError, match="k must be"):
        retriever.invoke("dogs", k=0)
    with pytest.raises(ValidationError):
        PilotfishRetriever(retriever=bm25, k=0)


def test_filters_constructor_per_call_and_merged(bm25: BM25Retriever) -> None:
    retriever = PilotfishRetriever(retriever=bm25, filters={"lang": "en"})
    assert {d.id for d in retriever.invoke("dogs")} == {"dog-1", "both-1"}
    assert [d.id for d in retriever.invoke("dogs cats", filters={"animal": "cat"})] in (
        ["cat-1", "both-1"], ["both-1", "cat-1"])
    # the per-call value of a key wins over the constructor's
    assert [d.id for d in retriever.invoke("dogs", filters={"lang": "de"})] == ["dog-2"]
    assert PilotfishRetriever(retriever=bm25).invoke("dogs", filters={"animal": "bird"}) == []


def test_unknown_call_kwarg_is_an_error(bm25: BM25Retriever) -> None:
    with pytest.raises(TypeError, match="top_k"):
        PilotfishRetriever(retriever=bm25).invoke("dogs", top_k=2)


def test_ainvoke_and_abatch(bm25: BM25Retriever) -> None:
    retriever = PilotfishRetriever(retriever=bm25, k=3)

    async def go() -> tuple[list[Document], list[list[Document]]]:
        one = await retriever.ainvoke("dogs", k=1, filters={"lang": "de"})
        many = await retriever.abatch(["dogs", "parrots"])
        return one, many

    one, many = asyncio.run(go())
    assert [d.id for d in one] == ["dog-2"]
    assert [d.id for d in many[1]] == ["bird-1"]
    assert many[0] == retriever.invoke("dogs")


def test_batch_matches_invoke(bm25: BM25Retriever) -> None:
    retriever = PilotfishRetriever(retriever=bm25, k=2)
    assert retriever.batch(["dogs", "cats"]) == [retriever.invoke("dogs"), retriever.invoke("cats")]


def test_from_texts_bm25() -> None:
    retriever = PilotfishRetriever.from_texts(TEXTS, metadatas=METAS, ids=IDS, k=1, k1=1.2)
    assert isinstance(retriever.retriever, BM25Retriever)
    assert retriever.retriever.to_config()["init"]["k1"] == 1.2
    assert [d.id for d in retriever.invoke("parrots")] == ["bird-1"]
    default_ids = PilotfishRetriever.from_texts(["alpha beta", "beta gamma"])
    assert [d.id for d in default_ids.invoke("gamma")] == ["1"]


def test_from_texts_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="kind"):
        PilotfishRetriever.from_texts(["a"], kind="splade")
    with pytest.raises(ValueError, match="at least one"):
        PilotfishRetriever.from_texts([])
    with pytest.raises(ValueError, match="metadatas"):
        PilotfishRetriever.from_texts(["a b", "c d"], metadatas=[{}])
    with pytest.raises(TypeError):
        PilotfishRetriever.from_texts("just one string")


def test_constructor_validation(bm25: BM25Retriever) -> None:
    with pytest.raises(ValidationError, match="run_batch"):
        PilotfishRetriever(retriever=object())
    with pytest.raises(ValidationError, match="KnowledgeBase"):
        PilotfishRetriever(retriever=bm25, mode="dense")
    with pytest.raises(ValidationError, match="KnowledgeBase"):
        PilotfishRetriever(retriever=bm25, rerank=True)
    with pytest.raises(ValidationError):
        PilotfishRetriever(retriever=bm25, mode="sparse")


def test_to_document_reserved_keys_win() -> None:
    p = Passage(chunk_id="d::0", doc_id="d", text="t", score=1.5, source="s.txt", title="T",
                metadata={"score": "mine", "topic": "x"}, retriever="dense")
    doc = to_document(p)
    assert doc.id == "d::0" and doc.page_content == "t"
    assert doc.metadata == {"topic": "x", "score": 1.5, "doc_id": "d", "chunk_id": "d::0", "source": "s.txt",
                            "title": "T", "retriever": "dense"}


def test_wraps_a_knowledge_base(tmp_path: Path) -> None:
    from pilotfish.knowledge.base import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.txt").write_text("Green tea is steeped at eighty degrees for two minutes.\n")
    (docs / "coffee.txt").write_text("Espresso is brewed under nine bars of pressure.\n")
    (tmp_path / "more.txt").write_text("Black tea needs boiling water and four minutes.\n")
    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings={"tokenizer": "words", "dense": False})
    kb.ingest([docs])
    kb.ingest([tmp_path / "more.txt"], collection="extra")

    retriever = PilotfishRetriever(retriever=kb, mode="bm25", k=5)
    found = retriever.invoke("how long to steep tea?")
    assert [Path(d.metadata["source"]).name for d in found] == ["tea.txt", "more.txt"]
    assert found[0].id == found[0].metadata["chunk_id"]
    assert found[0].metadata["collection"] == "default" and found[0].metadata["retriever"] == "bm25"
    only_extra = retriever.invoke("tea", filters={"collection": "extra"})
    assert [Path(d.metadata["source"]).name for d in only_extra] == ["more.txt"]
    assert len(retriever.invoke("tea", k=1)) == 1
    assert [d.id for d in asyncio.run(retriever.ainvoke("espresso pressure"))] == [
        d.id for d in retriever.invoke("espresso pressure")]


def test_import_pilotfish_does_not_import_langchain() -> None:
    code = ("import sys, pilotfish, pilotfish.integrations, pilotfish.retrievers.bm25, pilotfish.knowledge.base\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('langchain', 'langchain_core'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
