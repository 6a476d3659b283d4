"""Reading files into staged batches: documents streamed from a file, chunked a group at a time, embedded a
batch at a time (reusing the current index's vector of any text embedded before) and staged on disk by
`IngestStaging`, so ingest's memory does not grow with the file and a killed ingest resumes after its last
staged batch. `ingest()` (knowledge/ingest.py) drives it and commits the staged files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pilotfish.knowledge.index_build import VectorLookup, add_previous
from pilotfish.knowledge.loaders import iter_documents, suffix_of
from pilotfish.knowledge.staging import IngestStaging
from pilotfish.retrievers.corpus import index_text_of
from pilotfish.types import Chunk, Document

if TYPE_CHECKING:
    import numpy as np

    from pilotfish.retrievers.dense import DenseRetriever

# Documents chunked and embedded together: up to CHUNK_GROUP documents (and no more than a staged batch's
# chunks) or GROUP_CHARS characters, whichever comes first. The embedder sorts a group's chunks by length so
# that each batch pads little: groups of about 90 chunks cost 1.32x the token positions of sorting the whole
# corpus (1.56x counting attention), groups of about 1,000 chunks 1.03x (7,281 pooled benchmark chunks).
CHUNK_GROUP = 1024
GROUP_CHARS = 1_000_000


class Progress(Protocol):
    def stage(self, name: str, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class Target(Protocol):
    """What embedding needs of a knowledge base (`KnowledgeBase` is one)."""

    def new_dense(self, **overrides: Any) -> DenseRetriever: ...

    def current_dense(self) -> DenseRetriever | None: ...


@dataclass
class StreamedFile:
    """A file whose documents are staged on disk (`IngestStaging`), not held in memory."""

    path: Path
    key: str
    content_hash: str
    size: int
    mtime: float


class BatchProcessor(Protocol):
    """Chunks and embeds documents: in this process (`LocalBatches`) or on a cluster (`RayBatches`). `process`
    returns, per document in order, its chunks and their vectors (None without a dense index)."""

    group_size: int  # documents handed to `process` at a time, at most
    group_chars: int  # characters of text handed to `process` at a time, at most (a group holds one document)

    def process(self, docs: list[Document]) -> list[tuple[list[Chunk], np.ndarray | None]]: ...


class LocalBatches:
    """Chunk with the knowledge base's chunker and embed with `BatchEmbedder`, here."""

    group_size = CHUNK_GROUP
    group_chars = GROUP_CHARS

    def __init__(self, chunker: Any, embedder: BatchEmbedder | None) -> None:
        self.chunker, self.embedder = chunker, embedder

    def process(self, docs: list[Document]) -> list[tuple[list[Chunk], np.ndarray | None]]:
        chunked = self.chunker.run_batch(docs)
        if self.embedder is None:
            return [(chunks, None) for chunks in chunked]
        texts = [index_text_of(doc.title, c.text) for doc, chunks in zip(docs, chunked) for c in chunks]
        vectors = self.embedder.embed(texts)
        out, at = [], 0
        for chunks in chunked:
            out.append((chunks, vectors[at:at + len(chunks)]))
            at += len(chunks)
        return out


def stage_file(path: Path, doc_id: str, key: str, content_hash: str, staging: IngestStaging,
               processor: BatchProcessor, progress: Progress, *, collection: str, id_field: str | None,
               text_field: str | None, title_field: str, batch_chunks: int,
               failed: list[tuple[str, str]]) -> tuple[StreamedFile, int]:
    """Read, chunk, embed and stage one file's documents batch by batch, after the records an interrupted run
    staged already; returns the file and how many records were found staged."""
    import numpy as np

    stat = path.stat()
    item = StreamedFile(path, key, content_hash, stat.st_size, stat.st_mtime)
    done = staging.records_done(key, content_hash)
    if staging.is_complete(key, content_hash):
        return item, done
    bad: list[tuple[str, str]] = []  # lines or rows skipped in a file that loads
    batch: list[tuple[Document, list[Chunk]]] = []
    vectors: list[np.ndarray | None] = []
    pending: list[tuple[int, Document]] = []  # (record number, document) not yet chunked
    size = records = last = chars = 0
    group = min(processor.group_size, batch_chunks)  # a killed ingest loses at most about one batch of work

    def stage() -> None:
        nonlocal batch, vectors, size
        matrix = np.concatenate(vectors) if vectors and vectors[0] is not None else None  # type: ignore[arg-type]
        staging.add_batch(key, content_hash, batch, vectors=matrix, records_done=last)
        progress.advance(len(batch))
        batch, vectors, size = [], [], 0

    def process_pending() -> None:
        nonlocal pending, size, last, chars
        results = processor.process([doc for _, doc in pending]) if pending else []
        for (number, doc), (chunks, vecs) in zip(pending, results):
            batch.append((doc, chunks))
            vectors.append(vecs)
            size, last = size + len(chunks), number
            if size >= batch_chunks:
                stage()
        pending, chars = [], 0

    docs = iter_documents(path, doc_id=doc_id, id_field=id_field, text_field=text_field,
                          title_field=title_field, on_bad_record=lambda *b: bad.append(b))
    for doc in docs:
        records += 1
        if records <= done:
            progress.advance()
            continue
        pending.append((records, with_meta(doc, collection, path)))
        chars += len(doc.text)
        if len(pending) >= group or chars >= processor.group_chars:
            process_pending()
    process_pending()
    if batch:
        stage()
    staging.complete(key)
    failed.extend((str(path), f"{where}: {reason}") for where, reason in bad)
    return item, min(done, records)


class CountedProgress:
    """Advances the progress bar record by record, and by what is left of a file's estimate when it ends (or
    fails), so the bar reaches its total whatever the estimate missed."""

    def __init__(self, progress: Progress) -> None:
        self.progress, self.count, self.expected = progress, 0, 0

    def start(self, expected: int) -> None:
        self.count, self.expected = 0, expected

    def advance(self, n: int = 1) -> None:
        self.count += n
        self.progress.advance(n)

    def stage(self, name: str, total: int | None) -> None:
        self.progress.stage(name, total)

    def finish(self) -> None:
        if self.count < self.expected:
            self.progress.advance(self.expected - self.count)


class BatchEmbedder:
    """Embeds a batch's chunk texts with the knowledge base's model, reusing the current generation's vector of
    any text embedded before (a changed file keeps most of its chunks)."""

    def __init__(self, kb: Target) -> None:
        self.kb, self.embedded = kb, 0
        self._dense: DenseRetriever | None = None
        self._lookup: VectorLookup | None = None

    def load(self, progress: Progress) -> None:
        """Load the model (in a progress stage of its own) and index the current generation's vectors."""
        self._dense = self.kb.new_dense()
        progress.stage(f"Loading embedding model {self._dense.embedder.model}", None)
        _ = self._dense.embedder.dimension  # the model loads lazily: load it now
        self._lookup = add_previous(VectorLookup(), self.kb, self._dense.embedder.model)

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        if self._dense is None or self._lookup is None:
            raise RuntimeError("call load() before embed()")
        dimension = self._lookup.dimension or self._dense.embedder.dimension
        out = np.zeros((len(texts), dimension), dtype=np.float32)
        todo = self._lookup.fill(texts, out)
        if todo:
            out[todo] = self._dense.embedder.encode_documents([texts[i] for i in todo])
            self.embedded += len(todo)
        return out


def with_meta(doc: Document, collection: str, path: Path) -> Document:
    meta = dict(doc.metadata)
    meta["collection"] = collection
    meta.setdefault("file_type", suffix_of(path).lstrip(".").removesuffix(".gz"))
    return Document(doc_id=doc.doc_id, text=doc.text, title=doc.title, source=doc.source, metadata=meta)
