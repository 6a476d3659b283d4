"""ingest(): files -> documents -> chunks -> SQL + a new generation of BM25 and dense indexes.

Incremental by content hash (unchanged files are skipped, changed ones replaced, `prune` drops files
that are gone) and crash-safe: the new rows and the pointer to the new index generation commit in one
SQL transaction, and index files are written to a fresh folder before it, so a crash at any point
leaves the previous knowledge base intact.

>>> import pathlib, tempfile
>>> from pilotfish.knowledge.base import KnowledgeBase
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "docs").mkdir()
>>> _ = (root / "docs" / "note.txt").write_text("Pilot fish swim ahead of sharks.")
>>> _ = (root / "docs" / "photo.jpg").write_bytes(b"not text")
>>> kb = KnowledgeBase.open(root / "kb", create=True, settings={"dense": False})   # BM25 only: no model
>>> report = ingest(kb, [root / "docs"])                            # a folder's other file types are passed over
>>> report.files_new, report.chunks, report.failed
(1, 1, [])
>>> ingest(kb, [root / "docs"]).files_skipped                      # unchanged files are not read again
1
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import insert

from pilotfish.errors import IngestError, KnowledgeBaseError, TableError
from pilotfish.knowledge.index_build import build_indexes as _build_indexes
from pilotfish.knowledge.index_build import corpus_from as _corpus_from
from pilotfish.knowledge.loaders import SUPPORTED_SUFFIXES, suffix_of
from pilotfish.knowledge.records import RECORD_SUFFIXES, count_records
from pilotfish.knowledge.staging import IngestStaging
from pilotfish.knowledge.store import ChunkRow, DocumentRow, KnowledgeStore, SourceRow
from pilotfish.knowledge.streaming import (
    BatchEmbedder,
    BatchProcessor,
    CountedProgress,
    LocalBatches,
    StreamedFile,
    stage_file,
    with_meta,
)
from pilotfish.knowledge.tables import (
    TABLE_SUFFIXES,
    TableFile,
    describe_registered,
    load_table_file,
    redact,
    reserved_names,
    save_tables,
)
from pilotfish.types import Chunk, Document

if TYPE_CHECKING:

    from pilotfish.retrievers.bm25 import BM25Retriever
    from pilotfish.retrievers.dense import DenseRetriever

logger = logging.getLogger(__name__)

BATCH_CHUNKS = 1024  # chunks embedded and staged together: a killed ingest loses at most one batch of work
FLUSH_EVERY = 1000  # documents written to SQL between flushes


class IngestTarget(Protocol):
    """What ingest needs of a knowledge base (`KnowledgeBase` is one): its store, settings, chunker and
    index generations. Ingest depends on this, not on `KnowledgeBase`, so the two do not import each other."""

    directory: Path
    store: KnowledgeStore
    settings: dict[str, Any]

    def chunker(self) -> Any: ...

    def index_generation(self, *, session: Any = None) -> int: ...

    def generation_dir(self, generation: int) -> Path: ...

    def cleanup_generations(self, keep: int) -> None: ...

    def new_bm25(self) -> BM25Retriever: ...

    def new_dense(self, **overrides: Any) -> DenseRetriever: ...

    def current_dense(self) -> DenseRetriever | None: ...

    def reload(self) -> None: ...


class Progress(Protocol):
    """What ingest reports while it works; the CLI draws it with rich."""

    def stage(self, name: str, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class _Silent:
    def stage(self, name: str, total: int | None) -> None:
        logger.info("ingest: %s (%s)", name, total)

    def advance(self, n: int = 1) -> None:
        pass


@dataclass(frozen=True)
class IngestReport:
    files_new: int = 0
    files_changed: int = 0
    files_skipped: int = 0
    files_pruned: int = 0
    documents: int = 0
    chunks: int = 0
    embedded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    total_documents: int = 0
    total_chunks: int = 0
    tables: int = 0  # tables written or registered by this ingest
    notes: list[tuple[str, str]] = field(default_factory=list)  # (file, what was fixed or skipped on the way)
    total_tables: int = 0
    triples: int = 0  # knowledge-graph triples written by this ingest (`--kind triples`)
    total_triples: int = 0
    total_entities: int = 0
    resumed_batches: int = 0  # batches an interrupted ingest had staged, taken up instead of redone
    resumed_records: int = 0  # records of those batches


@dataclass
class _Loaded:
    path: Path
    key: str
    content_hash: str
    size: int
    mtime: float
    documents: list[Document]
    chunks: list[list[Chunk]]
    tables: TableFile | None = None


INGESTED_SUFFIXES = tuple(dict.fromkeys(SUPPORTED_SUFFIXES + TABLE_SUFFIXES))


def scan(paths: Sequence[str | Path]) -> tuple[list[tuple[Path, Path | None]], list[tuple[str, str]]]:
    """Expand folders into (file, folder) pairs and files into (file, None); explicit files of an
    unknown type are failures."""
    found: list[tuple[Path, Path | None]] = []
    failed: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                rel = f.relative_to(path).parts
                if f.is_file() and not any(p.startswith(".") for p in rel) and suffix_of(f) in INGESTED_SUFFIXES:
                    found.append((f, path))
        elif path.is_file():
            if suffix_of(path) in INGESTED_SUFFIXES:
                found.append((path, None))
            else:
                failed.append((str(path), f"unsupported file type {suffix_of(path) or '(none)'!r}; "
                                          f"supported: {', '.join(INGESTED_SUFFIXES)}"))
        else:
            failed.append((str(path), "no such file or folder"))
    return found, failed


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _doc_id_for(path: Path, root: Path | None) -> str:
    """Id of a file's document: its path from the ingested folder's parent ('docs/guide/intro.md'),
    or its name when the file was named directly."""
    if root is None:
        return path.name
    return path.resolve().relative_to(root.resolve().parent).as_posix()


def ingest(kb: IngestTarget, paths: Sequence[str | Path], *, collection: str = "default", prune: bool = False,
           id_field: str | None = None, text_field: str | None = None, title_field: str = "title",
           databases: Sequence[str] = (), progress: Progress | None = None,
           batch_chunks: int = BATCH_CHUNKS, ray: str | None = None, ray_workers: int | None = None) -> IngestReport:
    """Ingest files and folders into `kb`; see the module docstring for the guarantees. Table files (CSV, TSV,
    XLSX, Parquet) become SQL tables with searchable cards, unless `text_field` asks for a document per CSV
    row; `databases` (SQLAlchemy URLs) are registered: their tables are described, not copied. Documents are
    read, chunked and embedded in batches of about `batch_chunks` chunks, each staged on disk, so memory does
    not grow with the corpus and a killed ingest resumes from its last staged batch. `ray` ("auto" or a cluster's
    address) chunks and embeds on Ray workers (`ray_workers` of them; knowledge/ray_batches.py)."""
    started = time.perf_counter()
    progress = progress or _Silent()
    if not collection or not collection.strip():
        raise IngestError("empty collection name: give --collection a name such as 'papers'")
    if batch_chunks < 1:
        raise IngestError(f"batch size must be at least 1 chunk, got {batch_chunks}")
    files, failed = scan(paths)
    known = kb.store.sources()
    with kb.store.reading() as session:
        taken = kb.store.table_names(session)
    reserved = reserved_names(kb.store, taken)
    notes: list[tuple[str, str]] = []
    chunker = _open_chunker(kb, progress)
    staging = IngestStaging(kb.directory / "indexes" / "staging",
                            fingerprint={"settings": kb.settings, "collection": collection, "id_field": id_field,
                                         "text_field": text_field, "title_field": title_field})
    resumed_batches, _ = staging.resumed()

    todo: list[tuple[Path, Path | None, str, str, SourceRow | None]] = []
    skipped = new = changed = 0
    seen: set[str] = set()
    for path, root in files:
        key = str(path.resolve())
        if key in seen:
            continue
        seen.add(key)
        try:
            content_hash = hash_file(path)
        except OSError as err:
            failed.append((str(path), f"cannot read file: {err.strerror or err}"))
            continue
        old = known.get(key)
        if old is not None and old.content_hash == content_hash and old.collection == collection:
            skipped += 1
            continue
        todo.append((path, root, key, content_hash, old))

    embedder = BatchEmbedder(kb) if kb.settings["dense"] else None
    if embedder is not None and todo:
        embedder.load(progress)
    processor: BatchProcessor = LocalBatches(chunker, embedder)
    if ray is not None:  # chunk and embed on Ray workers (pilotfish[ray]); reading and staging stay here
        from pilotfish.knowledge.ray_batches import RayBatches

        processor = RayBatches.for_kb(kb, embedder, address=ray, workers=ray_workers)
    estimates = [count_records(p) if suffix_of(p) in RECORD_SUFFIXES else 1 for p, *_ in todo]
    counted = CountedProgress(progress)
    progress.stage("Reading, chunking and embedding records" if embedder is not None else
                   "Reading and chunking records", sum(estimates))
    loaded: list[_Loaded] = []  # tables and registered databases: small, held in memory
    streamed: list[StreamedFile] = []  # documents: staged on disk, batch by batch
    resumed_records = 0
    for (path, root, key, content_hash, old), estimate in zip(todo, estimates):
        counted.start(estimate)
        try:
            if suffix_of(path) in TABLE_SUFFIXES and text_field is None:
                tables = load_table_file(path, key=key, taken=taken, reserved=reserved)
                docs = [with_meta(d, collection, path) for d in tables.documents(_doc_id_for(path, root))]
                notes.extend((str(path), note) for note in tables.notes)
                stat = path.stat()
                loaded.append(_Loaded(path, key, content_hash, stat.st_size, stat.st_mtime, docs,
                                      chunker.run_batch(docs), tables))
            else:
                item, resumed = stage_file(path, _doc_id_for(path, root), key, content_hash, staging,
                                           processor, counted, collection=collection,
                                           id_field=id_field,
                                           text_field=text_field, title_field=title_field,
                                           batch_chunks=batch_chunks, failed=failed)
                streamed.append(item)
                resumed_records += resumed
            new, changed = (new, changed + 1) if old is not None else (new + 1, changed)
        except (IngestError, OSError, UnicodeError) as err:
            staging.discard(key)
            reason = str(err).removeprefix(f"{path}: ")
            failed.append((str(path), reason))
            logger.info("skipped %s: %s", path, err)
        counted.finish()
    for url in databases:
        progress.stage(f"Describing {redact(url)}", None)
        try:
            tables, digest = describe_registered(url, taken=taken, reserved=reserved)
        except (IngestError, TableError) as err:
            failed.append((redact(url), str(err)))
            continue
        seen.add(url)
        old = known.get(url)
        notes.extend((redact(url), note) for note in tables.notes)
        if old is not None and old.content_hash == digest and old.collection == collection:
            skipped += 1
            continue
        docs = [with_meta(d, collection, Path("database")) for d in tables.documents(redact(url))]
        loaded.append(_Loaded(Path(url), url, digest, 0, 0.0, docs, chunker.run_batch(docs), tables))
        new, changed = (new, changed + 1) if old is not None else (new + 1, changed)
    gone = [p for p in known if prune and p not in seen and "://" not in p and not Path(p).exists()]

    if not loaded and not streamed and not gone and kb.index_generation() > 0:
        staging.clear()
        return _unchanged(kb, skipped, failed, notes, started)

    store = kb.store
    n_docs = n_chunks = written = n_tables = 0
    progress.stage("Saving to database", None)
    with store.transaction() as session:
        for path in gone:
            store.delete_source(session, path)
        for item in loaded:
            if not _unclaimed(store, session, item.key, item.path, [d.doc_id for d in item.documents], failed):
                new, changed = (new, changed - 1) if item.key in known else (new - 1, changed)
                continue
            written += 1
            source = _replace_source(store, session, item.key, item.content_hash, item.size, item.mtime, collection)
            _write_documents(session, list(zip(item.documents, item.chunks)), collection, source.id)
            n_docs += len(item.documents)
            n_chunks += sum(len(c) for c in item.chunks)
            if item.tables is not None:
                save_tables(session, source, item.tables)
                n_tables += len(item.tables.tables)
                session.flush()
        for part in streamed:
            ids = (doc.doc_id for doc, _ in staging.documents(part.key))
            if not _unclaimed(store, session, part.key, part.path, ids, failed):
                new, changed = (new, changed - 1) if part.key in known else (new - 1, changed)
                continue
            written += 1
            source_id = _replace_source(store, session, part.key, part.content_hash, part.size, part.mtime,
                                        collection).id
            block: list[tuple[Document, list[Chunk]]] = []
            for doc, chunks in staging.documents(part.key):
                block.append((doc, chunks))
                n_docs += 1
                n_chunks += len(chunks)
                if len(block) == FLUSH_EVERY:  # memory stays one block deep
                    _write_documents(session, block, collection, source_id)
                    block = []
            _write_documents(session, block, collection, source_id)
        current = kb.index_generation(session=session)
        if not written and not gone and current > 0:  # every file was refused: the indexes stay as they are
            staging.clear()
            return _unchanged(kb, skipped, failed, notes, started)
        corpus = _corpus_from(store, session)
        generation = current + 1
        embedded = _build_indexes(kb, corpus, generation, progress, staging=staging)
        embedded += embedder.embedded if embedder is not None else 0
        store.set_meta(session, "index_generation", generation)
    staging.clear()
    kb.cleanup_generations(keep=generation)
    kb.reload()
    counts = store.counts()
    return IngestReport(files_new=new, files_changed=changed, files_skipped=skipped, files_pruned=len(gone),
                        documents=n_docs, chunks=n_chunks, embedded=embedded, failed=failed,
                        seconds=time.perf_counter() - started, total_documents=counts["documents"],
                        total_chunks=counts["chunks"], tables=n_tables, notes=notes, total_tables=counts["tables"],
                        resumed_batches=resumed_batches, resumed_records=resumed_records)


def _unclaimed(store: KnowledgeStore, session: Any, key: str, path: Path, doc_ids: Iterable[str],
               failed: list[tuple[str, str]]) -> bool:
    """Whether none of `doc_ids` (streamed, checked 500 at a time) belongs to another file; checked before
    touching the file's old rows, so a clash keeps the old version. A clash is reported in `failed`."""
    def free(block: list[str]) -> bool:
        clash = {d: p for d, p in store.taken_doc_ids(session, block).items() if p != key}
        if clash:
            doc_id, other = next(iter(clash.items()))
            failed.append((str(path), f"document id {doc_id!r} already belongs to {other}; "
                                      "use --id-field to pick another id field, or remove the other file"))
        return not clash

    block: list[str] = []
    for doc_id in doc_ids:
        block.append(doc_id)
        if len(block) == 500:
            if not free(block):
                return False
            block = []
    return free(block) if block else True


def _replace_source(store: KnowledgeStore, session: Any, key: str, content_hash: str, size: int, mtime: float,
                    collection: str) -> SourceRow:
    store.delete_source(session, key)
    session.flush()
    source = SourceRow(path=key, collection=collection, content_hash=content_hash, size=size, mtime=mtime,
                       ingested_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
    session.add(source)
    session.flush()
    return source


def _write_documents(session: Any, items: Sequence[tuple[Document, Sequence[Chunk]]], collection: str,
                     source_id: int) -> None:
    """Insert documents and their chunks with two bulk statements (the ORM's unit of work costs several times
    more per row, and keeps every object it wrote)."""
    if not items:
        return
    ids = session.scalars(
        insert(DocumentRow).returning(DocumentRow.id, sort_by_parameter_order=True),
        [{"doc_id": doc.doc_id, "collection": collection, "title": doc.title, "text": doc.text,
          "meta": doc.metadata, "source_id": source_id} for doc, _ in items]).all()
    rows = [{"chunk_id": c.chunk_id, "document_id": document_id, "ord": c.index, "text": c.text,
             "start_char": c.start_char, "end_char": c.end_char, "n_tokens": c.n_tokens}
            for document_id, (_, chunks) in zip(ids, items) for c in chunks]
    if rows:
        session.execute(insert(ChunkRow), rows)


def _unchanged(kb: IngestTarget, skipped: int, failed: list[tuple[str, str]], notes: list[tuple[str, str]],
               started: float) -> IngestReport:
    counts = kb.store.counts()
    return IngestReport(files_skipped=skipped, failed=failed, seconds=time.perf_counter() - started,
                        total_documents=counts["documents"], total_chunks=counts["chunks"], notes=notes,
                        total_tables=counts["tables"])


def _open_chunker(kb: IngestTarget, progress: Progress) -> Any:
    """The knowledge base's chunker, its tokenizer (a model's, unless "words") loaded in a stage of its own."""
    tokenizer = kb.settings.get("tokenizer", "words")
    if tokenizer == "words":
        return kb.chunker()
    progress.stage(f"Loading tokenizer {tokenizer}", None)
    chunker = kb.chunker()
    chunker.run(Document(doc_id="tokenizer-warm-up", text="The tokenizer loads on first use."))
    return chunker


def check_writable(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise KnowledgeBaseError(f"{directory} exists and is not a folder; choose another --kb path")
