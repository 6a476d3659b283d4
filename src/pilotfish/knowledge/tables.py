"""Tables in a knowledge base: table files become real SQL tables in its database, databases are registered
without copying, and every table gets a schema card that is indexed for search like a document.

`ingest` calls `load_table_file` while it reads files and `save_tables` inside its one transaction, so a
table and its card arrive together or not at all; a changed file replaces its tables, a removed one
(`--prune`) drops them. A registered database is described, never written to.

>>> TABLE_SUFFIXES
('.csv', '.tsv', '.xlsx', '.parquet')
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilotfish.errors import IngestError, TableError
from pilotfish.tables.cards import TableCard, card_of_frame
from pilotfish.tables.catalog import redact, storable

__all__ = ["TABLE_SUFFIXES", "TableFile", "describe_registered", "load_table_file", "redact", "reserved_names",
           "save_tables"]
from pilotfish.types import Document

TABLE_SUFFIXES = (".csv", ".tsv", ".xlsx", ".parquet")


@dataclass
class TableFile:
    """The tables read from one file (or described in one database), their cards, and notes to report."""

    tables: list[tuple[TableCard, Any]] = field(default_factory=list)  # (card, frame or None for a database)
    notes: list[str] = field(default_factory=list)

    def documents(self, doc_id: str) -> list[Document]:
        """One searchable document per table: its card."""
        return [card_document(card, doc_id) for card, _ in self.tables]


def card_document(card: TableCard, source_doc_id: str) -> Document:
    return Document(doc_id=f"table:{card.name}", text=card.text(), title=f"Table {card.name}",
                    metadata={"kind": "table", "table": card.name, "file": source_doc_id})


def reserved_names(store: Any, owned: dict[str, str]) -> set[str]:
    """Names a table may not take: pilotfish's own tables, and any other table already in the database that
    no ingested file owns (`owned`: name -> source; a PostgreSQL knowledge base may share its database with
    other applications)."""
    from sqlalchemy import inspect

    from pilotfish.knowledge.store import Base

    existing = {name.lower() for name in inspect(store.engine).get_table_names()}
    return {name.lower() for name in Base.metadata.tables} | (existing - set(owned))


def load_table_file(path: Path, *, key: str, taken: dict[str, str], reserved: set[str]) -> TableFile:
    """Read `path` into typed frames, each under a table name no other source holds (`taken`: name ->
    source path, updated here); the file's own earlier tables keep their names."""
    from pilotfish.tables.catalog import unique_name
    from pilotfish.tables.load import read_tables

    try:
        loaded, skipped = read_tables(path)
    except TableError as err:
        raise IngestError(str(err).removeprefix(f"{path}: ")) from err
    out = TableFile(notes=[f"skipped sheet {s.sheet!r}: {s.reason}" for s in skipped])
    for table in loaded:
        blocked = {n for n, owner in taken.items() if owner != key} | reserved
        name = unique_name(table.name, blocked)
        if name != table.name:
            out.notes.append(f"table {table.name!r} is stored as {name!r} (the name was taken)")
        taken[name.lower()] = key
        out.tables.append((card_of_frame(name, table.frame, source=key, sheet=table.sheet), table.frame))
        out.notes.extend(f"{name}: {note}" for note in table.notes)
    return out


def describe_registered(url: str, *, taken: dict[str, str], reserved: set[str]) -> tuple[TableFile, str]:
    """The cards of a database registered by URL, and a hash of them (unchanged schema and counts: skipped)."""
    from pilotfish.tables.catalog import describe_database, expand_url

    cards = describe_database(expand_url(url), source=url)
    out = TableFile()
    for card in cards:
        owner = taken.get(card.name.lower())  # pilotfish's own names do not matter: the tables live elsewhere
        if owner is not None and owner != url:
            raise IngestError(f"table {card.name!r} of {redact(url)} clashes with a table of {redact(owner)}; "
                              "register the database in another knowledge base (--kb)")
        taken[card.name.lower()] = url
        out.tables.append((TableCard.from_dict({**card.to_dict(), "database": url}), None))
    digest = hashlib.sha256(json.dumps([c.to_dict() for c, _ in out.tables], sort_keys=True).encode()).hexdigest()
    if re.search(r"://[^/:@]+:[^@$/]+@", url):
        out.notes.append("the URL's password is stored in the knowledge base; write it as ${VARIABLE} to keep "
                         "only the variable's name")
    return out, digest


def save_tables(session: Any, source: Any, tables: TableFile) -> None:
    """Write the frames as SQL tables of the knowledge base's database and record every card."""
    from pilotfish.knowledge.store import TableRow

    connection = session.connection()
    for card, frame in tables.tables:
        if frame is not None:
            storable(frame).to_sql(card.name, connection, index=False, if_exists="fail", chunksize=5000)
        source.tables.append(TableRow(name=card.name, database=card.database, card=card.to_dict()))
