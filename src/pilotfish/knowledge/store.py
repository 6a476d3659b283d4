"""KnowledgeStore: sources, documents, chunks and settings in SQL through SQLAlchemy 2.

SQLite in the knowledge-base folder by default; any SQLAlchemy URL (e.g. postgresql://) works with
the same code. Writes happen inside one transaction per ingest, so a crash leaves the previous state.

>>> store = KnowledgeStore("sqlite://")          # in-memory
>>> store.create()
>>> store.get_meta("index_generation", 0)
0
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from pilotfish.errors import KnowledgeBaseError


class Base(DeclarativeBase):
    pass


class SourceRow(Base):
    """One ingested file."""

    __tablename__ = "sources"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(2048), unique=True, index=True)
    collection: Mapped[str] = mapped_column(String(200), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    mtime: Mapped[float] = mapped_column(Float)
    ingested_at: Mapped[dt.datetime] = mapped_column(DateTime)
    documents: Mapped[list[DocumentRow]] = relationship(back_populates="source", cascade="all, delete-orphan",
                                                        passive_deletes=True)
    tables: Mapped[list[TableRow]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class DocumentRow(Base):
    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(1024), unique=True, index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    collection: Mapped[str] = mapped_column(String(200), index=True)
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    source: Mapped[SourceRow] = relationship(back_populates="documents")
    chunks: Mapped[list[ChunkRow]] = relationship(back_populates="document", cascade="all, delete-orphan",
                                                  passive_deletes=True, order_by="ChunkRow.ord")


class ChunkRow(Base):
    __tablename__ = "chunks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chunk_id: Mapped[str] = mapped_column(String(1100), unique=True, index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    ord: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    start_char: Mapped[int] = mapped_column(Integer)
    end_char: Mapped[int] = mapped_column(Integer)
    n_tokens: Mapped[int] = mapped_column(Integer)
    document: Mapped[DocumentRow] = relationship(back_populates="chunks")


class TableRow(Base):
    """A table the knowledge base can answer from: one ingested into its own database (`database` None),
    or one of a database registered with `ingest --database URL`. `card` is its `TableCard` as a dict."""

    __tablename__ = "kb_tables"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    database: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    card: Mapped[dict[str, Any]] = mapped_column(JSON)


class EntityRow(Base):
    """An entity of the knowledge graph, by name (ingested with `ingest --kind triples`)."""

    __tablename__ = "kg_entities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(1024), unique=True, index=True)


class RelationRow(Base):
    __tablename__ = "kg_relations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512), unique=True, index=True)


class TripleRow(Base):
    """subject -relation-> object, from one source file; indexed both ways for expansion."""

    __tablename__ = "kg_triples"
    __table_args__ = (Index("ix_kg_triples_subject", "subject_id", "relation_id"),
                      Index("ix_kg_triples_object", "object_id", "relation_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("kg_entities.id"))
    relation_id: Mapped[int] = mapped_column(ForeignKey("kg_relations.id"))
    object_id: Mapped[int] = mapped_column(ForeignKey("kg_entities.id"))


class AliasRow(Base):
    """Another name of an entity (an `alias`, `rdfs:label` or `skos:altLabel` line of a triples file)."""

    __tablename__ = "kg_aliases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("kg_entities.id"), index=True)
    alias: Mapped[str] = mapped_column(String(1024))


class MetaRow(Base):
    """Key/value settings of the knowledge base (chunker, embedding model, index generation)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class ChatSessionRow(Base):
    """A named conversation, resumable with `pilotfish chat --session NAME`."""

    __tablename__ = "chat_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class ChatMessageRow(Base):
    __tablename__ = "chat_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text)
    # For user turns: the standalone question actually searched; for assistant turns: cited doc ids.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class ChatSessionOwnerRow(Base):
    """Which API key opened a served conversation (`pilotfish serve`); a key sees only its own."""

    __tablename__ = "chat_session_owners"
    session_id: Mapped[int] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"), primary_key=True)
    key_id: Mapped[int | None] = mapped_column(Integer, index=True, nullable=True)  # None: served without auth
    title: Mapped[str] = mapped_column(String(200), default="")


class ApiKeyRow(Base):
    """An API key of `pilotfish serve`: only the SHA-256 of the token is stored."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the token's first characters, to recognise it in a list
    scope: Mapped[str] = mapped_column(String(20))  # "ask" or "admin"
    collections: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # None: every collection
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class FeedbackRow(Base):
    """A user's verdict on an answer (thumbs, a correction, a comment), kept with what it judged, for training."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    key_id: Mapped[int | None] = mapped_column(Integer, index=True, nullable=True)
    session_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pipeline: Mapped[str] = mapped_column(String(200), default="")
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[str]] = mapped_column(JSON, default=list)  # chunk ids the answer was given
    rating: Mapped[int] = mapped_column(Integer, default=0)  # 1 thumbs up, -1 thumbs down, 0 none
    correction: Mapped[str] = mapped_column(Text, default="")
    comment: Mapped[str] = mapped_column(Text, default="")


class KnowledgeStore:
    """Thin access layer over the schema; callers group writes with `transaction()`."""

    def __init__(self, url: str) -> None:
        # A plain postgresql:// URL would pick psycopg2; pilotfish ships psycopg 3.
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        self.url = url
        try:
            self.engine = create_engine(url)
        except Exception as err:  # bad URL, missing driver
            raise KnowledgeBaseError(f"cannot open database {url!r}: {err}") from err
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # Python's sqlite3 opens a transaction only before INSERT/UPDATE/DELETE, so a DROP TABLE or CREATE
            # TABLE of an ingest would commit on its own, and a crash after it would lose a table; SQLAlchemy's
            # recipe: the driver stops managing transactions and every SQLAlchemy transaction begins with BEGIN.
            event.listen(self.engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create(self) -> None:
        try:
            Base.metadata.create_all(self.engine)
        except Exception as err:
            raise KnowledgeBaseError(f"cannot create the schema in {self.url!r}: {err}") from err

    def has_schema(self) -> bool:
        from sqlalchemy import inspect

        return inspect(self.engine).has_table("meta")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits together, or not at all."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    # -- meta -----------------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None, *, session: Session | None = None) -> Any:
        if session is not None:
            return self.get_meta_in(session, key, default)
        with self.reading() as s:
            return self.get_meta(key, default, session=s)

    @staticmethod
    def set_meta(session: Session, key: str, value: Any) -> None:
        row = session.get(MetaRow, key)
        if row is None:
            session.add(MetaRow(key=key, value=value))
        else:
            row.value = value

    # -- sources --------------------------------------------------------------------------------
    def sources(self) -> dict[str, SourceRow]:
        with self.reading() as s:
            return {row.path: row for row in s.scalars(select(SourceRow))}

    @staticmethod
    def delete_source(session: Session, path: str) -> None:
        source_id = session.scalar(select(SourceRow.id).where(SourceRow.path == path))
        if source_id is None:
            return
        owned = session.scalars(select(TableRow.name).where(TableRow.source_id == source_id,
                                                            TableRow.database.is_(None))).all()
        quote = session.get_bind().dialect.identifier_preparer.quote
        for name in owned:  # tables ingested from the file; a registered database is never touched
            session.execute(text(f"DROP TABLE IF EXISTS {quote(name)}"))
        session.execute(delete(TableRow).where(TableRow.source_id == source_id))
        graph = session.execute(delete(TripleRow).where(TripleRow.source_id == source_id)).rowcount
        graph += session.execute(delete(AliasRow).where(AliasRow.source_id == source_id)).rowcount
        if graph:  # the file held triples: drop entities nothing names any more, and reload the graph
            KnowledgeStore.drop_orphan_entities(session)
            KnowledgeStore.set_meta(session, "graph_generation",
                                    int(KnowledgeStore.get_meta_in(session, "graph_generation", 0)) + 1)
        doc_ids = select(DocumentRow.id).where(DocumentRow.source_id == source_id)
        session.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(doc_ids)))
        session.execute(delete(DocumentRow).where(DocumentRow.source_id == source_id))
        session.execute(delete(SourceRow).where(SourceRow.id == source_id))

    @staticmethod
    def get_meta_in(session: Session, key: str, default: Any = None) -> Any:
        row = session.get(MetaRow, key)
        return default if row is None else row.value

    @staticmethod
    def drop_orphan_entities(session: Session) -> None:
        """Remove entities that no triple and no alias refers to (their files were replaced or removed)."""
        used = (select(TripleRow.subject_id).union(select(TripleRow.object_id), select(AliasRow.entity_id)))
        session.execute(delete(EntityRow).where(EntityRow.id.not_in(used)))
        session.execute(delete(RelationRow).where(RelationRow.id.not_in(select(TripleRow.relation_id))))

    @staticmethod
    def taken_doc_ids(session: Session, doc_ids: list[str]) -> dict[str, str]:
        """Which of `doc_ids` already exist, mapped to the path of the source holding them."""
        found: dict[str, str] = {}
        for start in range(0, len(doc_ids), 500):
            part = doc_ids[start:start + 500]
            rows = session.execute(select(DocumentRow.doc_id, SourceRow.path).join(SourceRow)
                                   .where(DocumentRow.doc_id.in_(part)))
            found.update({d: p for d, p in rows})
        return found

    @staticmethod
    def iter_chunks(session: Session, batch: int = 2000) -> Iterator[Any]:
        """Every chunk as a row (chunk_id, text, doc_id, title, meta, path), in a stable order, streamed
        `batch` rows at a time. The document's text is not fetched: joined per chunk, a large document
        would be copied once for each of its chunks."""
        query = (select(ChunkRow.chunk_id, ChunkRow.text, DocumentRow.doc_id, DocumentRow.title, DocumentRow.meta,
                        SourceRow.path)
                 .join(DocumentRow, ChunkRow.document_id == DocumentRow.id)
                 .join(SourceRow, DocumentRow.source_id == SourceRow.id).order_by(ChunkRow.id)
                 .execution_options(yield_per=batch))
        yield from session.execute(query)

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func

        with self.reading() as s:
            return {"sources": s.scalar(select(func.count(SourceRow.id))) or 0,
                    "documents": s.scalar(select(func.count(DocumentRow.id))) or 0,
                    "chunks": s.scalar(select(func.count(ChunkRow.id))) or 0,
                    "tables": s.scalar(select(func.count(TableRow.id))) or 0,
                    "triples": s.scalar(select(func.count(TripleRow.id))) or 0,
                    "entities": s.scalar(select(func.count(EntityRow.id))) or 0}

    def table_cards(self) -> list[dict[str, Any]]:
        """The cards of every table, with the database each lives in (None: this store's)."""
        with self.reading() as s:
            return [{**row.card, "database": row.database} for row in s.scalars(select(TableRow).order_by(TableRow.id))]

    @staticmethod
    def table_names(session: Session) -> dict[str, str]:
        """Table name (lower case) -> the path of the source that holds it."""
        rows = session.execute(select(TableRow.name, SourceRow.path)
                               .join(SourceRow, TableRow.source_id == SourceRow.id))
        return {name.lower(): path for name, path in rows}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # BEGIN comes from the "begin" listener, DDL included
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
