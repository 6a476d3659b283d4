"""RayBatches: ingest's chunking and embedding spread over Ray actors (`pip install 'pilotfish[ray]'`).

A `BatchProcessor` (knowledge/streaming.py): reading and staging stay in the driver (`stage_file`), so a
killed ingest resumes exactly as a local one; each group of documents handed to `process` is cut into
pieces that idle actors chunk and embed, and the results come back in the documents' order. Every actor
builds its chunker and embedder once, from the knowledge base's settings and the tokenizer and model
paths resolved on the driver, and keeps them for every call.

Why `ray.util.ActorPool` and not Ray Data's `map_batches` over an actor pool: a Dataset execution starts
its own actors and stops them when it ends, so each `process` call would pay for starting the actors and
loading the model again. Measured here (Ray 2.60, 2 cores): about 5 s per `map_batches` execution of a
no-op over 1,000 rows with 2 actors, before any model loads, against 2.4 ms per call to a live actor.
`stage_file` calls `process` once per group (`GROUP_SIZE` documents), so that cost would recur all along
a large file; the ActorPool's actors live as long as the `RayBatches` and load the model once.

Vectors the knowledge base already holds (a changed file keeps most of its chunks) are reused as in the
local path: when the current index has vectors, actors chunk first, the driver fills the known vectors
and the actors embed only the rest.

>>> from pilotfish.knowledge.ray_batches import RayBatches
>>> batches = RayBatches.for_kb(kb, embedder, address="auto", workers=2)   # doctest: +SKIP
>>> [len(chunks) for chunks, _ in batches.process(docs)]                    # doctest: +SKIP
[1, 3, 2]
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pilotfish.errors import ConfigError, PilotfishError
from pilotfish.types import Chunk, Document

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

GROUP_SIZE = 2048  # documents per `process` call, at most `--batch-chunks`: amortises the round trips
GROUP_CHARS = 16_000_000  # characters per `process` call, at most: bounds the driver's memory for long documents
PIECES_PER_WORKER = 4  # a group is cut into about this many pieces per actor, so idle actors take the rest
CONNECT_TIMEOUT_S = 10.0  # a Ray address that does not accept a connection in this time is reported
READY_TIMEOUT_S = 300.0  # actors that have not started (and loaded their models) by then are reported
INSTALL_HINT = "pip install 'pilotfish[ray]'"


def import_ray() -> Any:
    """The `ray` module, or a ConfigError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


def connect(address: str) -> Any:
    """Join Ray at `address` ("auto": the local runtime, started if none runs; "ray://HOST:10001" or
    "HOST:6379": a cluster) unless this process is connected already; returns the `ray` module.

    An address that does not accept a connection within `CONNECT_TIMEOUT_S` is a ConfigError naming it."""
    ray = import_ray()
    if not isinstance(address, str) or not address.strip():
        raise ConfigError("empty --ray address: give auto, ray://HOST:10001 or HOST:6379")
    if ray.is_initialized():
        return ray
    address = address.strip()
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address == "auto":
        options["include_dashboard"] = False
        target: str | None = None
    else:
        _probe(address)
        target = address
    try:
        ray.init(address=target, **options)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as err:
        where = "a local Ray runtime" if target is None else f"Ray at {address!r}"
        raise ConfigError(f"cannot connect to {where}: {err}; check the address (ray://HOST:10001 or "
                          "HOST:6379) and that the cluster runs (`ray status`)") from err
    return ray


def _probe(address: str) -> None:
    """Fail fast, naming `address`, when nothing accepts a TCP connection there (Ray itself waits minutes)."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise ConfigError(f"bad Ray address {address!r}: give auto, ray://HOST:10001 or HOST:6379")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise ConfigError(f"Ray at {address!r} does not answer ({err.strerror or err}); start the cluster "
                          f"(`ray start --head`) or check the address, or use --ray auto for a local one; "
                          "nothing was stored") from None


def start_actors(ray: Any, cls: type, workers: int | None, *args: Any) -> list[Any]:
    """`workers` actors of `cls` (one CPU each; default: one per CPU of the cluster), started and ready."""
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    if workers < 1:
        raise ConfigError(f"--ray-workers must be at least 1, got {workers}")
    actor = ray.remote(num_cpus=1)(cls)
    actors = [actor.remote(*args) for _ in range(workers)]
    pending = [a.ready.remote() for a in actors]
    try:
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=READY_TIMEOUT_S)
        ray.get(ready)
    except ray.exceptions.RayError as err:
        raise ConfigError(f"a Ray worker could not start: {_cause(err)}") from None
    if len(ready) < len(actors):
        cpus = ray.cluster_resources().get("CPU", 0)
        for a in actors:
            ray.kill(a)
        raise ConfigError(f"only {len(ready)} of {workers} Ray workers started in {READY_TIMEOUT_S:.0f} s (the "
                          f"cluster has {cpus:g} CPUs, each worker takes one): lower --ray-workers")
    logger.info("started %d Ray workers of %s", workers, cls.__name__)
    return actors


def _cause(err: BaseException) -> str:
    """The message of the error a Ray task raised, without Ray's traceback around it."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        return str(cause)
    return str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__


class _Worker:
    """One actor: the chunker and embedder, built once from the knowledge base's settings."""

    def __init__(self, settings: dict[str, Any], tokenizer: str, model: str | None, model_dir: str | None) -> None:
        from pilotfish.knowledge.chunking import SentenceChunker

        self.chunker = SentenceChunker(chunk_tokens=settings["chunk_tokens"],
                                       overlap_tokens=settings["overlap_tokens"], tokenizer=tokenizer)
        self.chunker.run(Document(doc_id="tokenizer-warm-up", text="The tokenizer loads on first use."))
        self.embedder = None
        if model is not None:
            from pilotfish.models.cache import override_env_var
            from pilotfish.models.embedding import Embedder

            if model_dir is not None and model_dir != model:  # a registry name: its options, the driver's folder
                os.environ[override_env_var(model)] = model_dir
            self.embedder = Embedder(model=model)  # as `KnowledgeBase.new_dense()` builds it
            _ = self.embedder.dimension  # loads the model now, once

    def ready(self) -> bool:
        return True

    def chunk(self, docs: list[Document]) -> list[list[Chunk]]:
        return self.chunker.run_batch(docs)

    def embed(self, texts: list[str]) -> np.ndarray:
        assert self.embedder is not None
        return self.embedder.encode_documents(texts)

    def chunk_embed(self, docs: list[Document]) -> tuple[list[list[Chunk]], np.ndarray]:
        chunked = self.chunk(docs)
        return chunked, self.embed(_texts(docs, chunked))


def _texts(docs: list[Document], chunked: list[list[Chunk]]) -> list[str]:
    from pilotfish.retrievers.corpus import index_text_of

    return [index_text_of(doc.title, c.text) for doc, chunks in zip(docs, chunked) for c in chunks]


def _pieces(items: list[Any], n: int) -> list[list[Any]]:
    """`items` cut into at most `n` contiguous pieces of nearly equal size."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, at = [], 0
    for i in range(n):
        step = size + (i < extra)
        out.append(items[at:at + step])
        at += step
    return out


class RayBatches:
    """Chunk and embed on Ray actors; see the module docstring. `embedder` is ingest's loaded `BatchEmbedder`
    (None without a dense index): its lookup of known vectors is used here and its `embedded` count kept."""

    group_size = GROUP_SIZE
    group_chars = GROUP_CHARS

    def __init__(self, *, settings: dict[str, Any], tokenizer: str, model: str | None, model_dir: str | None,
                 address: str = "auto", workers: int | None = None, embedder: Any = None) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"--ray-workers must be at least 1, got {workers}")
        import_ray()  # fails now, with the install hint, when Ray is missing
        self.settings, self.tokenizer, self.model, self.model_dir = settings, tokenizer, model, model_dir
        self.address, self.workers, self.embedder = address, workers, embedder
        self._pool: Any = None
        self._actors: list[Any] = []

    @classmethod
    def for_kb(cls, kb: Any, embedder: Any, *, address: str = "auto", workers: int | None = None) -> RayBatches:
        """For knowledge base `kb`: its settings, with its tokenizer and embedding model resolved to paths here."""
        from pilotfish.models import model_path

        import_ray()
        settings = dict(kb.settings)
        tokenizer = settings["tokenizer"]
        if tokenizer != "words":
            tokenizer = str(model_path(tokenizer))
        model = settings["embedding_model"] if settings["dense"] else None
        model_dir = str(model_path(model)) if model is not None else None
        return cls(settings=settings, tokenizer=tokenizer, model=model, model_dir=model_dir, address=address,
                   workers=workers, embedder=embedder)

    def start(self) -> None:
        """Connect to Ray and start the actors (done by the first `process` call otherwise)."""
        if self._pool is not None:
            return
        ray = connect(self.address)
        from ray.util import ActorPool

        self._actors = start_actors(ray, _Worker, self.workers, self.settings, self.tokenizer, self.model,
                                    self.model_dir)
        self._pool = ActorPool(self._actors)

    def close(self) -> None:
        """Stop the actors (they also stop when this object is garbage-collected); the Ray runtime stays."""
        if self._actors:
            import ray

            for actor in self._actors:
                ray.kill(actor)
        self._pool, self._actors = None, []

    def process(self, docs: list[Document]) -> list[tuple[list[Chunk], np.ndarray | None]]:
        import numpy as np

        if not docs:
            return []
        self.start()
        pieces = _pieces(docs, len(self._actors) * PIECES_PER_WORKER)
        lookup = getattr(self.embedder, "_lookup", None)  # BatchEmbedder's vectors of the current index
        if self.model is None:
            chunked = self._map("chunk", pieces)
            return [(chunks, None) for part in chunked for chunks in part]
        if lookup is None or not len(lookup):  # nothing to reuse: chunk and embed in one round trip
            results = self._map("chunk_embed", pieces)
            chunked = [chunks for part, _ in results for chunks in part]
            vectors = np.concatenate([v for _, v in results])
            self._count(len(vectors))
        else:
            chunked = [chunks for part in self._map("chunk", pieces) for chunks in part]
            texts = _texts(docs, chunked)
            vectors = np.zeros((len(texts), lookup.dimension), dtype=np.float32)
            todo = lookup.fill(texts, vectors)
            if todo:
                parts = _pieces([texts[i] for i in todo], len(self._actors) * PIECES_PER_WORKER)
                vectors[todo] = np.concatenate(self._map("embed", parts))
                self._count(len(todo))
        out, at = [], 0
        for chunks in chunked:
            out.append((chunks, vectors[at:at + len(chunks)]))
            at += len(chunks)
        return out

    def _map(self, method: str, pieces: list[list[Any]]) -> list[Any]:
        """`method` of an idle actor on every piece, results in the pieces' order."""
        import ray

        try:
            return list(self._pool.map(lambda actor, piece: getattr(actor, method).remote(piece), pieces))
        except ray.exceptions.RayError as err:
            raise PilotfishError(f"a Ray worker failed while chunking or embedding: {_cause(err)}; the batches "
                                 "staged before it are kept: run the same ingest again to resume") from None

    def _count(self, n: int) -> None:
        if self.embedder is not None:
            self.embedder.embedded += n
