"""FAISS index factory: flat, HNSW, IVF, IVF-PQ or IVF-SQ8 by corpus size (or by choice), on CPU or GPU.

Vectors are unit length, so inner product is cosine similarity. Indexes built on a GPU are copied
back to CPU before saving, so every saved index loads on a machine without one. A large saved index is
memory-mapped when loaded (read-only), so it is paged in from disk as searches touch it, not read whole.

>>> import numpy as np
>>> vecs = np.eye(4, dtype="float32")
>>> index = build_index(vecs, kind="auto")
>>> describe(index)
'flat'
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotfish.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

KINDS = ("auto", "flat", "hnsw", "ivf", "ivfpq", "ivfsq8")
IVF_KINDS = ("ivf", "ivfpq", "ivfsq8")
FLAT_MAX = 50_000        # exact search is a few ms per query below this on one core
HNSW_MAX = 1_000_000     # HNSW memory and build time grow past this; IVF takes over
ADD_SLICE = 65_536       # vectors handed to FAISS per add() call (bounds the copy of a memmap)
MMAP_MIN_BYTES = 64 * 2**20  # saved indexes at least this large are memory-mapped on load


def choose_kind(n: int, kind: str = "auto") -> str:
    """The index kind for `n` vectors: flat below 50k, HNSW below 1M, IVF above."""
    if kind not in KINDS:
        raise ConfigError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    if n < FLAT_MAX:
        return "flat"
    return "hnsw" if n < HNSW_MAX else "ivf"


def ivf_lists(n: int) -> int:
    """Number of IVF cells: about 4 * sqrt(n), at least 1 and at most n / 39 (FAISS's training minimum)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39 or 1))


def set_threads(threads: int | None) -> None:
    import faiss

    faiss.omp_set_num_threads(threads or os.cpu_count() or 1)


def build_index(vectors: np.ndarray, *, kind: str = "auto", device: str = "cpu", hnsw_m: int = 32,
                nlist: int | None = None, pq_m: int | None = None, threads: int | None = None) -> Any:
    """Build a FAISS inner-product index over `vectors` (row i gets id i). Returns a CPU index."""
    import faiss
    import numpy as np

    vectors = np.asarray(vectors)  # a memmap stays a view; slices become float32 as they are added
    n, dim = vectors.shape
    chosen = choose_kind(n, kind)
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}; use 'cpu' or 'cuda'")
    set_threads(threads)
    if chosen == "flat":
        index = faiss.IndexFlatIP(dim)
    elif chosen == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    else:
        cells = nlist or ivf_lists(n)
        quantizer = faiss.IndexFlatIP(dim)
        if chosen == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
        elif chosen == "ivfsq8":  # one byte a dimension: a quarter of the flat index, and no PQ training
            index = faiss.IndexIVFScalarQuantizer(quantizer, dim, cells, faiss.ScalarQuantizer.QT_8bit,
                                                  faiss.METRIC_INNER_PRODUCT)
        else:
            m = pq_m or _pq_subquantizers(dim)
            index = faiss.IndexIVFPQ(quantizer, dim, cells, m, 8, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = max(1, cells // 16)
    if device == "cuda":
        return _build_on_gpu(index, vectors, chosen)
    if not index.is_trained:
        index.train(_training_sample(vectors, index))
    add_in_slices(index, vectors)
    logger.info("built %s index over %d vectors of dimension %d", chosen, n, dim)
    return index


def add_in_slices(index: Any, vectors: np.ndarray, rows: int = ADD_SLICE) -> None:
    """Add `vectors` `rows` at a time, so a memory-mapped matrix is never read into memory whole."""
    import numpy as np

    for start in range(0, len(vectors), rows):
        index.add(np.ascontiguousarray(vectors[start:start + rows], dtype=np.float32))


def _pq_subquantizers(dim: int) -> int:
    for m in (dim // 8, dim // 4, dim // 2, dim):
        if m and dim % m == 0 and m <= 96:
            return m
    return 1


def _training_sample(vectors: np.ndarray, index: Any) -> np.ndarray:
    import numpy as np

    cap = 256 * getattr(index, "nlist", 1)
    if len(vectors) <= cap:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    rng = np.random.default_rng(0)
    return np.ascontiguousarray(vectors[rng.choice(len(vectors), cap, replace=False)], dtype=np.float32)


def _build_on_gpu(index: Any, vectors: np.ndarray, chosen: str) -> Any:
    import faiss

    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        raise ConfigError("device='cuda' needs faiss built with GPU support and a visible GPU; "
                          "install faiss-gpu (e.g. faiss-gpu-cu12) or use device='cpu'")
    if chosen == "hnsw":
        raise ConfigError("FAISS builds HNSW on CPU only; use kind='flat', 'ivf', 'ivfpq' or 'ivfsq8' with "
                          "device='cuda'")
    resources = faiss.StandardGpuResources()
    gpu_index = faiss.index_cpu_to_gpu(resources, 0, index)
    if not gpu_index.is_trained:
        gpu_index.train(_training_sample(vectors, index))
    add_in_slices(gpu_index, vectors)
    return faiss.index_gpu_to_cpu(gpu_index)


def describe(index: Any) -> str:
    import faiss

    if isinstance(index, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(index, faiss.IndexIVFPQ):
        return "ivfpq"
    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        return "ivfsq8"
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf"
    return "flat"


def search(index: Any, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
           threads: int | None = 1, nprobe: int | None = None, ef_search: int | None = None) -> tuple[Any, Any]:
    """Top-k (scores, ids) per query; `allowed` restricts results to those row ids."""
    import faiss

    set_threads(threads)
    kind = describe(index)
    selector = faiss.IDSelectorBatch(allowed.astype("int64")) if allowed is not None else None
    if kind == "hnsw":
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(ef_search or 64, k))
    elif kind in IVF_KINDS:
        params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe or index.nprobe)
    else:
        params = faiss.SearchParameters(sel=selector) if selector is not None else None
    return index.search(queries, k, params=params)


def save_index(index: Any, path: Path) -> None:
    import faiss

    tmp = path.with_name(f".{path.name}.tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)


def load_index(path: Path, *, mmap_min_bytes: int = MMAP_MIN_BYTES) -> Any:
    """The index saved at `path`; from `mmap_min_bytes` on, memory-mapped read-only instead of read: IVF
    indexes map their inverted lists (a search pages in only the cells it probes), flat and HNSW indexes
    their vectors. Loaded indexes are only searched (a new generation builds a new index), so read-only holds."""
    import faiss

    path = Path(path)
    if path.stat().st_size < mmap_min_bytes:
        return faiss.read_index(str(path))
    with path.open("rb") as fh:
        ivf = fh.read(2) == b"Iw"  # FAISS's four-character codes of IVF indexes start with "Iw"
    mapped = faiss.IO_FLAG_MMAP if ivf else faiss.IO_FLAG_MMAP_IFC  # FAISS accepts one or the other per kind
    return faiss.read_index(str(path), mapped | faiss.IO_FLAG_READ_ONLY)
