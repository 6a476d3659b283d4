"""MilvusVectors: dense vectors in a Milvus collection (a server, or Milvus Lite in this process).

Each row is stored under a key made of its chunk id and a hash of the embedding model, the indexed text
and the fields a filter can name, so a changed chunk gets a new key (vectors an older index generation
still points at are never overwritten), two models' vectors never mix, and unchanged chunks keep their
vectors from one ingest to the next (`missing` tells which rows need embedding). A search keeps only hits
whose key belongs to the current corpus, fetching deeper when stale hits crowd the top; `prune_stale`
deletes those later. Filters are translated into a Milvus boolean expression with the same meaning as
`ChunkCorpus.filter_mask`. pymilvus is imported, and the server reached, on first use.

>>> from pilotfish.retrievers.corpus import ChunkCorpus
>>> milvus_filter({"lang": ["en", "fr"], "doc_id": "a"})
'(meta["lang"] == "en" or meta["lang"] == "fr" or json_contains_any(meta["lang"], ["en", "fr"])) and doc_id in ["a"]'
>>> import numpy as np
>>> from pilotfish.retrievers.vectors import open_backend
>>> backend = open_backend("milvus:///vectors.db", model="minilm-l6")      # doctest: +SKIP
>>> backend.build(ChunkCorpus.from_texts(["a", "b"]), np.eye(2, dtype="float32"))   # doctest: +SKIP
>>> backend.search(np.array([[0.0, 1.0]], dtype="float32"), 1)             # doctest: +SKIP
([[1.0]], [[1]])
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotfish.errors import BackendUnavailableError, ConfigError, IndexStateError, QueryError
from pilotfish.retrievers.corpus import TOP_LEVEL_FIELDS, ChunkCorpus, Filters, write_atomic

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

STATE_FILE = "milvus.json"
DEFAULT_COLLECTION = "pilotfish"
CONNECT_TIMEOUT = 5.0     # seconds to reach the server before saying it does not answer
CALL_TIMEOUT = 120.0      # seconds per call (pymilvus retries a failing call until then)
INSERT_BATCH = 2_000      # rows per insert
KEY_BATCH = 1_000         # keys per lookup
MAX_LIMIT = 16_384        # the most hits Milvus returns per query
VARCHAR_MAX = 65_535
KEY_MAX = 1_024
_UNSAFE = {chr(c) for c in range(32) if chr(c) not in "\n\r\t"} | {"\x7f"}


def row_key(row: Any, model: str, index_text: str) -> str:
    """The primary key of a corpus row: chunk id, '#', 16 hex of sha1(model, indexed text, filterable fields)."""
    fields = json.dumps([row.doc_id, row.source, row.title, row.metadata or {}], sort_keys=True, default=str)
    digest = hashlib.sha1(f"{model}\n{index_text}\n{fields}".encode()).hexdigest()[:16]
    chunk = row.chunk_id
    if len(chunk.encode()) > KEY_MAX - 17:  # an overlong id is replaced by its hash to fit the key field
        chunk = hashlib.sha1(chunk.encode()).hexdigest()
    return f"{chunk}#{digest}"


def milvus_filter(filters: Filters | None) -> str | None:
    """The Milvus expression for `filters` (None without filters). Values compare as strings; a list-valued
    metadata field matches when any element does; doc_id, chunk_id, source and title are fields of their own."""
    if not filters:
        return None
    parts = []
    for key, value in filters.items():
        if not isinstance(key, str) or not key:
            raise QueryError(f"bad filter key {key!r}: use key=value with a non-empty key")
        accepted = sorted({str(v) for v in (value if isinstance(value, (list, tuple, set)) else [value])})
        literals = ", ".join(_literal(v) for v in accepted)
        if key in TOP_LEVEL_FIELDS:
            parts.append(f"{key} in [{literals}]")
            continue
        if set(key) & (_UNSAFE | {'"', "\\", "\n", "\r", "\t"}):
            raise QueryError(f"filter key {key!r} holds a quote, backslash or control character, which a Milvus "
                             "expression cannot name; rename the metadata field or use the faiss backend")
        path = f'meta["{key}"]'
        equal = " or ".join(f"{path} == {_literal(v)}" for v in accepted)
        parts.append(f"({equal} or json_contains_any({path}, [{literals}]))" if accepted else "false")
    return " and ".join(parts)


def _literal(value: str) -> str:
    if set(value) & _UNSAFE:
        raise QueryError(f"filter value {value!r} holds a control character that a Milvus expression cannot carry; "
                         "filter on another field or use the faiss backend")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + escaped.replace("\t", "\\t") + '"'


def _meta(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Metadata as stored: scalars as strings, lists as lists of strings (None values dropped), as filters read it."""
    out: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        if isinstance(value, list):
            out[key] = [str(v) for v in value if v is not None]
        elif value is not None:
            out[key] = str(value)
    return out


def _clip(text: str) -> str:
    data = text.encode()
    return text if len(data) <= VARCHAR_MAX else data[:VARCHAR_MAX].decode(errors="ignore")


class MilvusVectors:
    """Vectors in a Milvus collection; see the module docstring. Built by `vectors.open_backend`, which passes
    `parsed`, the URL as `vectors.parse_url` reads it (a `VectorsURL`; not imported here: vectors imports this)."""

    kind = "milvus"

    def __init__(self, *, url: str, parsed: Any, model: str, ef_search: int | None = None,
                 nprobe: int | None = None) -> None:
        self.url, self.parsed, self.model = url, parsed, model
        self.base_collection = parsed.collection or DEFAULT_COLLECTION
        self.collection: str | None = None  # chosen when the dimension is known (build or load)
        self.index_type = (parsed.index or ("FLAT" if parsed.lite else "AUTOINDEX")).upper()
        self.ef_search, self.nprobe = ef_search, nprobe
        self.corpus: ChunkCorpus | None = None
        self.embeddings = None  # the vectors live in Milvus, not in memory
        self._keys: list[str] = []
        self._row_of: dict[str, int] = {}
        self._client_obj: Any = None
        self._loaded: set[str] = set()  # collections loaded by this process (Milvus Lite starts them released)
        self._lock = threading.Lock()

    # -- connection ---------------------------------------------------------------------------
    def _client(self) -> Any:
        with self._lock:
            if self._client_obj is None:
                try:
                    from pymilvus import MilvusClient
                except ImportError:
                    raise ConfigError("the Milvus backend needs pymilvus (and milvus-lite for .db paths): "
                                      "pip install 'pilotfish[milvus]'") from None
                for name in ("pymilvus", "pymilvus.milvus_client"):  # failures surface as our errors instead
                    logging.getLogger(name).setLevel(logging.CRITICAL)
                token = ""
                if self.parsed.token_env:
                    import os

                    token = os.environ.get(self.parsed.token_env, "")
                    if not token:
                        raise ConfigError(f"{self.url} reads its token from ${self.parsed.token_env}, which is not "
                                          "set: export it, or drop ?token_env from the URL")
                if self.parsed.lite:
                    Path(self.parsed.uri).parent.mkdir(parents=True, exist_ok=True)
                self._client_obj = self._guard("connect", lambda: MilvusClient(
                    uri=self.parsed.uri, token=token, timeout=CONNECT_TIMEOUT))
            return self._client_obj

    def _guard(self, what: str, call: Any) -> Any:
        """Run `call`, turning pymilvus failures into errors that name the URL and what to check."""
        try:
            return call()
        except ImportError as err:
            raise ConfigError(f"{self.url}: {err}; install the Milvus extra: pip install 'pilotfish[milvus]'") from None
        except Exception as err:  # pymilvus raises MilvusException, grpc errors and a few built-ins
            if type(err).__module__.split(".")[0] not in ("pymilvus", "grpc", "milvus_lite"):
                raise
            code = getattr(err, "code", None)
            text = getattr(err, "message", None) or str(err)
            if code == 2 or "UNAVAILABLE" in str(code) or "DEADLINE" in str(code) or what == "connect":
                where = (f"check that {self.parsed.uri} is a folder this process can write and that no other "
                         "process holds it" if self.parsed.lite else
                         "check that the Milvus server runs, that host and port are right and reachable from here")
                raise BackendUnavailableError(f"Milvus at {self.url} does not answer ({what}: {text}); "
                                              f"{where}") from None
            raise IndexStateError(f"Milvus at {self.url} refused {what}: {text}") from None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        client = self._client()
        return self._guard(method, lambda: getattr(client, method)(*args, timeout=CALL_TIMEOUT, **kwargs))

    # -- the collection -----------------------------------------------------------------------
    def _open_collection(self, dimension: int, *, create: bool) -> str | None:
        """The collection holding `dimension`-wide vectors: the base name, or base_d{dim} when the base holds
        another width (a knowledge base re-embedded with a model of another size). Created when asked."""
        for name in (self.base_collection, f"{self.base_collection}_d{dimension}"):
            if not self._call("has_collection", name):
                if create:
                    self._create(name, dimension)
                    return name
                return None
            if self._dimension_of(name) == dimension:
                return name
        raise IndexStateError(f"Milvus collection {self.base_collection}_d{dimension} at {self.url} holds vectors of "
                              "another width; drop it or pick another collection in the URL")

    def _dimension_of(self, name: str) -> int:
        fields = self._call("describe_collection", name).get("fields", [])
        dims = [int(f.get("params", {}).get("dim", 0)) for f in fields if f.get("name") == "vector"]
        if not dims:
            raise IndexStateError(f"Milvus collection {name} at {self.url} was not made by pilotfish (no 'vector' "
                                  "field); pick another collection in the URL")
        return dims[0]

    def _create(self, name: str, dimension: int) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=KEY_MAX)
        for field in TOP_LEVEL_FIELDS:
            schema.add_field(field, DataType.VARCHAR, max_length=VARCHAR_MAX)
        schema.add_field("meta", DataType.JSON)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        params = self._client().prepare_index_params()
        params.add_index(field_name="vector", index_type=self.index_type, metric_type="IP")
        self._call("create_collection", name, schema=schema, consistency_level="Strong")
        # Milvus Lite lacks the timestamp call that waiting for an index makes (an empty index is ready at once)
        self._call("create_index", name, params, sync=not self.parsed.lite)
        self._ensure_loaded(name)
        logger.info("created Milvus collection %s (%d dimensions, %s) at %s", name, dimension, self.index_type,
                    self.url)

    def _existing(self, keys: Sequence[str], collection: str | None = None) -> set[str]:
        found: set[str] = set()
        collection = collection or self.collection
        self._ensure_loaded(collection)
        for start in range(0, len(keys), KEY_BATCH):
            batch = list(keys[start:start + KEY_BATCH])
            rows = self._call("query", collection,
                              filter=f"pk in [{', '.join(map(_literal, batch))}]", output_fields=["pk"])
            found.update(r["pk"] for r in rows)
        return found

    # -- the backend protocol -----------------------------------------------------------------
    def attach(self, corpus: ChunkCorpus) -> None:
        self.corpus = corpus
        self._keys = [row_key(r, self.model, corpus.index_text(i)) for i, r in enumerate(corpus.rows)]
        self._row_of = {}
        for i, key in enumerate(self._keys):
            self._row_of.setdefault(key, i)

    def missing(self, corpus: ChunkCorpus) -> list[int]:
        keys = [row_key(r, self.model, corpus.index_text(i)) for i, r in enumerate(corpus.rows)]
        present: set[str] = set()
        if self.collection is not None:
            names = [self.collection]
        else:  # the dimension is not known yet: look in every collection of this base name
            names = [n for n in self._call("list_collections")
                     if n == self.base_collection or n.startswith(f"{self.base_collection}_d")]
        for name in names:
            present |= self._existing(keys, name)
        return [i for i, key in enumerate(keys) if key not in present]

    def build(self, corpus: ChunkCorpus, vectors: np.ndarray, rows: Sequence[int] | None = None) -> None:
        """Insert the vectors of rows whose keys the collection lacks (in batches) and search `corpus`."""
        import numpy as np

        rows = list(range(len(corpus))) if rows is None else list(rows)
        if len(vectors) != len(rows):
            raise ValueError(f"{len(vectors)} embeddings for {len(rows)} rows")
        self.attach(corpus)
        if not len(corpus):
            return
        if len(vectors):
            self.collection = self._open_collection(int(vectors.shape[1]), create=True)
        elif self.collection is None:
            self.collection = self.base_collection
        present = self._existing([self._keys[r] for r in rows])
        todo = [(i, r) for i, r in enumerate(rows) if self._keys[r] not in present]
        seen: set[str] = set()
        todo = [(i, r) for i, r in todo if not (self._keys[r] in seen or seen.add(self._keys[r]))]
        for start in range(0, len(todo), INSERT_BATCH):
            part = todo[start:start + INSERT_BATCH]
            block = np.asarray(vectors[[i for i, _ in part]], dtype=np.float32)
            data = []
            for (_, r), vec in zip(part, block):
                row = corpus.rows[r]
                data.append({"pk": self._keys[r], "chunk_id": _clip(row.chunk_id), "doc_id": _clip(row.doc_id),
                             "source": _clip(row.source), "title": _clip(row.title), "meta": _meta(row.metadata),
                             "vector": vec.tolist()})
            self._call("insert", self.collection, data)
        logger.info("Milvus %s: %d of %d rows inserted, %d already stored", self.collection, len(todo), len(rows),
                    len(rows) - len(todo))

    def search(self, queries: np.ndarray, k: int, filters: Filters | None = None, *,
               exact_filter_max: int = 0) -> tuple[list[list[float]], list[list[int]]]:
        corpus = self._corpus()
        mask = corpus.filter_mask(filters)
        wanted = min(k, len(corpus) if mask is None else int(mask.sum()))
        scores: list[list[float]] = [[] for _ in range(len(queries))]
        rows: list[list[int]] = [[] for _ in range(len(queries))]
        if wanted <= 0 or not len(queries):
            return scores, rows
        if self.collection is None:
            raise IndexStateError(f"no Milvus collection holds this index's vectors ({self.url}): ingest again")
        self._ensure_loaded(self.collection)
        expr = milvus_filter(filters) or ""
        limit = min(MAX_LIMIT, max(2 * wanted, wanted + 16))
        todo = list(range(len(queries)))
        while todo:
            hits = self._call("search", self.collection, data=[queries[i].tolist() for i in todo], limit=limit,
                              filter=expr, output_fields=["pk"], search_params=self._search_params(limit))
            again = []
            for q, found in zip(todo, hits):
                kept: dict[int, float] = {}
                for hit in found:
                    row = self._row_of.get(hit["pk"])
                    if row is not None and row not in kept and (mask is None or mask[row]):
                        kept[row] = float(hit["distance"])
                pairs = sorted(kept.items(), key=lambda p: -p[1])[:wanted]
                rows[q], scores[q] = [r for r, _ in pairs], [s for _, s in pairs]
                if len(pairs) < wanted and len(found) >= limit and limit < MAX_LIMIT:
                    again.append(q)
            todo, limit = again, min(MAX_LIMIT, limit * 4)
        return scores, rows

    def _search_params(self, limit: int) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.index_type.startswith("HNSW"):
            params["ef"] = max(self.ef_search or 64, limit)
        elif self.index_type.startswith("IVF") and self.nprobe:
            params["nprobe"] = self.nprobe
        return {"metric_type": "IP", "params": params}

    def _ensure_loaded(self, name: str | None) -> None:
        if name is not None and name not in self._loaded:
            self._call("load_collection", name)
            self._loaded.add(name)

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """The stored vectors of corpus `rows`, fetched by key."""
        import numpy as np

        self._corpus()
        self._ensure_loaded(self.collection)
        keys = [self._keys[r] for r in rows]
        by_key: dict[str, list[float]] = {}
        for start in range(0, len(keys), KEY_BATCH):
            found = self._call("get", self.collection, ids=list(dict.fromkeys(keys[start:start + KEY_BATCH])),
                               output_fields=["vector"])
            by_key.update((r["pk"], r["vector"]) for r in found)
        lost = [k for k in keys if k not in by_key]
        if lost:
            raise IndexStateError(f"Milvus collection {self.collection} at {self.url} lacks the vectors of {len(lost)} "
                                  f"rows (e.g. {lost[0]}); re-create the index: ingest into a new --kb folder")
        return np.array([by_key[k] for k in keys], dtype=np.float32).reshape(len(keys), -1)

    def prune_stale(self) -> int:
        """Delete vectors whose key is not in the current corpus (older generations, other models)."""
        if self.collection is None or not self._call("has_collection", self.collection):
            return 0
        self._ensure_loaded(self.collection)
        current = set(self._keys)
        stale = [key for key in self._all_keys() if key not in current]
        for start in range(0, len(stale), KEY_BATCH):
            self._call("delete", self.collection, ids=stale[start:start + KEY_BATCH])
        if stale:
            logger.info("Milvus %s: pruned %d stale vectors", self.collection, len(stale))
        return len(stale)

    def _all_keys(self) -> Iterator[str]:
        client = self._client()
        iterator = self._guard("query_iterator", lambda: client.query_iterator(
            self.collection, batch_size=KEY_BATCH * 4, filter="", output_fields=["pk"], timeout=CALL_TIMEOUT))
        try:
            while batch := self._guard("query_iterator", iterator.next):
                yield from (r["pk"] for r in batch)
        finally:
            iterator.close()

    def save(self, directory: Path) -> None:
        state = {"backend": "milvus", "collection": self.collection, "rows": len(self._keys)}
        write_atomic(directory / STATE_FILE, json.dumps(state))

    def load(self, directory: Path, corpus: ChunkCorpus) -> None:
        path = directory / STATE_FILE
        state = json.loads(path.read_text()) if path.exists() else {}
        self.collection = state.get("collection") or self.base_collection
        self.attach(corpus)

    def describe(self) -> str:
        return "milvus"

    def _corpus(self) -> ChunkCorpus:
        if self.corpus is None:
            raise IndexStateError("no vectors: build the dense index first")
        return self.corpus
