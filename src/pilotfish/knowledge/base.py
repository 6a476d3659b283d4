"""KnowledgeBase: one folder (or a database URL plus a folder) holding documents and their indexes.

>>> from pilotfish.knowledge.base import KnowledgeBase
>>> kb = KnowledgeBase.open("./.pilotfish", create=True)            # doctest: +SKIP
>>> kb.ingest(["docs/"]).chunks                                    # doctest: +SKIP
412
>>> kb.search("how do I reset my password?", mode="hybrid")[0].source   # doctest: +SKIP
'/home/me/docs/account.md'
>>> [p.doc_id for p in kb.search_documents("password reset", top_k=3)]   # doctest: +SKIP
['docs/account.md', 'docs/security.md', 'docs/faq.md']
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError, KnowledgeBaseError, PilotfishError, QueryError
from pilotfish.graphs.graph import KnowledgeGraph
from pilotfish.knowledge.chunking import SentenceChunker
from pilotfish.knowledge.ingest import BATCH_CHUNKS, IngestReport, Progress, ingest
from pilotfish.knowledge.store import KnowledgeStore
from pilotfish.retrievers.bm25 import BM25Retriever
from pilotfish.retrievers.corpus import ChunkCorpus, Filters
from pilotfish.retrievers.dense import DenseRetriever
from pilotfish.retrievers.hybrid import HybridRetriever
from pilotfish.retrievers.rerank import CrossEncoderReranker
from pilotfish.retrievers.vectors import collection_for, resolve_url
from pilotfish.tables.cards import TableCard
from pilotfish.tables.catalog import TableCatalog
from pilotfish.types import Passage

logger = logging.getLogger(__name__)

DB_FILE = "pilotfish.db"
MODES = ("bm25", "dense", "hybrid")
# Chunks fetched per query before collapsing them to documents (doubled while a query has fewer than
# k distinct documents and more chunks remain). 200 is the depth behind the SciFact figures in BENCHMARKS.md.
DOCUMENT_DEPTH = 200
DEFAULT_RERANKER = "ms-marco-l12"
DEFAULT_SETTINGS: dict[str, Any] = {
    "chunk_tokens": 200, "overlap_tokens": 30, "tokenizer": "minilm-l6",
    # A packaged model by name; a trained model or a folder by its resolved path, with the name it was given
    # in embedding_name (see `embedder_setting`).
    "embedding_model": "minilm-l6", "embedding_name": None, "dense": True, "dense_index": "auto",
    # Where dense vectors live (retrievers/vectors.py): "faiss" files, or a Milvus URL made absolute and given
    # this knowledge base's own collection when it is created.
    "vectors": "faiss",
    "bm25": {"k1": 1.5, "b": 0.75, "method": "lucene", "stemmer": "english", "stopwords": "en"},
    # Weighted (min-max) fusion beat reciprocal-rank fusion for bm25 + MiniLM on SciFact's train and
    # test queries alike (0.735 / 0.734 against 0.721 / 0.721 nDCG@10; BENCHMARKS.md).
    "hybrid": {"fusion": "weighted", "weights": [0.5, 0.5]},
}


class KnowledgeBase:
    """Open with `KnowledgeBase.open(dir)`; `ingest()` adds files, `search()` finds passages."""

    def __init__(self, directory: Path, store: KnowledgeStore, settings: dict[str, Any]) -> None:
        self.directory = directory
        self.store = store
        self.settings = settings
        self._lock = threading.Lock()
        self._retrievers: dict[str, Any] = {}
        self._rerankers: dict[str, CrossEncoderReranker] = {}
        self._graph: tuple[int, KnowledgeGraph | None] | None = None  # (graph generation, graph)

    @classmethod
    def open(cls, directory: str | Path = ".pilotfish", *, db: str | None = None, create: bool = False,
             settings: dict[str, Any] | None = None) -> KnowledgeBase:
        """Open (or with `create=True`, create) a knowledge base.

        `db` is a SQLAlchemy URL; by default SQLite in `directory`. `settings` (chunking, embedding
        model, BM25 parameters) apply when the knowledge base is created and are fixed afterwards.
        """
        directory = Path(directory)
        if settings and settings.get("embedding_model") is not None:
            settings = {**settings, **embedder_setting(settings["embedding_model"])}
        if settings and settings.get("vectors") is not None:
            settings = {**settings, "vectors": resolve_url(settings["vectors"],
                                                           default_collection=collection_for(directory))}
        requested = _merge(DEFAULT_SETTINGS, settings or {})  # validates before anything is created
        if directory.exists() and not directory.is_dir():
            raise KnowledgeBaseError(f"{directory} is a file, not a knowledge-base folder; choose another --kb path")
        if not directory.exists():
            if not create:
                raise KnowledgeBaseError(f"no knowledge base at {directory}: create one with "
                                         f"`pilotfish ingest PATH --kb {directory}`")
            directory.mkdir(parents=True)
        url = db or f"sqlite:///{(directory / DB_FILE).resolve()}"
        store = KnowledgeStore(url)
        if not store.has_schema() and not create:
            raise KnowledgeBaseError(f"{directory} holds no pilotfish knowledge base (no schema in {url}); "
                                     f"create one with `pilotfish ingest PATH --kb {directory}`")
        store.create()  # creates missing tables only, so it also adds those that newer versions introduced
        stored = store.get_meta("settings")
        if stored is None:
            stored = requested
            with store.transaction() as session:
                store.set_meta(session, "settings", stored)
        else:
            stored = {**DEFAULT_SETTINGS, **stored}  # settings added by later versions take their defaults
            compared = {k: v for k, v in (settings or {}).items() if k != "embedding_name"}  # a display name
            if compared and _merge(stored, compared) != stored:
                raise ConfigError(f"{directory} was created with other settings ({stored}); "
                                  "ingest into a new --kb folder to change chunking, or change its embedding "
                                  f"model with `pilotfish kb reembed --model NAME --kb {directory}`")
        return cls(directory, store, stored)

    # -- components built from the settings ------------------------------------------------------
    def chunker(self) -> SentenceChunker:
        tokenizer = self.settings["tokenizer"]
        if tokenizer != "words":
            from pilotfish.models import model_path

            tokenizer = str(model_path(tokenizer))
        return SentenceChunker(chunk_tokens=self.settings["chunk_tokens"],
                               overlap_tokens=self.settings["overlap_tokens"], tokenizer=tokenizer)

    def new_bm25(self) -> BM25Retriever:
        return BM25Retriever(**self.settings["bm25"])

    def new_dense(self, **overrides: Any) -> DenseRetriever:
        init = {"model": self.settings["embedding_model"], "index": self.settings["dense_index"],
                "vectors": self.settings["vectors"], **overrides}
        return DenseRetriever(**init)

    # -- index generations ----------------------------------------------------------------------
    def index_generation(self, *, session: Any = None) -> int:
        return int(self.store.get_meta("index_generation", 0, session=session))

    def generation_dir(self, generation: int) -> Path:
        return self.directory / "indexes" / f"gen-{generation:06d}"

    def cleanup_generations(self, keep: int) -> None:
        """Remove index folders other than generation `keep`, and (Milvus) vectors no current chunk uses."""
        root = self.directory / "indexes"
        for path in root.glob("gen-*") if root.exists() else []:
            if path.name != f"gen-{keep:06d}":
                shutil.rmtree(path, ignore_errors=True)
        if self.settings["vectors"] != "faiss" and self.settings["dense"] and self.index_generation() == keep:
            try:
                dense = self.current_dense()
                if dense is not None:
                    dense.prune_stale()
            except PilotfishError as err:  # the new generation is committed: stale vectors go next time
                logger.warning("could not prune stale vectors: %s", err)

    def reload(self) -> None:
        with self._lock:
            self._retrievers.clear()

    def corpus(self) -> ChunkCorpus:
        return self._get("corpus")

    def current_dense(self) -> DenseRetriever | None:
        if self.index_generation() == 0 or not self.settings["dense"]:
            return None
        return self._get("dense")

    def _get(self, name: str, make: Callable[[], Any] | None = None) -> Any:
        """`name` built once per index generation: by `make`, or loaded from the generation's index files."""
        with self._lock:
            generation = self.index_generation()
            if self._retrievers.get("generation") != generation:
                self._retrievers = {"generation": generation}
            if name not in self._retrievers:
                self._retrievers[name] = make() if make is not None else self._load(name, generation)
            return self._retrievers[name]

    def _load(self, name: str, generation: int) -> Any:
        if generation == 0:
            raise KnowledgeBaseError(f"{self.directory} is empty: add documents with "
                                     f"`pilotfish ingest PATH --kb {self.directory}`")
        folder = self.generation_dir(generation)
        if not folder.exists():
            raise KnowledgeBaseError(f"index folder {folder} is missing; re-create the knowledge base with "
                                     "`pilotfish ingest PATH --kb NEWDIR`")
        corpus = self._retrievers.get("corpus") or ChunkCorpus.load(folder)
        self._retrievers["corpus"] = corpus
        if name == "corpus":
            return corpus
        if name == "bm25":
            return BM25Retriever.load(folder / "bm25", corpus=corpus)
        if name == "dense":
            if not self.settings["dense"]:
                raise QueryError("this knowledge base has no dense index (created with dense=False); use --mode bm25")
            return DenseRetriever.load(folder / "dense", corpus=corpus)
        raise ValueError(name)

    def retriever(self, mode: str = "hybrid") -> Any:
        """The retriever for `mode`: bm25, dense, or hybrid (reciprocal-rank fusion of both)."""
        if mode not in MODES:
            raise QueryError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        if mode == "hybrid":
            if not self.settings["dense"]:
                return self._get("bm25")
            hybrid = self.settings["hybrid"]
            return HybridRetriever(retrievers=[self._get("bm25"), self._get("dense")], fusion=hybrid["fusion"],
                                   weights=hybrid.get("weights"))
        return self._get(mode)

    # -- the user-facing operations -------------------------------------------------------------
    def ingest(self, paths: Sequence[str | Path], *, collection: str = "default", prune: bool = False,
               id_field: str | None = None, text_field: str | None = None, databases: Sequence[str] = (),
               progress: Progress | None = None, batch_chunks: int = BATCH_CHUNKS, ray: str | None = None,
               ray_workers: int | None = None) -> IngestReport:
        return ingest(self, paths, collection=collection, prune=prune, id_field=id_field, text_field=text_field,
                      databases=databases, progress=progress, batch_chunks=batch_chunks, ray=ray,
                      ray_workers=ray_workers)

    def ingest_triples(self, paths: Sequence[str | Path], *, collection: str = "default",
                       progress: Progress | None = None) -> IngestReport:
        """Add knowledge-graph triples files (`subject|relation|object` lines, TSV, CSV, N-Triples, Turtle)."""
        from pilotfish.knowledge.triples import ingest_triples

        report = ingest_triples(self, paths, collection=collection, progress=progress)
        self.reload()
        return report

    def graph(self) -> KnowledgeGraph | None:
        """The knowledge graph of the ingested triples, loaded once per graph generation (None without triples)."""
        with self._lock:
            generation = int(self.store.get_meta("graph_generation", 0))
            cached = self._graph
            if cached is not None and cached[0] == generation:
                return cached[1]
        graph = None
        if generation:
            from pilotfish.knowledge.triples import load_graph_rows

            rows = load_graph_rows(self.store)
            graph = KnowledgeGraph.from_rows(**rows) if rows["triples"] else None
        with self._lock:
            self._graph = (generation, graph)
        return graph

    def tables(self) -> TableCatalog:
        """The tables this knowledge base can answer from (ingested files and registered databases)."""
        return self._get("tables", lambda: TableCatalog([TableCard.from_dict(c) for c in self.store.table_cards()],
                                                        home=self.store.url))

    def has_text(self) -> bool:
        """Whether it holds documents besides the tables' cards (counted once per index generation, not per
        question)."""
        def count() -> bool:
            counts = self.store.counts()
            return counts["documents"] > counts["tables"]

        return self._get("has_text", count)

    def search(self, query: str, *, mode: str = "hybrid", top_k: int = 10, filters: Filters | None = None,
               rerank: bool = False, rerank_depth: int = 30, reranker: str = DEFAULT_RERANKER) -> list[Passage]:
        return self.search_batch([query], mode=mode, top_k=top_k, filters=filters, rerank=rerank,
                                 rerank_depth=rerank_depth, reranker=reranker)[0]

    def search_batch(self, queries: Sequence[str], *, mode: str = "hybrid", top_k: int = 10,
                     filters: Filters | None = None, rerank: bool = False,
                     rerank_depth: int = 30, reranker: str = DEFAULT_RERANKER) -> list[list[Passage]]:
        _check_queries(queries, top_k)
        retriever = self.retriever(mode)
        depth = max(top_k, rerank_depth) if rerank else top_k
        results = retriever.run_batch(list(queries), top_k=depth, filters=filters)
        if rerank:
            results = self.reranker_for(reranker).run_batch(list(queries), results, top_k=top_k)
        return results

    def search_documents(self, query: str, *, mode: str = "hybrid", top_k: int = 10, filters: Filters | None = None,
                         rerank: bool = False, rerank_depth: int = 30, reranker: str = DEFAULT_RERANKER
                         ) -> list[Passage]:
        return self.search_documents_batch([query], mode=mode, top_k=top_k, filters=filters, rerank=rerank,
                                           rerank_depth=rerank_depth, reranker=reranker)[0]

    def search_documents_batch(self, queries: Sequence[str], *, mode: str = "hybrid", top_k: int = 10,
                               filters: Filters | None = None, rerank: bool = False,
                               rerank_depth: int = 30, reranker: str = DEFAULT_RERANKER) -> list[list[Passage]]:
        """Each query's `top_k` documents, each once, as its best chunk, in the chunks' ranked order.

        A document takes the rank and score of its best chunk (as the benchmarks' `doc_run` ranks it).
        Chunks are fetched `DOCUMENT_DEPTH` (or `top_k`, if larger) deep, doubled for a query until
        `top_k` distinct documents come out or no chunks remain. With `rerank`, the cross-encoder reorders
        the first `rerank_depth` chunks, or more if fewer than `top_k` documents lie in them, so that every
        returned document carries a cross-encoder score."""
        queries = list(queries)
        _check_queries(queries, top_k)
        retriever = self.retriever(mode)
        total = max(1, len(self.corpus()))
        depth = min(max(DOCUMENT_DEPTH, top_k), total)
        chunks: list[list[Passage]] = [[] for _ in queries]
        todo = list(range(len(queries)))
        while todo:
            found = retriever.run_batch([queries[i] for i in todo], top_k=depth, filters=filters)
            for i, passages in zip(todo, found):
                chunks[i] = passages
            todo = [i for i in todo if len(best_per_document(chunks[i], top_k)) < top_k
                    and len(chunks[i]) == depth and depth < total]
            depth = min(depth * 2, total)
        if rerank and queries:
            heads = [ps[:max(rerank_depth, _prefix_holding(ps, top_k))] for ps in chunks]
            model = self.reranker_for(reranker)
            scores = model.score_batch(queries, heads)
            chunks = [model.order(list(head), s) + list(ps[len(head):])
                      for head, s, ps in zip(heads, scores, chunks)]
        return [best_per_document(ps, top_k) for ps in chunks]

    @property
    def reranker(self) -> CrossEncoderReranker:
        """The packaged cross-encoder that `search(..., rerank=True)` uses by default, loaded on first use."""
        return self.reranker_for(DEFAULT_RERANKER)

    def reranker_for(self, model: str) -> CrossEncoderReranker:
        """The cross-encoder `model` (packaged, trained and registered, or a folder), one per model."""
        with self._lock:
            if model not in self._rerankers:
                self._rerankers[model] = CrossEncoderReranker(model=model)
            return self._rerankers[model]

    def rerank(self, query: str, passages: Sequence[Passage], *, top_k: int,
               reranker: str = DEFAULT_RERANKER) -> list[Passage]:
        """`passages` (e.g. fused from several searches) reordered by the cross-encoder for `query`."""
        return self.reranker_for(reranker).run_batch([query], [list(passages)], top_k=top_k)[0] if passages else []

    def similarity(self, query: str, passages: Sequence[Passage]) -> list[float] | None:
        """Cosine similarity of `query` to each passage with the dense model and its stored vectors
        (None when the knowledge base has no dense index)."""
        matrix = self.similarities([query], passages, as_queries=True)
        return None if matrix is None else matrix[0]

    def similarities(self, texts: Sequence[str], passages: Sequence[Passage], *,
                     as_queries: bool = False) -> list[list[float]] | None:
        """Cosine similarity of each text to each passage (rows: texts), or None without a dense index.
        `as_queries` applies the model's query prefix (bge-small); answer sentences are passages."""
        dense = self.current_dense()
        if dense is None or dense.corpus is None or (dense.backend == "faiss" and dense.embeddings is None):
            return None
        rows = [dense.corpus.row_of(p.chunk_id) for p in passages]
        if not rows or not texts:
            return [[] for _ in texts]
        encode = dense.embedder.encode_queries if as_queries else dense.embedder.encode_documents
        return (encode(list(texts)) @ dense.vectors(rows).T).tolist()

    def stats(self) -> dict[str, Any]:
        return {**self.store.counts(), "index_generation": self.index_generation(), "settings": self.settings,
                "directory": str(self.directory), "database": self.store.url}


def embedder_setting(model: str) -> dict[str, Any]:
    """The settings that pin embedding model `model`: a packaged model by its name; a registered trained model
    or a local folder by its resolved path, with `model` as given kept as `embedding_name` for display. A name
    re-pointed later (a newly trained model registered under it) so never mixes two models' vectors in one
    index: the knowledge base keeps embedding with the folder it was built with until `kb reembed`.

    >>> embedder_setting("minilm-l6")
    {'embedding_model': 'minilm-l6', 'embedding_name': 'minilm-l6'}
    """
    from pilotfish.models import load_registry, model_path

    if not isinstance(model, str) or not model.strip():
        raise ConfigError("empty embedding model: give a packaged name (minilm-l6, bge-small), a registered name "
                          "or a model folder")
    if model in load_registry():
        return {"embedding_model": model, "embedding_name": model}
    try:
        path = model_path(model)
    except ConfigError as err:  # neither a packaged model, a registered name nor a path
        raise ConfigError(f"{err}; or give a registered name or a model folder (e.g. from `pilotfish train "
                          "embedder --out DIR`)") from None
    if not path.is_dir():
        raise ConfigError(f"embedding model {model!r} ({path}) is not a model folder: give a sentence-transformers "
                          "folder (e.g. from `pilotfish train embedder`) or an ONNX folder with model.onnx")
    return {"embedding_model": str(path.resolve()), "embedding_name": model}


def _check_queries(queries: Sequence[str], top_k: int) -> None:
    for q in queries:
        if not isinstance(q, str) or not q.strip():
            raise QueryError("empty query: give some words to search for")
    if top_k < 1:
        raise QueryError(f"-k must be at least 1, got {top_k}")


def best_per_document(passages: Sequence[Passage], top_k: int) -> list[Passage]:
    """The first (best) passage of each document, in the given order, up to `top_k` documents."""
    seen: dict[str, Passage] = {}
    for p in passages:
        if p.doc_id not in seen:
            seen[p.doc_id] = p
            if len(seen) == top_k:
                break
    return list(seen.values())


def _prefix_holding(passages: Sequence[Passage], top_k: int) -> int:
    """Length of the shortest prefix of `passages` that holds `top_k` distinct documents (or all of them)."""
    seen: set[str] = set()
    for n, p in enumerate(passages, 1):
        seen.add(p.doc_id)
        if len(seen) == top_k:
            return n
    return len(passages)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in extra.items():
        if key not in base:
            raise ConfigError(f"unknown knowledge-base setting {key!r}; known: {', '.join(base)}")
        out[key] = {**out[key], **value} if isinstance(out[key], dict) else value
    return out
