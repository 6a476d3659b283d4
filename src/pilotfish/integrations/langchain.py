"""LangChain adapter: any pilotfish retriever, or a whole KnowledgeBase, as a LangChain `BaseRetriever`.

Only this module imports LangChain; `import pilotfish` never does. Install `langchain-core` to use it.

>>> from pilotfish.integrations.langchain import PilotfishRetriever
>>> retriever = PilotfishRetriever.from_texts(
...     ["cats purr softly", "dogs bark loudly", "dogs chase cats"],
...     metadatas=[{"animal": "cat"}, {"animal": "dog"}, {"animal": "dog"}], k=2)
>>> [d.page_content for d in retriever.invoke("why do dogs bark?")]
['dogs bark loudly', 'dogs chase cats']
>>> [d.id for d in retriever.invoke("cats", k=1, filters={"animal": "dog"})]
['2']

Wrapping a knowledge base (searched with `KnowledgeBase.search_batch`, so `mode` and `rerank` apply):

>>> import pathlib, tempfile
>>> from pilotfish.knowledge.base import KnowledgeBase
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "docs").mkdir()
>>> _ = (root / "docs" / "reset.md").write_text("To reset your password, open Settings and choose Reset.")
>>> _ = (root / "docs" / "ku.txt").write_text("The University of Kansas has its main campus in Lawrence.")
>>> kb = KnowledgeBase.open(root / "kb", create=True, settings={"dense": False})
>>> _ = kb.ingest([root / "docs"])
>>> [d.metadata["doc_id"] for d in PilotfishRetriever(retriever=kb, mode="bm25", k=1).invoke("reset my password")]
['docs/reset.md']

Each result is a `langchain_core.documents.Document` whose `id` is the chunk id and whose metadata is
the chunk's own metadata plus `doc_id`, `chunk_id`, `score`, `source`, `title` and `retriever` (these
reserved keys win over chunk metadata of the same name).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, field_validator, model_validator

from pilotfish.types import Passage

# invoke() keyword arguments that LangChain itself may forward to `_get_relevant_documents`.
_IGNORED_CALL_KWARGS = frozenset({"verbose"})
_KINDS = ("bm25", "dense")


class PilotfishRetriever(BaseRetriever):
    """A LangChain retriever over a pilotfish retriever or `KnowledgeBase`.

    `retriever` is either an object with `run_batch(queries, *, top_k, filters)` (BM25Retriever,
    DenseRetriever, HybridRetriever, ...) or a KnowledgeBase (anything with `search_batch`); `mode`
    and `rerank` apply only to a KnowledgeBase. `k` and `filters` can be overridden per call:
    `invoke(query, k=3, filters={"collection": "papers"})`; per-call filters are merged over the
    constructor's (same key: the per-call value wins).
    """

    retriever: Any
    k: int = Field(default=4, ge=1)
    filters: dict[str, Any] | None = None
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    rerank: bool = False

    @field_validator("retriever")
    @classmethod
    def _check_retriever(cls, value: Any) -> Any:
        if not (callable(getattr(value, "search_batch", None)) or callable(getattr(value, "run_batch", None))):
            raise ValueError(f"retriever must be a pilotfish retriever (with run_batch) or a KnowledgeBase "
                             f"(with search_batch), got {type(value).__name__}")
        return value

    @model_validator(mode="after")
    def _check_kb_only_options(self) -> PilotfishRetriever:
        if not self.is_knowledge_base:
            explicit = {"mode", "rerank"} & self.model_fields_set
            if "rerank" in explicit and not self.rerank:
                explicit.discard("rerank")
            if explicit:
                raise ValueError(f"{', '.join(sorted(explicit))} only apply when wrapping a KnowledgeBase, not a "
                                 f"{type(self.retriever).__name__}")
        return self

    @property
    def is_knowledge_base(self) -> bool:
        return callable(getattr(self.retriever, "search_batch", None))

    @classmethod
    def from_texts(cls, texts: Sequence[str], *, metadatas: Sequence[Mapping[str, Any]] | None = None,
                   ids: Sequence[str] | None = None, kind: str = "bm25", **kwargs: Any) -> PilotfishRetriever:
        """Index plain strings (each its own document) with a BM25 (`kind="bm25"`) or dense retriever.

        Keyword arguments naming fields of this class (`k`, `filters`, `tags`, `metadata`) configure
        the LangChain retriever; the rest go to BM25Retriever / DenseRetriever (e.g. `k1=1.2`,
        `model="bge-small"`). Ids default to "0", "1", ...
        """
        from pilotfish.retrievers.corpus import ChunkCorpus

        if kind not in _KINDS:
            raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(_KINDS)}")
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        if not texts:
            raise ValueError("from_texts needs at least one text")
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(metadatas)} metadatas")
        own = {key: kwargs.pop(key) for key in list(kwargs) if key in cls.model_fields and key != "retriever"}
        if kind == "bm25":
            from pilotfish.retrievers.bm25 import BM25Retriever

            inner: Any = BM25Retriever(**kwargs)
        else:
            from pilotfish.retrievers.dense import DenseRetriever

            inner = DenseRetriever(**kwargs)
        inner.index(ChunkCorpus.from_texts(list(texts), ids=ids, metadatas=metadatas))
        return cls(retriever=inner, **own)

    # -- search ---------------------------------------------------------------------------------
    def search_passages(self, query: str, *, k: int | None = None,
                        filters: Mapping[str, Any] | None = None) -> list[Passage]:
        """The pilotfish passages behind `invoke` (same `k` and filter rules)."""
        top_k = self.k if k is None else k
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"k must be an integer >= 1, got {top_k!r}")
        merged = {**(self.filters or {}), **(filters or {})} or None
        if self.is_knowledge_base:
            return self.retriever.search_batch([query], mode=self.mode, top_k=top_k, filters=merged,
                                               rerank=self.rerank)[0]
        return self.retriever.run_batch([query], top_k=top_k, filters=merged)[0][:top_k]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None, filters: Mapping[str, Any] | None = None,
                                **kwargs: Any) -> list[Document]:
        _reject_unknown(kwargs)
        return [to_document(p) for p in self.search_passages(query, k=k, filters=filters)]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None, filters: Mapping[str, Any] | None = None,
                                       **kwargs: Any) -> list[Document]:
        _reject_unknown(kwargs)
        passages = await asyncio.to_thread(self.search_passages, query, k=k, filters=filters)
        return [to_document(p) for p in passages]


def to_document(passage: Passage) -> Document:
    """A pilotfish `Passage` as a LangChain `Document` (id = chunk id)."""
    metadata = {**passage.metadata, "doc_id": passage.doc_id, "chunk_id": passage.chunk_id,
                "score": passage.score, "source": passage.source, "title": passage.title,
                "retriever": passage.retriever}
    return Document(page_content=passage.text, metadata=metadata, id=passage.chunk_id)


def _reject_unknown(kwargs: Mapping[str, Any]) -> None:
    unknown = sorted(set(kwargs) - _IGNORED_CALL_KWARGS)
    if unknown:
        raise TypeError(f"unknown retriever argument(s) {', '.join(unknown)}; "
                        "PilotfishRetriever.invoke accepts k=... and filters={...}")
