"""DenseRetriever: embedding search with a registry embedder over a vector backend (FAISS files or Milvus).

The backend is chosen by `vectors`, a URL (see `retrievers.vectors`): "faiss" (the default) keeps a FAISS
index and the embeddings in the saved folder; "milvus:///path.db" or "milvus://host:port/collection" keeps
the vectors in Milvus and the folder holds only the corpus and the config.

>>> from pilotfish.retrievers.dense import DenseRetriever
>>> from pilotfish.retrievers.corpus import ChunkCorpus
>>> r = DenseRetriever(model="minilm-l6")                             # loads nothing yet
>>> r.index(ChunkCorpus.from_texts(["cats purr", "stocks fell sharply"]))
>>> r.run("the market dropped")[0].text
'stocks fell sharply'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError, IndexStateError, QueryError
from pilotfish.models.embedding import Embedder
from pilotfish.retrievers import index as faiss_index
from pilotfish.retrievers.corpus import ChunkCorpus, Filters, write_atomic
from pilotfish.retrievers.faiss_vectors import EMBEDDINGS_FILE, INDEX_FILE
from pilotfish.retrievers.vectors import open_backend, parse_url
from pilotfish.types import Passage

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

CONFIG_FILE = "dense_config.json"
__all__ = ["CONFIG_FILE", "EMBEDDINGS_FILE", "EXACT_FILTER_MAX", "INDEX_FILE", "DenseRetriever"]
# Below this many allowed rows a filtered search is exact over the stored vectors; above it
# FAISS searches with an ID selector.
EXACT_FILTER_MAX = 20_000


class DenseRetriever(Component):
    """Cosine-similarity search over a `ChunkCorpus`.

    `threads` is the FAISS search thread count. None (the default) picks per call: one thread for
    fewer than 16 queries, every core for larger batches. Measured on 2 cores (BENCHMARKS.md): a
    second thread halves single-query speed on a flat index and doubles batched speed. `vectors` picks
    the backend by URL: "faiss", "milvus:///path.db" (Milvus Lite) or "milvus://host:port/collection".
    """

    def __init__(self, *, model: str = "minilm-l6", index: str = "auto", batch_size: int = 32,
                 threads: int | None = None, device: str = "cpu", top_k: int = 10, nprobe: int | None = None,
                 ef_search: int | None = None, store_embeddings: bool = True, vectors: str = "faiss") -> None:
        faiss_index.choose_kind(1, index)  # validates the kind
        parse_url(vectors)  # validates the URL
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"unknown device {device!r}; use 'cpu' or 'cuda'")
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        self._config = {"model": model, "index": index, "batch_size": batch_size, "threads": threads,
                        "device": device, "top_k": top_k, "nprobe": nprobe, "ef_search": ef_search,
                        "store_embeddings": store_embeddings, "vectors": vectors}
        self.top_k = top_k
        self.embedder = Embedder(model=model, batch_size=batch_size, device=device if device == "cpu" else "cuda")
        self.corpus: ChunkCorpus | None = None
        self.embedded = 0  # rows the last index() embedded (or was handed vectors for)
        self._backend = open_backend(vectors, model=model, index=index, device=device, threads=threads,
                                     nprobe=nprobe, ef_search=ef_search, store_embeddings=store_embeddings)

    def index(self, corpus: ChunkCorpus, *, embeddings: np.ndarray | None = None,
              progress: Callable[[int], None] | None = None) -> None:
        """Embed every row (unless `embeddings` are given, one per row) and index them. `embeddings` may be a
        float32 `np.memmap`: it is read in slices, never copied whole. Milvus embeds and stores only the rows
        whose vectors it does not hold yet."""
        import numpy as np

        if embeddings is not None:
            if len(embeddings) != len(corpus):
                raise ValueError(f"{len(embeddings)} embeddings for {len(corpus)} rows")
            self._backend.build(corpus, embeddings)
            self.embedded = len(corpus)
        else:
            todo = self._backend.missing(corpus)
            fresh = (self.embedder.encode_documents([corpus.index_text(i) for i in todo], progress=progress)
                     if todo else np.zeros((0, 0), dtype=np.float32))
            self._backend.build(corpus, fresh, rows=todo)
            self.embedded = len(todo)
        self.corpus = corpus

    @property
    def embeddings(self) -> np.ndarray | None:
        """The FAISS backend's embedding matrix (a memmap once loaded); None for Milvus."""
        return self._backend.embeddings  # type: ignore[attr-defined, no-any-return]

    @property
    def index_kind(self) -> str:
        return self._backend.describe()

    @property
    def backend(self) -> str:
        """The backend's kind: "faiss" or "milvus"."""
        return self._backend.kind

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """The stored vectors of corpus `rows` (FAISS: from the embeddings; Milvus: fetched by key)."""
        self._require_corpus()
        return self._backend.vectors(rows)

    def prune_stale(self) -> int:
        """Delete stored vectors no longer in the corpus (Milvus); returns how many went (FAISS: 0)."""
        return self._backend.prune_stale()

    def run(self, query: str, *, top_k: int | None = None, filters: Filters | None = None) -> list[Passage]:
        return self.run_batch([query], top_k=top_k, filters=filters)[0]

    def run_batch(self, queries: Sequence[str], *, top_k: int | None = None,
                  filters: Filters | None = None) -> list[list[Passage]]:
        for q in queries:
            if not q or not q.strip():
                raise QueryError("empty query: give some words to search for")
        corpus = self._require_corpus()
        if not queries or not len(corpus):
            return [[] for _ in queries]
        vectors = self.embedder.encode_queries(list(queries))
        return self.search_vectors(vectors, top_k=top_k, filters=filters)

    def search_vectors(self, vectors: np.ndarray, *, top_k: int | None = None,
                       filters: Filters | None = None) -> list[list[Passage]]:
        """Search with ready query vectors (e.g. HyDE passages embedded elsewhere)."""
        import numpy as np

        corpus = self._require_corpus()
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        scores, rows = self._backend.search(queries, top_k or self.top_k, filters, exact_filter_max=EXACT_FILTER_MAX)
        return [[corpus.passage(i, s, "dense") for s, i in zip(srow, irow)] for srow, irow in zip(scores, rows)]

    def save(self, directory: str | Path, *, include_corpus: bool = True) -> None:
        directory = Path(directory)
        corpus = self._require_corpus()
        directory.mkdir(parents=True, exist_ok=True)
        self._backend.save(directory)
        if include_corpus:
            corpus.save(directory)
        write_atomic(directory / CONFIG_FILE, json.dumps(self.to_config(), indent=1))

    @classmethod
    def load(cls, directory: str | Path, *, corpus: ChunkCorpus | None = None, **overrides: Any) -> DenseRetriever:
        """Load a saved retriever; `overrides` replace init arguments such as `threads` or `nprobe`."""
        directory = Path(directory)
        if not (directory / CONFIG_FILE).exists():
            raise IndexStateError(f"no dense index in {directory}: build one first (pilotfish ingest ...)")
        config = json.loads((directory / CONFIG_FILE).read_text())
        config["init"].update(overrides)
        retriever = cls.from_config(config)
        retriever.corpus = corpus if corpus is not None else ChunkCorpus.load(directory)
        retriever._backend.load(directory, retriever.corpus)
        return retriever

    def _require_corpus(self) -> ChunkCorpus:
        if self.corpus is None:
            raise IndexStateError("DenseRetriever has no index: call index(corpus) or DenseRetriever.load(dir)")
        return self.corpus
