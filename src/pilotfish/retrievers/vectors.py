"""Vector backends: where a `DenseRetriever` keeps its vectors, chosen by a URL.

- ``faiss`` (the default): a FAISS index and the embedding matrix, files in the index folder.
- ``milvus:///relative/path.db`` or ``milvus:////absolute/path.db``: Milvus Lite, in this process, in
  that folder (SQLAlchemy's slash convention: three slashes and a relative path, four and an absolute one);
  ``?collection=NAME`` picks the collection.
- ``milvus://HOST:PORT[/COLLECTION]``: a Milvus server (``?secure=true`` for TLS, ``?token_env=VAR`` to read
  a token from the environment variable VAR).

>>> parse_url("faiss").kind
'faiss'
>>> u = parse_url("milvus://db.example.org:19530/papers")
>>> u.uri, u.collection, u.lite
('http://db.example.org:19530', 'papers', False)
>>> parse_url("milvus:///kb/vectors.db?collection=notes").uri
'kb/vectors.db'
>>> resolve_url("milvus://localhost:19530", default_collection="pilotfish_0123456789")
'milvus://localhost:19530/pilotfish_0123456789'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlencode

from pilotfish.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from pilotfish.retrievers.corpus import ChunkCorpus, Filters

DEFAULT = "faiss"
DEFAULT_PORT = 19530
FORMS = ("faiss (the default: index files beside the knowledge base)",
         "milvus:///relative/path.db or milvus:////absolute/path.db (Milvus Lite in this process; "
         "?collection=NAME to pick the collection)",
         "milvus://HOST:PORT[/COLLECTION] (a Milvus server; ?secure=true for TLS, ?token_env=VAR for a token)")
_COLLECTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_OPTIONS = {"collection", "secure", "token_env", "index"}


class VectorBackend(Protocol):
    """What `DenseRetriever` asks of a vector store. Rows are positions in the corpus it was built over."""

    kind: str
    url: str

    def missing(self, corpus: ChunkCorpus) -> list[int]:
        """Rows of `corpus` whose vectors the backend does not hold yet (FAISS: all of them)."""
        ...

    def build(self, corpus: ChunkCorpus, vectors: np.ndarray, rows: Sequence[int] | None = None) -> None:
        """Store `vectors[i]` for row `rows[i]` (all rows in order when None) and search `corpus` from now on."""
        ...

    def attach(self, corpus: ChunkCorpus) -> None:
        """Search `corpus` (whose vectors are all stored) from now on."""
        ...

    def search(self, queries: np.ndarray, k: int, filters: Filters | None = None, *,
               exact_filter_max: int = 0) -> tuple[list[list[float]], list[list[int]]]:
        """Top-`k` (scores, rows) per query among rows matching `filters` (as `ChunkCorpus.filter_mask` reads
        them). `exact_filter_max`: below this many allowed rows, a backend holding the matrix may search exactly."""
        ...

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """The stored vectors of corpus `rows`, one row each."""
        ...

    def prune_stale(self) -> int:
        """Delete stored vectors of rows no longer in the corpus; returns how many went."""
        ...

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path, corpus: ChunkCorpus) -> None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class VectorsURL:
    """A parsed backend URL. `uri` is what pymilvus connects to: a path ending in .db, or http(s)://host:port."""

    kind: str
    uri: str = ""
    collection: str | None = None
    lite: bool = False
    token_env: str | None = None
    index: str | None = None


def parse_url(url: str) -> VectorsURL:
    """Parse a backend URL (forms in the module docstring); a ConfigError lists the accepted forms."""
    if not isinstance(url, str) or not url.strip():
        raise _bad(url, "it is empty")
    url = url.strip()
    if url == DEFAULT:
        return VectorsURL(kind="faiss")
    if not url.startswith("milvus://"):
        raise _bad(url, "it is neither 'faiss' nor a milvus:// URL")
    rest, _, query = url[len("milvus://"):].partition("?")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise _bad(url, f"unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(_OPTIONS))})")
    collection = options.get("collection") or None
    if rest.startswith("/"):  # milvus:///relative.db or milvus:////absolute.db
        path = rest[1:]
        if not path.endswith(".db") or path in (".db", "/.db"):
            raise _bad(url, "a Milvus Lite path must end in .db (e.g. milvus:///vectors.db)")
        return VectorsURL(kind="milvus", uri=path, collection=_checked(collection, url), lite=True,
                          index=options.get("index"))
    host, _, path = rest.partition("/")
    if path:
        if collection and collection != path:
            raise _bad(url, "it names the collection twice")
        collection = path
    name, colon, port = host.rpartition(":") if ":" in host else (host, "", "")
    if not name or (colon and not port.isdigit()):
        raise _bad(url, "give a host and a numeric port, e.g. milvus://localhost:19530")
    scheme = "https" if options.get("secure", "").lower() in ("1", "true", "yes") else "http"
    return VectorsURL(kind="milvus", uri=f"{scheme}://{name}:{port or DEFAULT_PORT}",
                      collection=_checked(collection, url), token_env=options.get("token_env") or None,
                      index=options.get("index"))


def resolve_url(url: str, *, default_collection: str) -> str:
    """`url` with a Milvus Lite path made absolute (from the current folder) and the collection filled in, as a
    knowledge base stores it when it is created; `faiss` stays as it is."""
    parsed = parse_url(url)
    if parsed.kind == "faiss":
        return DEFAULT
    base, _, query = url.strip().partition("?")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if parsed.lite:
        options["collection"] = parsed.collection or default_collection
        base = "milvus:///" + str(Path(parsed.uri).expanduser().resolve())
    else:
        options.pop("collection", None)
        base = f"milvus://{base[len('milvus://'):].partition('/')[0]}/{parsed.collection or default_collection}"
    return f"{base}?{urlencode(options)}" if options else base


def collection_for(directory: str | Path) -> str:
    """The default collection of the knowledge base in `directory`: pilotfish_ and 10 hex digits of its path.

    >>> len(collection_for("kb")), collection_for("kb").startswith("pilotfish_")
    (20, True)
    """
    return "pilotfish_" + hashlib.sha1(str(Path(directory).resolve()).encode()).hexdigest()[:10]


def open_backend(url: str = DEFAULT, *, model: str = "", **faiss_options: Any) -> VectorBackend:
    """The backend for `url`; `model` (the embedding model's name) keys Milvus rows, `faiss_options` go to
    `FaissVectors` (index, device, threads, nprobe, ef_search, store_embeddings). Nothing connects yet.

    >>> open_backend("faiss", index="flat").describe()
    'empty'
    """
    parsed = parse_url(url)
    if parsed.kind == "faiss":
        from pilotfish.retrievers.faiss_vectors import FaissVectors

        return FaissVectors(**faiss_options)
    from pilotfish.retrievers.milvus import MilvusVectors

    return MilvusVectors(url=url, parsed=parsed, model=model, ef_search=faiss_options.get("ef_search"),
                         nprobe=faiss_options.get("nprobe"))


def _checked(collection: str | None, url: str) -> str | None:
    if collection is not None and not _COLLECTION.fullmatch(collection):
        raise _bad(url, f"collection name {collection!r} must be letters, digits and underscores, not starting "
                        "with a digit")
    return collection


def _bad(url: Any, why: str) -> ConfigError:
    return ConfigError(f"bad vectors URL {url!r}: {why}. Accepted forms: " + "; ".join(FORMS))
