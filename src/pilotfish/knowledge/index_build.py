"""Writing a new generation of the indexes (BM25 and dense) from the store's chunks, with vectors reused rather
than computed again wherever the same text was embedded before: by this ingest's staged batches, or by the
previous generation. The vectors are assembled in a memory-mapped `embeddings.npy`, block by block, so
building them takes no second copy of the matrix in memory.

>>> vector_key("Pilot fish swim ahead of sharks.") == vector_key("Pilot fish swim ahead of sharks.")
True
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pilotfish.knowledge.store import KnowledgeStore
from pilotfish.retrievers.corpus import ChunkCorpus, CorpusRow

if TYPE_CHECKING:
    import numpy as np

    from pilotfish.knowledge.staging import IngestStaging
    from pilotfish.retrievers.bm25 import BM25Retriever
    from pilotfish.retrievers.dense import DenseRetriever

BLOCK = 8192  # rows looked up, embedded or copied at a time


class IndexTarget(Protocol):
    """What building needs of a knowledge base (`KnowledgeBase` is one)."""

    settings: dict[str, Any]

    def generation_dir(self, generation: int) -> Path: ...

    def new_bm25(self) -> BM25Retriever: ...

    def new_dense(self, **overrides: Any) -> DenseRetriever: ...

    def current_dense(self) -> DenseRetriever | None: ...


class _Progress(Protocol):
    def stage(self, name: str, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None: ...


def vector_key(text: str) -> int:
    """A 64-bit key of an indexed text: equal texts share their vector."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


class VectorLookup:
    """Vectors by text key, from any number of sources (a staged batch, a previous index): sorted keys and
    (source, row) pairs in numpy arrays, 24 bytes a vector, so a lookup over millions stays small."""

    def __init__(self) -> None:
        self._keys: list[np.ndarray] = []
        self._where: list[tuple[int, np.ndarray]] = []
        self._sources: list[Callable[[np.ndarray], np.ndarray]] = []
        self._table: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.dimension: int | None = None

    def add(self, texts: Iterable[str], fetch: Callable[[np.ndarray], np.ndarray], dimension: int) -> None:
        """Register a source: its texts in row order and `fetch(rows) -> vectors`."""
        import numpy as np

        keys = np.fromiter((vector_key(t) for t in texts), dtype=np.int64)
        self._keys.append(keys)
        self._where.append((len(self._sources), np.arange(len(keys), dtype=np.int64)))
        self._sources.append(fetch)
        self.dimension = self.dimension or dimension
        self._table = None

    def __len__(self) -> int:
        return sum(len(k) for k in self._keys)

    def fill(self, texts: Sequence[str], out: np.ndarray) -> list[int]:
        """Write the known vectors of `texts` into the rows of `out`; returns the positions still to embed."""
        import numpy as np

        if not texts:
            return []
        if not self._keys:
            return list(range(len(texts)))
        keys, source, rows = self._sorted()
        wanted = np.fromiter((vector_key(t) for t in texts), dtype=np.int64, count=len(texts))
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        found = keys[at] == wanted
        for s, fetch in enumerate(self._sources):
            mine = np.flatnonzero(found & (source[at] == s))
            if len(mine):
                out[mine] = fetch(rows[at[mine]])
        return np.flatnonzero(~found).tolist()

    def _sorted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import numpy as np

        if self._table is None:
            keys = np.concatenate(self._keys)
            source = np.concatenate([np.full(len(r), s, dtype=np.int32) for s, r in self._where])
            rows = np.concatenate([r for _, r in self._where])
            order = np.argsort(keys, kind="stable")
            self._table = (keys[order], source[order], rows[order])
        return self._table


def add_previous(lookup: VectorLookup, kb: IndexTarget, model: str) -> VectorLookup:
    """Add the current generation's vectors to `lookup`, if they were made with `model` (one index holds one
    model's vectors)."""
    previous = kb.current_dense()
    if previous is None or previous.corpus is None or previous.embedder.model != model or not len(previous.corpus):
        return lookup
    corpus = previous.corpus
    sample = stored_vectors(previous, [0])
    if sample is None:
        return lookup
    lookup.add((corpus.index_text(i) for i in range(len(corpus))),
               lambda rows: stored_vectors(previous, rows.tolist()), sample.shape[1])  # type: ignore[arg-type]
    return lookup


def stored_vectors(dense: DenseRetriever, rows: Sequence[int]) -> np.ndarray | None:
    """The vectors a built dense retriever holds for corpus `rows` (None when it keeps none)."""
    import numpy as np

    if hasattr(dense, "vectors"):
        return dense.vectors(rows)
    if dense.embeddings is None:
        return None
    return np.asarray(dense.embeddings[np.asarray(rows, dtype=np.int64)])


def add_staged(lookup: VectorLookup, staging: IngestStaging) -> VectorLookup:
    """Add every staged batch's vectors to `lookup`."""
    for texts, vectors in staging.vector_batches():
        lookup.add(texts, lambda rows, v=vectors: v[rows], vectors.shape[1])
    return lookup


def corpus_from(store: KnowledgeStore, session: object) -> ChunkCorpus:
    rows = [CorpusRow(chunk_id=r.chunk_id, doc_id=r.doc_id, text=r.text, title=r.title, source=r.path,
                      metadata=dict(r.meta or {}))
            for r in store.iter_chunks(session)]  # type: ignore[arg-type]
    return ChunkCorpus(rows)


def build_indexes(kb: IndexTarget, corpus: ChunkCorpus, generation: int, progress: _Progress, *,
                  model: str | None = None, staging: IngestStaging | None = None) -> int:
    """Write generation `generation` of the indexes; returns how many chunks were newly embedded. Vectors come
    from `staging` and the previous generation where the text is the same; with `model` (`kb reembed`), every
    chunk is embedded again with that model instead of the knowledge base's own."""
    import numpy as np

    target = kb.generation_dir(generation)
    if target.exists():  # left over by a crashed ingest that never committed
        shutil.rmtree(target)
    target.mkdir(parents=True)
    corpus.save(target)
    progress.stage("Indexing BM25", None)
    bm25 = kb.new_bm25()
    bm25.index(corpus)
    bm25.save(target / "bm25", include_corpus=False)
    if not kb.settings["dense"]:
        return 0
    dense = kb.new_dense(model=model) if model else kb.new_dense()
    lookup = VectorLookup()
    if model is None:  # the same folder may hold new weights (retrained in place): nothing is reused then
        if staging is not None:
            add_staged(lookup, staging)
        add_previous(lookup, kb, dense.embedder.model)
    if not len(corpus):
        return 0
    dimension = lookup.dimension
    if dimension is None:
        progress.stage(f"Loading embedding model {dense.embedder.model}", None)
        dimension = dense.embedder.dimension  # the model loads lazily: load it now, in its own stage
    (target / "dense").mkdir()
    vectors = np.lib.format.open_memmap(target / "dense" / "embeddings.npy", mode="w+", dtype=np.float32,
                                        shape=(len(corpus), dimension))
    todo: list[int] = []
    for start in range(0, len(corpus), BLOCK):
        texts = [corpus.index_text(i) for i in range(start, min(start + BLOCK, len(corpus)))]
        todo += [start + i for i in lookup.fill(texts, vectors[start:start + len(texts)])]
    if todo:  # vectors neither staged nor in the previous generation (e.g. a corpus staged with --no-dense)
        progress.stage(f"Loading embedding model {dense.embedder.model}", None)
        _ = dense.embedder.dimension
        progress.stage("Embedding chunks", len(todo))
    for start in range(0, len(todo), BLOCK):
        rows = todo[start:start + BLOCK]
        vectors[rows] = dense.embedder.encode_documents([corpus.index_text(i) for i in rows],
                                                        progress=progress.advance)
    vectors.flush()
    progress.stage("Building vector index", None)
    dense.index(corpus, embeddings=vectors)
    dense.save(target / "dense", include_corpus=False)
    if dense.embeddings is None:  # the backend keeps the vectors itself (a Milvus collection)
        del vectors
        (target / "dense" / "embeddings.npy").unlink(missing_ok=True)
    return len(todo)
