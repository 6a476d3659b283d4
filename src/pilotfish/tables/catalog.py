"""TableCatalog: the tables a question may be answered from, their cards, values and sandboxes.

A catalog comes from a knowledge base (`kb.tables()`: tables ingested into its database and databases
registered with `ingest --database URL`), from a database URL alone (`TableCatalog.for_database`), or from
table files loaded into a temporary SQLite file (`TableCatalog.for_files`, what `ask --table FILE` uses).
Every statement runs through an `SQLSandbox` on the database that holds the table.

>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "sales.csv").write_text("region,margin\\nWest,0.31\\nEast,0.12\\n")
>>> catalog = TableCatalog.for_files([folder / "sales.csv"])
>>> [card.name for card in catalog.cards]
['sales']
>>> catalog.sandbox(["sales"]).run('SELECT region FROM sales ORDER BY margin DESC LIMIT 1').rows
[('West',)]
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pilotfish.errors import TableError
from pilotfish.tables.cards import TableCard, card_of_database_table, card_of_frame

VALUES_PER_COLUMN = 2000  # distinct text values per column the linker may match question words against


def expand_url(url: str) -> str:
    """`url` with `${VARIABLE}`s filled from the environment (a password need not be stored)."""
    expanded = os.path.expandvars(url)
    if "${" in expanded:
        missing = expanded[expanded.index("${"):].split("}")[0] + "}"
        raise TableError(f"the database URL needs {missing}: set that environment variable")
    return expanded


def engine_url(url: str) -> str:
    """A SQLAlchemy URL with psycopg 3 for plain postgresql:// (pilotfish ships psycopg 3, not psycopg2)."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class TableCatalog:
    """Cards of the tables at hand, with `home` the URL of the database holding tables whose card has no
    `database` of its own (a knowledge base's database, or the temporary file of `for_files`)."""

    def __init__(self, cards: Sequence[TableCard], *, home: str | None = None,
                 sandbox_options: dict[str, Any] | None = None, keep: Any = None) -> None:
        self.cards = list(cards)
        self.home = home
        self.sandbox_options = dict(sandbox_options or {})
        self._keep = keep  # a temporary folder that must live as long as the catalog
        self._lock = threading.Lock()
        self._engines: dict[str, Any] = {}
        self._values: dict[tuple[str, str], list[str]] = {}
        self.skipped: list[tuple[str, str]] = []  # (file, reason) of files `for_files` could not load

    def __len__(self) -> int:
        return len(self.cards)

    @classmethod
    def for_database(cls, url: str, *, tables: Sequence[str] | None = None) -> TableCatalog:
        """Every table of the database at `url` (or the named ones), described without copying anything."""
        cards = describe_database(url, source=url, tables=tables)
        return cls([dataclasses.replace(c, database=url) for c in cards], home=url)

    @classmethod
    def for_files(cls, paths: Sequence[str | Path], *, folder: str | Path | None = None,
                  skip_bad: bool = False) -> TableCatalog:
        """The tables of `paths` (CSV, TSV, XLSX, Parquet) loaded into a SQLite file in `folder` (a temporary
        folder by default, removed with the catalog). A file that is no table raises `TableError`, or with
        `skip_bad` is listed in the catalog's `skipped` with its reason."""
        from sqlalchemy import create_engine

        from pilotfish.tables.load import read_tables

        keep = None
        if folder is None:
            keep = tempfile.TemporaryDirectory(prefix="pilotfish-tables-")
            folder = keep.name
        url = f"sqlite:///{Path(folder) / 'tables.db'}"
        cards: list[TableCard] = []
        skipped: list[tuple[str, str]] = []
        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                for path in paths:
                    try:
                        loaded, _ = read_tables(path)
                    except TableError as err:
                        if not skip_bad:
                            raise
                        skipped.append((str(path), str(err)))
                        continue
                    for table in loaded:
                        name = unique_name(table.name, {c.name for c in cards})
                        storable(table.frame).to_sql(name, connection, index=False, if_exists="replace")
                        cards.append(card_of_frame(name, table.frame, source=str(path), sheet=table.sheet))
        finally:
            engine.dispose()
        catalog = cls(cards, home=url, keep=keep)
        catalog.skipped = skipped
        return catalog

    # -- where a table lives -----------------------------------------------------------------------
    def card(self, name: str) -> TableCard:
        for card in self.cards:
            if card.name.lower() == name.lower():
                return card
        known = ", ".join(c.name for c in self.cards) or "none"
        raise TableError(f"no table named {name!r} here (tables: {known}); list them with `pilotfish tables`")

    def url_of(self, card: TableCard) -> str:
        url = card.database or self.home
        if url is None:
            raise TableError(f"table {card.name} has no database; re-ingest its file")
        return expand_url(url)

    def engine(self, url: str) -> Any:
        """A read engine for `url`; a SQLite file opens read-only, so a missing one is an error, never created."""
        with self._lock:
            if url not in self._engines:
                from sqlalchemy import create_engine

                target = engine_url(url)
                if url.startswith("sqlite:///"):
                    path = Path(url.removeprefix("sqlite:///"))
                    if not path.is_file():
                        raise TableError(f"no SQLite database at {path}: the file was moved or deleted; restore it, "
                                         "or re-ingest with --prune to forget its tables")
                    target = f"sqlite:///file:{path}?mode=ro&uri=true"
                self._engines[url] = create_engine(target)
            return self._engines[url]

    def sandbox(self, tables: Sequence[str], **options: Any) -> Any:
        """An `SQLSandbox` over the database of `tables`, allowed to read those tables only."""
        from pilotfish.tables.sandbox import SQLSandbox

        cards = [self.card(t) for t in tables]
        urls = {self.url_of(c) for c in cards}
        if len(urls) != 1:
            raise TableError(f"tables {', '.join(tables)} live in different databases; one query reads one")
        return SQLSandbox(url=urls.pop(), tables=[c.name for c in cards], **{**self.sandbox_options, **options})

    # -- contents ----------------------------------------------------------------------------------
    def values(self, table: str, column: str, limit: int = VALUES_PER_COLUMN) -> list[str]:
        """Distinct non-empty values of a text column (most frequent first), for linking question words."""
        key = (table.lower(), column.lower())
        if key not in self._values:
            from sqlalchemy import text

            card = self.card(table)
            engine = self.engine(self.url_of(card))
            quote = engine.dialect.identifier_preparer.quote
            q = quote(column)
            try:
                with engine.connect() as connection:
                    found = connection.execute(text(f"SELECT {q} FROM {quote(card.name)} WHERE {q} IS NOT NULL "
                                                    f"GROUP BY {q} ORDER BY COUNT(*) DESC LIMIT {int(limit)}"))
                    self._values[key] = [str(v) for v in found.scalars() if str(v).strip()]
            except Exception as err:  # the table went away between ingest and ask
                raise TableError(f"cannot read {card.name}.{column}: {_first_line(err)}; re-ingest the table "
                                 "or remove it with `pilotfish ingest --prune`") from err
        return self._values[key]

    def rows(self, table: str, limit: int = 5000) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The first `limit` rows of `table` with its column names (table evidence, a prompt's example rows)."""
        card = self.card(table)
        sandbox = self.sandbox([card.name], row_limit=limit)
        try:
            result = sandbox.run(f'SELECT * FROM "{card.name}"')
        finally:
            sandbox.close()
        return result.columns, result.rows

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


def storable(frame: Any) -> Any:
    """`frame` as SQL should keep it: dates at midnight as 'YYYY-MM-DD' text (SQLite has no date type, and a
    timestamp's ' 00:00:00' would leak into answers), other date-times as 'YYYY-MM-DD HH:MM:SS'."""
    import pandas as pd

    out = frame
    for name in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[name]):
            present = frame[name].dropna()
            midnight = bool((present.dt.normalize() == present).all())
            out = out.copy() if out is frame else out
            out[name] = frame[name].dt.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S")
    return out


def describe_database(url: str, *, source: str, tables: Sequence[str] | None = None) -> list[TableCard]:
    """Cards of the tables of the database at `url` (all but SQLite's own, or those named)."""
    from sqlalchemy import create_engine, inspect

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise TableError(f"no SQLite database at {url.removeprefix('sqlite:///')}; give the path of an existing "
                         "file (sqlite:///path/to/file.db)")
    try:
        engine = create_engine(engine_url(url))
        with engine.connect() as connection:
            names = [n for n in inspect(connection).get_table_names() if not n.startswith("sqlite_")]
            if tables is not None:
                missing = sorted({t.lower() for t in tables} - {n.lower() for n in names})
                if missing:
                    raise TableError(f"{redact(url)} has no table {', '.join(missing)}; it has {', '.join(names)}")
                names = [n for n in names if n.lower() in {t.lower() for t in tables}]
            cards = [card_of_database_table(connection, n, source=source, database=None) for n in names]
        engine.dispose()
    except TableError:
        raise
    except Exception as err:
        raise TableError(f"cannot read the database {redact(url)}: {redact(_first_line(err))}; check the URL, that "
                         "the server runs and that its driver is installed") from err
    if not cards:
        raise TableError(f"the database {redact(url)} holds no tables")
    return cards


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3`... when another table already has it (case-insensitively)."""
    lowered = {t.lower() for t in taken}
    candidate, n = name, 1
    while candidate.lower() in lowered:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def redact(url: str) -> str:
    """`url` without its password, for messages and listings."""
    return re.sub(r"(://[^/:@]+):[^@/]+@", r"\1:***@", url)


def _first_line(err: BaseException) -> str:
    return (str(getattr(err, "orig", None) or err).strip().splitlines() or ["unknown error"])[0]
