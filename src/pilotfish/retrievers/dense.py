"""DenseRetriever: embedding search with a registry embedder and a FAISS index, saved as files.

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
from pilotfish.types import Passage

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

CONFIG_FILE = "dense_config.json"
INDEX_FILE = "index.faiss"
EMBEDDINGS_FILE = "embeddings.npy"
# Below this many allowed rows a filtered search is exact over the stored vectors; above it
# FAISS searches with an ID selector.
EXACT_FILTER_MAX = 20_000


class DenseRetriever(Component):
    """Cosine-similarity search over a `ChunkCorpus`.

    `threads` is the FAISS search thread count. None (the default) picks per call: one thread for
    fewer than 16 queries, every core for larger batches. Measured on 2 cores (BENCHMARKS.md): a
    second thread halves single-query speed on a flat index and doubles batched speed.
    """

    def __init__(self, *, model: str = "minilm-l6", index: str = "auto", batch_size: int = 32,
                 threads: int | None = None, device: str = "cpu", top_k: int = 10, nprobe: int | None = None,
                 ef_search: int | None = None, store_embeddings: bool = True) -> None:
        faiss_index.choose_kind(1, index)  # validates the kind
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"unknown device {device!r}; use 'cpu' or 'cuda'")
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        self._config = {"model": model, "index": index, "batch_size": batch_size, "threads": threads,
                        "device": device, "top_k": top_k, "nprobe": nprobe, "ef_search": ef_search,
                        "store_embeddings": store_embeddings}
        self.top_k = top_k
        self.embedder = Embedder(model=model, batch_size=batch_size, device=device if device == "cpu" else "cuda")
        self.corpus: ChunkCorpus | None = None
        self.embeddings: np.ndarray | None = None
        self._index: Any = None

    def index(self, corpus: ChunkCorpus, *, embeddings: np.ndarray | None = None,
              progress: Callable[[int], None] | None = None) -> None:
        """Embed every row (unless `embeddings` are given, one per row) and build the FAISS index."""
        if embeddings is None:
            embeddings = self.embedder.encode_documents(corpus.index_texts(), progress=progress)
        if len(embeddings) != len(corpus):
            raise ValueError(f"{len(embeddings)} embeddings for {len(corpus)} rows")
        self._index = faiss_index.build_index(embeddings, kind=self._config["index"], device=self._config["device"],
                                              threads=None) if len(corpus) else None
        self.corpus, self.embeddings = corpus, embeddings

    @property
    def index_kind(self) -> str:
        return faiss_index.describe(self._index) if self._index is not None else "empty"

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
        k = min(top_k or self.top_k, len(corpus))
        mask = corpus.filter_mask(filters)
        allowed = np.flatnonzero(mask) if mask is not None else None
        if allowed is not None and len(allowed) == 0:
            return [[] for _ in range(len(vectors))]
        if allowed is not None and len(allowed) <= EXACT_FILTER_MAX and self.embeddings is not None:
            sims = vectors @ self.embeddings[allowed].T
            kk = min(k, len(allowed))
            top = np.argsort(-sims, axis=1, kind="stable")[:, :kk]
            scores, ids = np.take_along_axis(sims, top, axis=1), allowed[top]
        else:
            threads = self._config["threads"] or (1 if len(vectors) < 16 else None)
            scores, ids = faiss_index.search(self._index, np.ascontiguousarray(vectors, dtype=np.float32), k,
                                             allowed=allowed, threads=threads,
                                             nprobe=self._config["nprobe"], ef_search=self._config["ef_search"])
        return [[corpus.passage(i, s, "dense") for s, i in zip(srow, irow) if i >= 0]
                for srow, irow in zip(scores.tolist(), ids.tolist())]

    def save(self, directory: str | Path, *, include_corpus: bool = True) -> None:
        import numpy as np

        directory = Path(directory)
        corpus = self._require_corpus()
        directory.mkdir(parents=True, exist_ok=True)
        if self._index is not None:
            faiss_index.save_index(self._index, directory / INDEX_FILE)
        if self._config["store_embeddings"] and self.embeddings is not None:
            tmp = directory / f".{EMBEDDINGS_FILE}.tmp.npy"
            np.save(tmp, self.embeddings)
            tmp.replace(directory / EMBEDDINGS_FILE)
        if include_corpus:
            corpus.save(directory)
        write_atomic(directory / CONFIG_FILE, json.dumps(self.to_config(), indent=1))

    @classmethod
    def load(cls, directory: str | Path, *, corpus: ChunkCorpus | None = None, **overrides: Any) -> DenseRetriever:
        """Load a saved retriever; `overrides` replace init arguments such as `threads` or `nprobe`."""
        import numpy as np

        directory = Path(directory)
        if not (directory / CONFIG_FILE).exists():
            raise IndexStateError(f"no dense index in {directory}: build one first (pilotfish ingest ...)")
        config = json.loads((directory / CONFIG_FILE).read_text())
        config["init"].update(overrides)
        retriever = cls.from_config(config)
        retriever.corpus = corpus if corpus is not None else ChunkCorpus.load(directory)
        if (directory / INDEX_FILE).exists():
            retriever._index = faiss_index.load_index(directory / INDEX_FILE)
        if (directory / EMBEDDINGS_FILE).exists():
            retriever.embeddings = np.load(directory / EMBEDDINGS_FILE, mmap_mode="r")
        return retriever

    def _require_corpus(self) -> ChunkCorpus:
        if self.corpus is None:
            raise IndexStateError("DenseRetriever has no index: call index(corpus) or DenseRetriever.load(dir)")
        return self.corpus
