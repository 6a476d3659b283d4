"""Embedder: turns texts into unit-length vectors with a registry model, loaded lazily.

Two formats: sentence-transformers folders (minilm-l6, mean pooling, torch) and the packaged int8
ONNX BERT encoders (bge-small, CLS pooling, a query instruction prefix, onnxruntime).

>>> from pilotfish.models.embedding import Embedder
>>> emb = Embedder(model="minilm-l6")        # nothing loads yet
>>> emb.encode_queries(["what is BM25?"]).shape
(1, 384)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError
from pilotfish.models.memory import release_free_memory

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

FORMATS = ("sentence-transformers", "onnx-embedding")
# Loaded models are shared by every Embedder with the same settings in the process.
_SHARED: dict[tuple[Any, ...], dict[str, Any]] = {}
_SHARED_LOCK = threading.Lock()


class Embedder(Component):
    """Encode documents and queries into float32 unit vectors (cosine = inner product)."""

    def __init__(self, *, model: str = "minilm-l6", batch_size: int = 32, threads: int | None = None,
                 device: str = "cpu", max_length: int | None = None, query_prefix: str | None = None) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1 or None, got {threads}")
        self._config = {"model": model, "batch_size": batch_size, "threads": threads, "device": device,
                        "max_length": max_length, "query_prefix": query_prefix}
        self.model, self.batch_size = model, batch_size
        self._lock = threading.Lock()
        self._loaded: dict[str, Any] | None = None

    # -- loading --------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        if self._loaded is not None:
            return self._loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load_unlocked()
        return self._loaded

    def _load_unlocked(self) -> dict[str, Any]:
        key = (self.model, self._config["threads"], self._config["device"], self._config["max_length"],
               self._config["query_prefix"])
        with _SHARED_LOCK:
            if key not in _SHARED:
                _SHARED[key] = self._load_model()
            return _SHARED[key]

    def _load_model(self) -> dict[str, Any]:
        from pilotfish.models import get_spec, model_path

        path = Path(model_path(self.model))
        fmt, options = _format_of(self.model, path)
        if fmt == "onnx-embedding":
            from pilotfish.models.onnx_runtime import load_session, load_tokenizer

            max_length = self._config["max_length"] or options.get("max_length", 512)
            loaded = {"format": fmt, "tokenizer": load_tokenizer(path, max_length),
                      "session": load_session(path, self._config["threads"]),
                      "pooling": options.get("pooling", "cls"), "dim": None}
        else:
            import torch
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()

            if self._config["threads"]:
                torch.set_num_threads(self._config["threads"])
            st = SentenceTransformer(str(path), device=self._config["device"], local_files_only=True)
            if self._config["max_length"]:
                st.max_seq_length = self._config["max_length"]
            loaded = {"format": fmt, "model": st, "dim": st.get_embedding_dimension()}
        prefix = self._config["query_prefix"]
        if prefix is None:
            try:
                prefix = get_spec(self.model).options.get("query_prefix", "")
            except Exception:  # a local path has no registry entry
                prefix = options.get("query_prefix", "")
        loaded["query_prefix"] = prefix
        logger.info("loaded embedding model %s (%s) from %s", self.model, fmt, path)
        return loaded

    @property
    def dimension(self) -> int:
        loaded = self._load()
        if loaded["dim"] is None:
            loaded["dim"] = int(self.encode_documents(["dimension probe"]).shape[1])
        return int(loaded["dim"])

    # -- encoding -------------------------------------------------------------------------------
    def encode_documents(self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Vectors for passages; `progress(n)` is called after each batch with its size."""
        return self._encode(list(texts), progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        prefix = self._load()["query_prefix"]
        return self._encode([prefix + t for t in texts], None)

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        import numpy as np

        loaded = self._load()
        if not texts:
            return np.zeros((0, loaded["dim"] or 0), dtype=np.float32)
        if loaded["format"] == "sentence-transformers":
            out = np.empty((len(texts), loaded["dim"]), dtype=np.float32)
            # Sort by length over the whole input (as sentence-transformers does within one call) so
            # batches pad little, then encode in slices so the caller's progress bar moves.
            order = np.argsort([-len(t) for t in texts], kind="stable")
            step = self.batch_size * 8
            for start in range(0, len(texts), step):
                idx = order[start:start + step]
                out[idx] = loaded["model"].encode(
                    [texts[i] for i in idx], batch_size=self.batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False)
                if len(texts) > self.batch_size:  # a bulk encode: keep its memory from growing slice by slice
                    release_free_memory()
                if progress:
                    progress(len(idx))
            return out
        return self._encode_onnx(loaded, texts, progress)

    def _encode_onnx(self, loaded: dict[str, Any], texts: list[str],
                     progress: Callable[[int], None] | None) -> np.ndarray:
        import numpy as np

        from pilotfish.models.onnx_runtime import encode_batch

        # Sort by length so each padded batch wastes little compute, then restore the order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        chunks: list[np.ndarray] = []
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            feeds = encode_batch(loaded["tokenizer"], [texts[i] for i in idx])
            hidden = loaded["session"].run(None, feeds)[0]
            if loaded["pooling"] == "mean":
                m = feeds["attention_mask"][..., None].astype(np.float32)
                vecs = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
            else:
                vecs = hidden[:, 0]
            chunks.append(vecs.astype(np.float32))
            if progress:
                progress(len(idx))
        stacked = np.concatenate(chunks)
        stacked /= np.clip(np.linalg.norm(stacked, axis=1, keepdims=True), 1e-12, None)
        out = np.empty_like(stacked)
        out[np.array(order)] = stacked
        loaded["dim"] = out.shape[1]
        return out


def _format_of(name: str, path: Path) -> tuple[str, dict[str, Any]]:
    """The model format and options: from the registry, else guessed from the folder's files."""
    from pilotfish.models import get_spec

    try:
        spec = get_spec(name)
        if spec.format not in FORMATS:
            raise ConfigError(f"model {name!r} is a {spec.role} model ({spec.format}), not an embedding model; "
                              "use minilm-l6 or bge-small")
        return spec.format, dict(spec.options)
    except ConfigError as err:
        if "unknown model" not in str(err):
            raise
    if (path / "model.onnx").exists():
        return "onnx-embedding", {}
    return "sentence-transformers", {}
