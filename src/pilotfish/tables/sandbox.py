"""SQLSandbox: the read-only gate every SQL statement written by an LLM passes through.

Two walls. `validate` parses the text with sqlglot and refuses anything but one query over the allowed
tables (the rules are in `sql_rules`): no writes, PRAGMA, ATTACH or transactions (not even inside a CTE), no
stacked statements, no function on the deny list, no table-valued function, no huge LIKE pattern. `run` then
executes it on a read-only connection: SQLite opened with `mode=ro`, `PRAGMA query_only` and an authorizer
that allows only reads of the allowed tables; PostgreSQL in a READ ONLY transaction with statement and lock
timeouts, through a server-side cursor, always rolled back. A time limit stops runaway queries, and at most
`row_limit` rows come back.

>>> import os, sqlite3, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "shop.db")
>>> db = sqlite3.connect(path)
>>> _ = db.executescript("CREATE TABLE fruit(name, price); INSERT INTO fruit VALUES ('fig', 2.5), ('kiwi', 1);")
>>> db.close()
>>> sandbox = SQLSandbox(url=f"sqlite:///{path}", tables=["fruit"], row_limit=1)
>>> result = sandbox.run("SELECT name FROM fruit ORDER BY price DESC;")
>>> result.columns, result.rows, result.truncated
(['name'], [('fig',)], True)
>>> try:
...     sandbox.run("DROP TABLE fruit")
... except SQLRefusedError as err:
...     print(err)
read-only: the statement is DROP, not a query; only a SELECT (with WITH, UNION, INTERSECT, EXCEPT) may run
>>> sandbox.close()
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pilotfish.errors import ConfigError, SQLExecutionError, SQLRefusedError
from pilotfish.tables.sql_rules import (
    DENIED_FUNCTIONS,
    MAX_PATTERN_CHARS,
    _denied_function,
    _first_line,
    check_statement,
)

__all__ = ["DENIED_FUNCTIONS", "MAX_PATTERN_CHARS", "SQLResult", "SQLSandbox"]

logger = logging.getLogger(__name__)

MAX_VALUE_BYTES = 16_000_000  # SQLite: a string or blob larger than this fails instead of filling memory
_TOO_SLOW = ("the query took longer than {:g} s and was stopped; make it cheaper (filter early, avoid cross joins "
             "and unbounded recursion, add LIMIT)")


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


@dataclass(frozen=True)
class SQLResult:
    """What an allowed statement returned: its columns and at most `row_limit` rows."""

    sql: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: Decimal -> float, dates -> ISO text, bytes -> '<N bytes>'."""
        rows = [[_json_value(v) for v in row] for row in self.rows]
        return {"sql": self.sql, "columns": list(self.columns), "rows": rows, "truncated": self.truncated,
                "seconds": self.seconds}


class SQLSandbox:
    """Validates one SQL query and runs it read-only, with a row limit and a time limit."""

    def __init__(self, *, url: str, tables: Sequence[str] | None = None, row_limit: int = 200,
                 time_limit: float = 5.0, max_sql_chars: int = 10_000) -> None:
        scheme, _, rest = url.partition("://") if isinstance(url, str) else ("", "", "")
        if scheme == "sqlite":
            path = rest[1:] if rest.startswith("/") else rest
            if not path or path == ":memory:" or path.startswith("file::memory:"):
                raise ConfigError(f"url={url!r} names an in-memory SQLite database, which has no tables to "
                                  "query; give the file that holds them: sqlite:///path/to/file.db")
            if "?" in path:
                raise ConfigError(f"url={url!r}: the sandbox takes no SQLite URL options; give sqlite:///FILE")
            self._dialect, self._path, self._engine_url = "sqlite", path, ""
        elif scheme in ("postgresql", "postgres", "postgresql+psycopg"):
            self._dialect, self._path, self._engine_url = "postgres", "", f"postgresql+psycopg://{rest}"
        else:
            raise ConfigError(f"url={url!r} is not a database URL the sandbox reads; give sqlite:///path/to/file.db "
                              "or postgresql://user@host/database (unsupported database otherwise)")
        if tables is not None:
            if isinstance(tables, str) or not all(isinstance(t, str) and t.strip() for t in tables):
                raise ConfigError(f"tables={tables!r} must be a list of table names (or None for every table)")
            if not tables:
                raise ConfigError("tables=[] allows nothing; name at least one table, or pass None for every table")
        for name, value in (("row_limit", row_limit), ("max_sql_chars", max_sql_chars)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a whole number >= 1")
        if isinstance(time_limit, bool) or not isinstance(time_limit, int | float) or not 0 < time_limit < 3600:
            raise ConfigError(f"time_limit={time_limit!r} must be a number of seconds above 0 and below 3600")
        self.url, self.row_limit, self.time_limit, self.max_sql_chars = url, row_limit, float(time_limit), max_sql_chars
        self.tables = None if tables is None else [t.strip() for t in tables]
        strip = "main." if self._dialect == "sqlite" else ""
        self._allowed = None if self.tables is None else frozenset(t.lower().removeprefix(strip) for t in self.tables)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._engine: Any = None
        self._views: frozenset[str] = frozenset()  # SQLite views: reads made while expanding one are allowed
        self._ctes: frozenset[str] = frozenset()  # CTE names of the statement now running
        self._deadline, self._denied = math.inf, ""

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgres'."""
        return self._dialect

    # -- validation ------------------------------------------------------------------------------------------
    def validate(self, sql: str) -> str:
        """The statement, stripped of trailing ';' and whitespace, if it may run; else SQLRefusedError."""
        return self._check(sql)[0]

    def _check(self, sql: str) -> tuple[str, frozenset[str]]:
        return check_statement(sql, dialect=self._dialect, allowed=self._allowed_tables,
                               max_chars=self.max_sql_chars)

    def _allowed_tables(self) -> frozenset[str]:
        with self._lock:
            if self._allowed is None and self._dialect == "sqlite":
                self._sqlite()  # opening the file lists its tables
            elif self._allowed is None:
                rows, _ = self._postgres(
                    "SELECT table_schema, table_name, table_schema::text = ANY (current_schemas(false)::text[]) FROM "
                    "information_schema.tables WHERE table_schema <> 'information_schema' AND table_schema NOT LIKE "
                    "'pg\\_%'", limit=1_000_000, named=False)
                self._allowed = frozenset({f"{schema}.{name}".lower() for schema, name, _ in rows}
                                          | {name.lower() for _, name, visible in rows if visible})
            assert self._allowed is not None
            return self._allowed

    # -- execution -------------------------------------------------------------------------------------------
    def run(self, sql: str) -> SQLResult:
        """Validate `sql`, then run it read-only: SQLRefusedError before running, SQLExecutionError while."""
        text, ctes = self._check(sql)
        start = time.monotonic()
        if self._dialect == "sqlite":
            rows, columns = self._run_sqlite(text, ctes)
        else:
            rows, columns = self._postgres(text, limit=self.row_limit + 1, named=True)
        return SQLResult(sql=text, columns=columns, rows=rows[: self.row_limit], truncated=len(rows) > self.row_limit,
                         seconds=round(time.monotonic() - start, 6))

    def close(self) -> None:
        """Close the connection (and the PostgreSQL pool); a later `run` opens a new one."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            if self._engine is not None:
                self._engine.dispose()
            self._conn = self._engine = None

    # SQLite ---------------------------------------------------------------------------------------------------
    def _sqlite(self) -> sqlite3.Connection:
        with self._lock:
            if self._conn is not None:
                return self._conn
            path = Path(self._path)
            if not path.is_file():  # checked first: SQLite would create an empty database
                raise SQLExecutionError(f"no SQLite database at {self._path}: the file does not exist; give the path "
                                        "of an existing database file (the sandbox never creates one)")
            conn = None
            try:
                conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                                       check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA query_only = ON")
                found = conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
            except sqlite3.Error as err:
                if conn is not None:
                    conn.close()
                raise SQLExecutionError(f"cannot read the SQLite database at {self._path}: {err}; check that it "
                                        "is a readable SQLite file") from None
            for limit, value in ((sqlite3.SQLITE_LIMIT_ATTACHED, 0), (sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES),
                                 (sqlite3.SQLITE_LIMIT_SQL_LENGTH, 4 * self.max_sql_chars + 100)):
                conn.setlimit(limit, value)
            self._views = frozenset(name.lower() for kind, name in found if kind == "view")
            if self._allowed is None:
                self._allowed = frozenset(n.lower() for _, n in found if not n.lower().startswith("sqlite_"))
            conn.set_authorizer(self._authorize)
            conn.set_progress_handler(self._progress, 1000)
            self._conn = conn
            return conn

    def _authorize(self, action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None) -> int:
        """The second wall: SQLite asks before every read, function call and anything else a statement does.
        (It does not ask while loading its own schema, so reads of sqlite_master stay denied.)"""
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and not _denied_function(arg2):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ and db in (None, "main"):
            table, view = (arg1 or "").lower(), (source or "").lower()
            if table in (self._allowed or ()) or (view in self._views and view not in self._ctes):
                return sqlite3.SQLITE_OK
        what = {sqlite3.SQLITE_FUNCTION: "calling a function", sqlite3.SQLITE_READ: "reading a table",
                sqlite3.SQLITE_ATTACH: "ATTACH or VACUUM INTO (a second database file)"}
        self._denied = f"{what.get(action, f'operation {action} of the SQLite authorizer')} ({arg1 or arg2 or ''})"
        return sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def _run_sqlite(self, sql: str, ctes: frozenset[str]) -> tuple[list[tuple[Any, ...]], list[str]]:
        with self._lock:
            conn = self._sqlite()
            self._ctes, self._denied = ctes, ""
            self._deadline = time.monotonic() + self.time_limit
            cursor = None
            try:
                cursor = conn.execute(sql)
                columns = [d[0] for d in cursor.description or ()]
                return [tuple(r) for r in cursor.fetchmany(self.row_limit + 1)], columns
            except (sqlite3.Error, sqlite3.Warning) as err:
                message = _first_line(err)
                if time.monotonic() > self._deadline and "interrupt" in message:
                    raise SQLExecutionError(_TOO_SLOW.format(self.time_limit)) from None
                if self._denied or "not authorized" in message or "prohibited" in message:
                    raise SQLRefusedError(f"read-only guard: {self._denied or message} is not allowed; read only "
                                          "the allowed tables with ordinary functions") from None
                raise SQLExecutionError(f"the query failed: {message}; fix the query") from None
            finally:
                if cursor is not None:
                    cursor.close()
                self._deadline, self._ctes = math.inf, frozenset()

    # PostgreSQL -----------------------------------------------------------------------------------------------
    def _postgres(self, sql: str, *, limit: int, named: bool) -> tuple[list[tuple[Any, ...]], list[str]]:
        """Run `sql` in its own READ ONLY transaction with statement and lock timeouts, always rolled back;
        `named` fetches through a server-side cursor (one statement, a query only, rows sent as fetched)."""
        try:
            with self._lock:
                if self._engine is None:
                    from sqlalchemy import create_engine

                    self._engine = create_engine(self._engine_url, connect_args={"connect_timeout": 10})
                engine = self._engine
            raw = engine.raw_connection()
        except Exception as err:  # a bad URL, a missing driver, no server
            raise SQLExecutionError(f"cannot connect to the PostgreSQL database: {_first_line(err)}; check the URL "
                                    "and that the server is up") from None
        cursor = None
        try:
            milliseconds = max(1, int(self.time_limit * 1000))
            setup = raw.cursor()
            for statement in ("SET TRANSACTION READ ONLY", f"SET LOCAL statement_timeout = {milliseconds}",
                              f"SET LOCAL lock_timeout = {milliseconds}"):
                setup.execute(statement)
            setup.close()
            cursor = raw.cursor(name=f"pilotfish_sandbox_{uuid.uuid4().hex[:12]}") if named else raw.cursor()
            cursor.execute(sql)
            columns = [d[0] for d in cursor.description or ()]
            return [tuple(r) for r in cursor.fetchmany(limit)], columns
        except Exception as err:  # psycopg errors; the server's message goes back to the caller
            state = getattr(err, "sqlstate", None)
            if state == "57014":  # query_canceled: statement_timeout
                raise SQLExecutionError(_TOO_SLOW.format(self.time_limit)) from None
            if state == "55P03":  # lock_not_available: lock_timeout
                raise SQLExecutionError(f"the query waited longer than {self.time_limit:g} s for a lock and was "
                                        "stopped; try again later") from None
            if state == "25006":  # read_only_sql_transaction
                raise SQLRefusedError(f"read-only guard: {_first_line(err)}; only reads are allowed") from None
            raise SQLExecutionError(f"the query failed: {_first_line(err)}; fix the query") from None
        finally:
            try:
                raw.rollback()
                if cursor is not None:
                    cursor.close()
            except Exception:  # a broken connection: the pool drops it
                logger.debug("rollback after a sandboxed query failed", exc_info=True)
            raw.close()
