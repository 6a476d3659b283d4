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
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pilotfish.errors import IngestError, KnowledgeBaseError, TableError
from pilotfish.knowledge.loaders import SUPPORTED_SUFFIXES, load_documents, suffix_of
from pilotfish.knowledge.store import ChunkRow, DocumentRow, KnowledgeStore, SourceRow
from pilotfish.knowledge.tables import (
    TABLE_SUFFIXES,
    TableFile,
    describe_registered,
    load_table_file,
    redact,
    reserved_names,
    save_tables,
)
from pilotfish.retrievers.corpus import ChunkCorpus, CorpusRow
from pilotfish.types import Chunk, Document

if TYPE_CHECKING:
    import numpy as np

    from pilotfish.retrievers.bm25 import BM25Retriever
    from pilotfish.retrievers.dense import DenseRetriever

logger = logging.getLogger(__name__)


class IngestTarget(Protocol):
    """What ingest needs of a knowledge base (`KnowledgeBase` is one): its store, settings, chunker and
    index generations. Ingest depends on this, not on `KnowledgeBase`, so the two do not import each other."""

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
           databases: Sequence[str] = (), progress: Progress | None = None) -> IngestReport:
    """Ingest files and folders into `kb`; see the module docstring for the guarantees. Table files (CSV, TSV,
    XLSX, Parquet) become SQL tables with searchable cards, unless `text_field` asks for a document per CSV
    row; `databases` (SQLAlchemy URLs) are registered: their tables are described, not copied."""
    started = time.perf_counter()
    progress = progress or _Silent()
    if not collection or not collection.strip():
        raise IngestError("empty collection name: give --collection a name such as 'papers'")
    files, failed = scan(paths)
    known = kb.store.sources()
    with kb.store.reading() as session:
        taken = kb.store.table_names(session)
    reserved = reserved_names(kb.store, taken)
    notes: list[tuple[str, str]] = []
    chunker = _open_chunker(kb, progress)

    progress.stage("Reading and chunking files", len(files))
    loaded: list[_Loaded] = []
    skipped = new = changed = 0
    seen: set[str] = set()
    for path, root in files:
        key = str(path.resolve())
        progress.advance()
        if key in seen:
            continue
        seen.add(key)
        try:
            content_hash = hash_file(path)
            old = known.get(key)
            if old is not None and old.content_hash == content_hash and old.collection == collection:
                skipped += 1
                continue
            bad_records: list[tuple[str, str]] = []  # lines or rows skipped in a file that loads
            tables = None
            if suffix_of(path) in TABLE_SUFFIXES and text_field is None:
                tables = load_table_file(path, key=key, taken=taken, reserved=reserved)
                docs = tables.documents(_doc_id_for(path, root))
                notes.extend((str(path), note) for note in tables.notes)
            else:
                docs = load_documents(path, doc_id=_doc_id_for(path, root), id_field=id_field, text_field=text_field,
                                      title_field=title_field,
                                      on_bad_record=lambda *bad, to=bad_records: to.append(bad))
            docs = [_with_meta(d, collection, path) for d in docs]
            chunks = chunker.run_batch(docs)
            stat = path.stat()
            loaded.append(_Loaded(path, key, content_hash, stat.st_size, stat.st_mtime, docs, chunks, tables))
            failed.extend((str(path), f"{where}: {reason}") for where, reason in bad_records)
            new, changed = (new, changed + 1) if old is not None else (new + 1, changed)
        except (IngestError, OSError, UnicodeError) as err:
            reason = str(err).removeprefix(f"{path}: ")
            failed.append((str(path), reason))
            logger.info("skipped %s: %s", path, err)
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
        docs = [_with_meta(d, collection, Path("database")) for d in tables.documents(redact(url))]
        loaded.append(_Loaded(Path(url), url, digest, 0, 0.0, docs, chunker.run_batch(docs), tables))
        new, changed = (new, changed + 1) if old is not None else (new + 1, changed)
    gone = [p for p in known if prune and p not in seen and "://" not in p and not Path(p).exists()]

    if not loaded and not gone and kb.index_generation() > 0:
        counts = kb.store.counts()
        return IngestReport(files_skipped=skipped, failed=failed, seconds=time.perf_counter() - started,
                            total_documents=counts["documents"], total_chunks=counts["chunks"], notes=notes,
                            total_tables=counts["tables"])

    store = kb.store
    n_docs = n_chunks = written = n_tables = 0
    progress.stage("Saving to database", None)
    with store.transaction() as session:
        for path in gone:
            store.delete_source(session, path)
        for item in loaded:
            # Check ids before touching the file's old rows, so a clash keeps the old version.
            clash = {d: p for d, p in store.taken_doc_ids(session, [d.doc_id for d in item.documents]).items()
                     if p != item.key}
            if clash:
                doc_id, other = next(iter(clash.items()))
                failed.append((str(item.path), f"document id {doc_id!r} already belongs to {other}; "
                                               "use --id-field to pick another id field, or remove the other file"))
                new, changed = (new, changed - 1) if item.key in known else (new - 1, changed)
                continue
            written += 1
            store.delete_source(session, item.key)
            session.flush()
            source = SourceRow(path=item.key, collection=collection, content_hash=item.content_hash, size=item.size,
                               mtime=item.mtime, ingested_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
            for doc, chunks in zip(item.documents, item.chunks):
                row = DocumentRow(doc_id=doc.doc_id, collection=collection, title=doc.title, text=doc.text,
                                  meta=doc.metadata)
                row.chunks = [ChunkRow(chunk_id=c.chunk_id, ord=c.index, text=c.text, start_char=c.start_char,
                                       end_char=c.end_char, n_tokens=c.n_tokens) for c in chunks]
                source.documents.append(row)
                n_docs += 1
                n_chunks += len(chunks)
            session.add(source)
            session.flush()
            if item.tables is not None:
                save_tables(session, source, item.tables)
                n_tables += len(item.tables.tables)
                session.flush()
        current = kb.index_generation(session=session)
        if not written and not gone and current > 0:  # every file was refused: the indexes stay as they are
            counts = store.counts()
            return IngestReport(files_skipped=skipped, failed=failed, seconds=time.perf_counter() - started,
                                total_documents=counts["documents"], total_chunks=counts["chunks"], notes=notes,
                                total_tables=counts["tables"])
        corpus = _corpus_from(store, session)
        generation = current + 1
        embedded = _build_indexes(kb, corpus, generation, progress)
        store.set_meta(session, "index_generation", generation)
    kb.cleanup_generations(keep=generation)
    kb.reload()
    counts = store.counts()
    return IngestReport(files_new=new, files_changed=changed, files_skipped=skipped, files_pruned=len(gone),
                        documents=n_docs, chunks=n_chunks, embedded=embedded, failed=failed,
                        seconds=time.perf_counter() - started, total_documents=counts["documents"],
                        total_chunks=counts["chunks"], tables=n_tables, notes=notes, total_tables=counts["tables"])


def _open_chunker(kb: IngestTarget, progress: Progress) -> Any:
    """The knowledge base's chunker, its tokenizer (a model's, unless "words") loaded in a stage of its own."""
    tokenizer = kb.settings.get("tokenizer", "words")
    if tokenizer == "words":
        return kb.chunker()
    progress.stage(f"Loading tokenizer {tokenizer}", None)
    chunker = kb.chunker()
    chunker.run(Document(doc_id="tokenizer-warm-up", text="The tokenizer loads on first use."))
    return chunker


def _with_meta(doc: Document, collection: str, path: Path) -> Document:
    meta = dict(doc.metadata)
    meta["collection"] = collection
    meta.setdefault("file_type", suffix_of(path).lstrip(".").removesuffix(".gz"))
    return Document(doc_id=doc.doc_id, text=doc.text, title=doc.title, source=doc.source, metadata=meta)


def _corpus_from(store: KnowledgeStore, session: object) -> ChunkCorpus:
    rows = [CorpusRow(chunk_id=r.chunk_id, doc_id=r.doc_id, text=r.text, title=r.title, source=r.path,
                      metadata=dict(r.meta or {}))
            for r in store.iter_chunks(session)]  # type: ignore[arg-type]
    return ChunkCorpus(rows)


def _build_indexes(kb: IngestTarget, corpus: ChunkCorpus, generation: int, progress: Progress, *,
                   model: str | None = None) -> int:
    """Write generation `generation` of the indexes; returns how many chunks were newly embedded. With `model`
    (`kb reembed`), every chunk is embedded again with that model instead of the knowledge base's own."""
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
    if model is None:
        vectors, todo = _reuse_embeddings(kb, corpus, dense.embedder.model)
    else:  # the same folder may hold new weights (retrained in place): nothing is reused
        vectors, todo = [None] * len(corpus), list(range(len(corpus)))  # type: ignore[list-item]
    if todo:
        progress.stage(f"Loading embedding model {dense.embedder.model}", None)
        _ = dense.embedder.dimension  # the model loads lazily: load it now, in its own stage
    progress.stage("Embedding chunks", len(todo))
    if todo:
        texts = [corpus.index_text(i) for i in todo]
        fresh = dense.embedder.encode_documents(texts, progress=progress.advance)
        for row, vec in zip(todo, fresh):
            vectors[row] = vec
    if len(corpus):
        import numpy as np

        matrix = np.stack(vectors) if vectors else np.zeros((0, 0), dtype="float32")
        progress.stage("Building vector index", None)
        dense.index(corpus, embeddings=matrix)
        dense.save(target / "dense", include_corpus=False)
    return len(todo)


def _reuse_embeddings(kb: IngestTarget, corpus: ChunkCorpus, model: str) -> tuple[list[np.ndarray], list[int]]:
    """Vectors of unchanged chunk texts from the current generation, and the rows still to embed. Vectors of
    another model than `model` are never reused: one index holds one model's vectors."""
    previous = kb.current_dense()
    by_text: dict[str, np.ndarray] = {}
    if previous is not None and previous.embeddings is not None and previous.corpus is not None \
            and previous.embedder.model == model:
        for i in range(len(previous.corpus)):
            by_text[hashlib.sha256(previous.corpus.index_text(i).encode()).hexdigest()] = previous.embeddings[i]
    vectors: list[np.ndarray] = []
    todo: list[int] = []
    for i in range(len(corpus)):
        vec = by_text.get(hashlib.sha256(corpus.index_text(i).encode()).hexdigest())
        vectors.append(vec)  # type: ignore[arg-type]
        if vec is None:
            todo.append(i)
    return vectors, todo


def check_writable(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise KnowledgeBaseError(f"{directory} exists and is not a folder; choose another --kb path")
