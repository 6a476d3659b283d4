"""ChunkCorpus: the rows an index was built over (ids, text, metadata), saved as plain JSONL.

Retrievers answer with row numbers; the corpus turns them into `Passage`s and evaluates metadata
filters into row masks, so every retriever filters the same way.

>>> from pilotfish.types import Chunk
>>> corpus = ChunkCorpus.from_chunks([Chunk(chunk_id="a::0", doc_id="a", text="hi", metadata={"lang": "en"})])
>>> corpus.filter_mask({"lang": "en"}).tolist()
[True]
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotfish.errors import IndexStateError, QueryError
from pilotfish.jsonl import read_jsonl
from pilotfish.types import Chunk, Passage

if TYPE_CHECKING:
    import numpy as np

CORPUS_FILE = "corpus.jsonl"
# Fields of a row that a filter can name besides the metadata keys.
TOP_LEVEL_FIELDS = ("doc_id", "chunk_id", "source", "title")

Filters = Mapping[str, Any]


@dataclass(frozen=True)
class CorpusRow:
    chunk_id: str
    doc_id: str
    text: str
    title: str = ""
    source: str = ""
    metadata: dict[str, Any] | None = None


class ChunkCorpus:
    """An ordered, immutable list of rows with their metadata."""

    def __init__(self, rows: Sequence[CorpusRow]) -> None:
        self.rows: list[CorpusRow] = list(rows)
        self._row_of_chunk: dict[str, int] | None = None

    @classmethod
    def from_chunks(cls, chunks: Iterable[Chunk], *, titles: Mapping[str, str] | None = None,
                    sources: Mapping[str, str] | None = None) -> ChunkCorpus:
        titles = titles or {}
        sources = sources or {}
        return cls([
            CorpusRow(chunk_id=c.chunk_id, doc_id=c.doc_id, text=c.text, title=titles.get(c.doc_id, ""),
                      source=sources.get(c.doc_id, ""), metadata=dict(c.metadata))
            for c in chunks
        ])

    @classmethod
    def from_texts(cls, texts: Sequence[str], *, ids: Sequence[str] | None = None,
                   metadatas: Sequence[Mapping[str, Any]] | None = None) -> ChunkCorpus:
        """Build a corpus from plain strings; each text is its own document."""
        ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
        if len(ids) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(ids)} ids")
        metas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        return cls([CorpusRow(chunk_id=i, doc_id=i, text=t, metadata=dict(m)) for i, t, m in zip(ids, texts, metas)])

    def __len__(self) -> int:
        return len(self.rows)

    def index_text(self, row: int) -> str:
        """The text that gets indexed: the title (when any) and the chunk text."""
        r = self.rows[row]
        return index_text_of(r.title, r.text)

    def index_texts(self) -> list[str]:
        return [self.index_text(i) for i in range(len(self.rows))]

    def row_of(self, chunk_id: str) -> int:
        if self._row_of_chunk is None:
            self._row_of_chunk = {r.chunk_id: i for i, r in enumerate(self.rows)}
        return self._row_of_chunk[chunk_id]

    def passage(self, row: int, score: float, retriever: str = "") -> Passage:
        """The Passage for `row`; `score` must be a Python float (call `.tolist()` on numpy arrays)."""
        r = self.rows[row]
        # The metadata dict is shared with the corpus row (not copied): treat it as read-only.
        return Passage(r.chunk_id, r.doc_id, r.text, score, r.source, r.title, r.metadata or {}, retriever)

    def filter_mask(self, filters: Filters | None) -> np.ndarray | None:
        """Boolean mask of the rows matching every filter (None when there is no filter).

        A filter maps a key to a value or a list of accepted values; values compare as strings, and a
        list-valued metadata field matches when any element does.
        """
        import numpy as np

        if not filters:
            return None
        wanted = {k: {str(v) for v in (val if isinstance(val, (list, tuple, set)) else [val])}
                  for k, val in filters.items()}
        for key in wanted:
            if not isinstance(key, str) or not key:
                raise QueryError(f"bad filter key {key!r}: use key=value with a non-empty key")
        mask = np.ones(len(self.rows), dtype=bool)
        for i, r in enumerate(self.rows):
            for key, accepted in wanted.items():
                value = getattr(r, key) if key in TOP_LEVEL_FIELDS else (r.metadata or {}).get(key)
                values = value if isinstance(value, list) else [value]
                if not any(v is not None and str(v) in accepted for v in values):
                    mask[i] = False
                    break
        return mask

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / CORPUS_FILE, (  # streamed: no second copy of the corpus as one string
            json.dumps({"chunk_id": r.chunk_id, "doc_id": r.doc_id, "title": r.title, "source": r.source,
                        "metadata": r.metadata or {}, "text": r.text}, ensure_ascii=False) + "\n"
            for r in self.rows))

    @classmethod
    def load(cls, directory: Path) -> ChunkCorpus:
        path = directory / CORPUS_FILE
        rows = []
        for n, d in read_jsonl(path, error=IndexStateError):
            try:
                rows.append(CorpusRow(chunk_id=d["chunk_id"], doc_id=d["doc_id"], text=d["text"],
                                      title=d.get("title", ""), source=d.get("source", ""),
                                      metadata=d.get("metadata") or {}))
            except (KeyError, TypeError, AttributeError) as err:
                raise IndexStateError(f"{path} line {n}: not a corpus row (needs chunk_id, doc_id and text); "
                                      "the index is damaged: rebuild it") from err
        return cls(rows)


def index_text_of(title: str, text: str) -> str:
    """The text a chunk is indexed and embedded as: its title (when the chunk does not start with it) and text.

    >>> index_text_of("Sharks", "Pilot fish swim ahead.")
    'Sharks\\nPilot fish swim ahead.'
    """
    return f"{title}\n{text}" if title and not text.startswith(title) else text


def write_atomic(path: Path, text: str | Iterable[str]) -> None:
    """Write a text file (a string, or pieces written one after another) through a temp file and a rename, so
    readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if isinstance(text, str):
                fh.write(text)
            else:
                fh.writelines(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; index files are as readable as the database
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parse_filters(items: Sequence[str]) -> dict[str, list[str]]:
    """Parse CLI `key=value` strings; repeated keys accept any of their values."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise QueryError(f"bad filter {item!r}: write it as key=value, e.g. --filter collection=papers")
        out.setdefault(key.strip(), []).append(value.strip())
    return out
