"""FaissVectors: the default vector backend, a FAISS index plus the embedding matrix, saved as plain files.

The index kind follows the corpus size (flat, HNSW, IVF; see `retrievers.index`). A filtered search over
few allowed rows is exact over the stored embeddings; otherwise FAISS searches with an ID selector.
Embeddings given as a `np.memmap` are never copied whole: they go into the index in slices, and a
memmap that already is `directory/embeddings.npy` is not written again on save.

>>> import numpy as np
>>> from pilotfish.retrievers.corpus import ChunkCorpus
>>> backend = FaissVectors()
>>> backend.build(ChunkCorpus.from_texts(["a", "b"]), np.eye(2, dtype="float32"))
>>> backend.search(np.array([[0.0, 1.0]], dtype="float32"), 1)
([[1.0]], [[1]])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotfish.retrievers import index as faiss_index
from pilotfish.retrievers.corpus import ChunkCorpus, Filters

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
EMBEDDINGS_FILE = "embeddings.npy"
# Below this many allowed rows a filtered search is exact over the stored vectors; above it
# FAISS searches with an ID selector.
EXACT_FILTER_MAX = 20_000


class FaissVectors:
    """Vectors in a FAISS index (and, for exact filtered search and `vectors()`, the embedding matrix)."""

    kind = "faiss"
    url = "faiss"

    def __init__(self, *, index: str = "auto", device: str = "cpu", threads: int | None = None,
                 nprobe: int | None = None, ef_search: int | None = None, store_embeddings: bool = True) -> None:
        faiss_index.choose_kind(1, index)  # validates the kind
        self.index_kind, self.device, self.threads = index, device, threads
        self.nprobe, self.ef_search, self.store_embeddings = nprobe, ef_search, store_embeddings
        self.corpus: ChunkCorpus | None = None
        self.embeddings: np.ndarray | None = None
        self._index: Any = None

    def missing(self, corpus: ChunkCorpus) -> list[int]:
        """Rows whose vectors this backend lacks: every row (a FAISS index is rebuilt whole)."""
        return list(range(len(corpus)))

    def build(self, corpus: ChunkCorpus, vectors: np.ndarray, rows: Sequence[int] | None = None) -> None:
        """Index `vectors` (one per corpus row, in order); `rows`, when given, must be every row."""
        if rows is not None and list(rows) != list(range(len(corpus))):
            raise ValueError("the FAISS backend is built from one vector per corpus row, in order")
        if len(vectors) != len(corpus):
            raise ValueError(f"{len(vectors)} embeddings for {len(corpus)} rows")
        self._index = faiss_index.build_index(vectors, kind=self.index_kind, device=self.device,
                                              threads=None) if len(corpus) else None
        self.corpus, self.embeddings = corpus, vectors

    def attach(self, corpus: ChunkCorpus) -> None:
        self.corpus = corpus

    def describe(self) -> str:
        return faiss_index.describe(self._index) if self._index is not None else "empty"

    def search(self, queries: np.ndarray, k: int, filters: Filters | None = None, *,
               exact_filter_max: int = EXACT_FILTER_MAX) -> tuple[list[list[float]], list[list[int]]]:
        """Top-`k` (scores, rows) per query among the rows matching `filters`."""
        import numpy as np

        corpus = self._corpus()
        k = min(k, len(corpus))
        mask = corpus.filter_mask(filters)
        allowed = np.flatnonzero(mask) if mask is not None else None
        if (allowed is not None and len(allowed) == 0) or k == 0:
            return [[] for _ in range(len(queries))], [[] for _ in range(len(queries))]
        if allowed is not None and len(allowed) <= exact_filter_max and self.embeddings is not None:
            sims = queries @ np.asarray(self.embeddings[allowed]).T
            top = np.argsort(-sims, axis=1, kind="stable")[:, :min(k, len(allowed))]
            scores, ids = np.take_along_axis(sims, top, axis=1), allowed[top]
        else:
            threads = self.threads or (1 if len(queries) < 16 else None)
            scores, ids = faiss_index.search(self._index, np.ascontiguousarray(queries, dtype=np.float32), k,
                                             allowed=allowed, threads=threads, nprobe=self.nprobe,
                                             ef_search=self.ef_search)
        pairs = [[(s, i) for s, i in zip(srow, irow) if i >= 0] for srow, irow in zip(scores.tolist(), ids.tolist())]
        return [[s for s, _ in p] for p in pairs], [[i for _, i in p] for p in pairs]

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """The stored vectors of corpus `rows` (needs the embeddings: store_embeddings=True or just built)."""
        import numpy as np

        from pilotfish.errors import IndexStateError

        if self.embeddings is None:
            raise IndexStateError("this dense index was saved without its embeddings (store_embeddings=False); "
                                  "rebuild it with store_embeddings=True to read vectors back")
        return np.asarray(self.embeddings[list(rows)], dtype=np.float32)

    def prune_stale(self) -> int:
        return 0  # a FAISS index holds exactly the current rows

    def save(self, directory: Path) -> None:
        import numpy as np

        if self._index is not None:
            faiss_index.save_index(self._index, directory / INDEX_FILE)
        target = directory / EMBEDDINGS_FILE
        if self.store_embeddings and self.embeddings is not None and not _is_file_of(self.embeddings, target):
            tmp = directory / f".{EMBEDDINGS_FILE}.tmp.npy"
            np.save(tmp, self.embeddings)
            tmp.replace(target)

    def load(self, directory: Path, corpus: ChunkCorpus) -> None:
        import numpy as np

        self.corpus = corpus
        if (directory / INDEX_FILE).exists():
            self._index = faiss_index.load_index(directory / INDEX_FILE)
        if (directory / EMBEDDINGS_FILE).exists():
            self.embeddings = np.load(directory / EMBEDDINGS_FILE, mmap_mode="r")

    def _corpus(self) -> ChunkCorpus:
        if self.corpus is None:
            from pilotfish.errors import IndexStateError

            raise IndexStateError("no vectors: build the dense index first")
        return self.corpus


def _is_file_of(array: Any, path: Path) -> bool:
    """Whether `array` is a memmap over the whole of the .npy file at `path` (so saving it there is a no-op)."""
    import numpy as np

    filename = getattr(array, "filename", None)
    if not isinstance(array, np.memmap) or not filename or not path.exists():
        return False
    if Path(filename).resolve() != path.resolve():
        return False
    on_disk = np.load(path, mmap_mode="r")
    return on_disk.shape == array.shape and on_disk.dtype == array.dtype and on_disk.offset == array.offset
