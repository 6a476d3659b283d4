"""SQLSandbox: the read-only gate every SQL statement written by an LLM passes through.

Two walls. `validate` parses the text with sqlglot and refuses anything but one query over the allowed
tables: no writes, PRAGMA, ATTACH or transactions (not even inside a CTE), no stacked statements, no
function on the deny list, no table-valued function, no huge LIKE pattern. `run` then executes it on a
read-only connection: SQLite opened with `mode=ro`, `PRAGMA query_only` and an authorizer that allows
only reads of the allowed tables; PostgreSQL in a READ ONLY transaction with statement and lock timeouts,
through a server-side cursor, always rolled back. A time limit stops runaway queries, and at most
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
import fnmatch
import functools
import logging
import math
import re
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

logger = logging.getLogger(__name__)

# Functions no statement may call (lower case; `*` matches any run of characters). Why each:
# SQLite: load_extension loads native code; readfile/writefile/edit touch files (shell extensions);
# fts3_tokenizer has been used to run native code; zeroblob/randomblob build huge values; eval runs SQL text.
# PostgreSQL: pg_* holds the admin functions (pg_sleep holds a connection, pg_read_file/pg_ls_dir/pg_stat_file
# read the server's files, pg_terminate_backend/pg_cancel_backend/pg_reload_conf act on the server,
# pg_advisory_lock outlives the transaction); lo_* import and export files; dblink* reaches other servers;
# set_config/current_setting change or read settings; *_to_xml* and ts_stat/ts_rewrite run SQL given as text,
# past this gate; copy moves files; txid_current, nextval, setval write.
DENIED_FUNCTIONS: tuple[str, ...] = (
    "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "zeroblob", "randomblob", "eval",
    "pg_*", "lo_*", "dblink*", "set_config", "current_setting", "*_to_xml*", "ts_stat", "ts_rewrite", "copy",
    "txid_current*", "nextval", "setval",
)
# sqlglot nodes that may appear nowhere in the tree: writes, schema changes, settings, transactions, locking
# reads (FOR UPDATE), SELECT ... INTO, and what sqlglot only knows as a raw Command (VACUUM, EXPLAIN, CALL ...).
_FORBIDDEN = (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Command", "Pragma", "Attach", "Detach",
    "Transaction", "Commit", "Rollback", "Set", "Copy", "Into", "Lock", "Use", "Analyze", "Grant", "Revoke",
    "TruncateTable", "LoadData", "Kill", "Cache", "Uncache", "Refresh", "Describe", "Show", "Comment",
    "Declare", "Execute", "Export",
)
_NAMES = {"Lock": "FOR UPDATE/SHARE (a locking read)", "Into": "SELECT ... INTO", "TruncateTable": "TRUNCATE"}
_PATTERNS = ("Like", "ILike", "Glob", "SimilarTo", "LikeAny", "ILikeAny")
MAX_PATTERN_CHARS = 200  # a longer LIKE/GLOB/regex literal is refused (catastrophic backtracking, slow scans)
MAX_VALUE_BYTES = 16_000_000  # SQLite: a string or blob larger than this fails instead of filling memory
_WIDE_FORMAT = re.compile(r"%[^a-zA-Z%]*(\*|\d{4})")  # printf widths run inside one call, past the time limit
_TOO_SLOW = ("the query took longer than {:g} s and was stopped; make it cheaper (filter early, avoid cross joins "
             "and unbounded recursion, add LIMIT)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _denied_function(name: str | None) -> bool:
    return any(fnmatch.fnmatchcase((name or "").lower(), pattern) for pattern in DENIED_FUNCTIONS)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in _ANSI.sub("", str(err)).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


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
        import sqlglot
        from sqlglot import exp

        if not isinstance(sql, str):
            raise SQLRefusedError(f"not text: expected the SQL statement as a string, got {type(sql).__name__}")
        if len(sql) > self.max_sql_chars:
            raise SQLRefusedError(f"too long: the SQL text has {len(sql)} characters, more than the limit of "
                                  f"{self.max_sql_chars}; write a shorter query")
        if "\x00" in sql:
            raise SQLRefusedError("NUL character: the SQL text contains a NUL (\\x00) character; remove it")
        text = sql.strip()
        while text.endswith(";"):
            text = text[:-1].rstrip()
        if not text:
            raise SQLRefusedError("empty statement: there is no SQL to run; write one SELECT statement")
        try:
            parsed = sqlglot.parse(text, read=self._dialect)
        except RecursionError:
            raise SQLRefusedError("not valid SQL: the statement is nested too deeply; simplify it") from None
        except Exception as err:  # sqlglot ParseError, TokenError and the odd internal error on garbage input
            raise SQLRefusedError(f"not valid SQL: {_first_line(err)[:300]}; fix the syntax ({self._dialect} "
                                  "dialect)") from None
        statements = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
        if not statements:
            raise SQLRefusedError("empty statement: the text holds only comments; write one SELECT statement")
        if len(statements) > 1:
            raise SQLRefusedError(f"one statement only: found {len(statements)} statements ("
                                  f"{', '.join(_kind(s) for s in statements[:5])}); send a single SELECT with no "
                                  "';' between statements")
        root, forbidden = statements[0], _classes(_FORBIDDEN)
        if not isinstance(root, exp.Query) or isinstance(root, forbidden):
            raise SQLRefusedError(f"read-only: the statement is {_kind(root)}, not a query; only a SELECT (with WITH, "
                                  "UNION, INTERSECT, EXCEPT) may run")
        ctes: set[str] = set()
        for node in root.walk():
            if isinstance(node, forbidden):
                raise SQLRefusedError(f"read-only: the query contains {_kind(node)} ({_snippet(node)}); only reads "
                                      "are allowed")
            if isinstance(node, exp.CTE):
                ctes.add(node.alias_or_name.lower())
            elif isinstance(node, exp.Table):
                self._check_table(node)
            elif isinstance(node, exp.From | exp.Join):
                inner = node.this.this if isinstance(node.this, exp.Lateral) else node.this
                if not isinstance(inner, exp.Table | exp.Subquery | exp.Values | exp.Query):
                    raise SQLRefusedError(f"table-valued function: {_snippet(inner)} in FROM is not allowed; read "
                                          "from the allowed tables")
            elif isinstance(node, (exp.Func, *_classes(_PATTERNS))):
                _check_call(node)
        return text, frozenset(ctes)

    def _check_table(self, table: Any) -> None:
        from sqlglot import exp

        if not isinstance(table.this, exp.Identifier):
            raise SQLRefusedError(f"table-valued function: {_snippet(table)} is not allowed; read from the allowed "
                                  "tables")
        parts = [p for p in (table.catalog, table.db, table.name) if p]
        if len(parts) == 1 and _cte_reference(table):
            return
        ref, allowed = ".".join(parts).lower(), self._allowed_tables()
        if ref in allowed or (self._dialect == "sqlite" and ref.startswith("main.") and ref[5:] in allowed):
            return
        names = sorted(allowed)
        shown = ", ".join(names[:30]) + (f" and {len(names) - 30} more" if len(names) > 30 else "")
        raise SQLRefusedError(f"table not allowed: {ref!r} is not one of the tables this query may read ({shown}); "
                              "use only those")

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


@functools.cache
def _classes(names: tuple[str, ...]) -> tuple[type, ...]:
    from sqlglot import exp

    return tuple(cls for cls in (getattr(exp, n, None) for n in names) if isinstance(cls, type))


def _check_call(node: Any) -> None:
    """Refuses a call on the deny list, a long LIKE/GLOB/regex pattern, and a printf/format with a huge width."""
    from sqlglot import exp

    anonymous = isinstance(node, exp.Anonymous)
    names = [node.name] if anonymous else list(type(node).sql_names()) if isinstance(node, exp.Func) else []
    bad = next((n for n in names if _denied_function(n)), None)
    if bad:
        raise SQLRefusedError(f"function not allowed: {bad.lower()}() is on the deny list (it touches files, the "
                              "server or its settings, or builds huge values); compute the answer from the allowed "
                              "tables with ordinary functions")
    name = node.name.lower() if anonymous else ""
    if isinstance(node, _classes(_PATTERNS)) or type(node).__name__.startswith("Regexp") or any(
            word in name for word in ("like", "glob", "regexp", "similar")):
        for literal in node.find_all(exp.Literal):
            if literal.is_string and len(literal.this) > MAX_PATTERN_CHARS:
                raise SQLRefusedError(f"pattern too long: a LIKE/GLOB/regular-expression pattern has "
                                      f"{len(literal.this)} characters, more than {MAX_PATTERN_CHARS}; use a shorter "
                                      "pattern")
    if name == "printf" or isinstance(node, _classes(("Format",))):
        spec = (node.expressions[0] if node.expressions else None) if anonymous else node.this
        if not (isinstance(spec, exp.Literal) and spec.is_string) or _WIDE_FORMAT.search(spec.this):
            raise SQLRefusedError(f"format width: {_snippet(node)} needs a literal format string without '*' and "
                                  "with widths under 1000; format the value another way")


def _kind(node: Any) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Command):
        return str(node.this).upper()
    if isinstance(node, _classes(_FORBIDDEN)) or isinstance(node, exp.Query):
        return _NAMES.get(type(node).__name__, type(node).__name__.upper())
    return f"an expression ({_snippet(node)})"


def _snippet(node: Any) -> str:
    try:
        text = " ".join(node.sql().split())
    except Exception:  # an odd node sqlglot cannot print back
        text = type(node).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _cte_reference(table: Any) -> bool:
    """Whether an unqualified table name means a CTE in scope at that point: the main body of a WITH sees all
    of its CTEs; a CTE body sees the ones before it, or all of them (itself too) under WITH RECURSIVE.
    Anything else would be a real table, so it is checked against the allowed tables."""
    from sqlglot import exp

    name, child, node = table.name.lower(), table, table.parent
    while node is not None:
        if isinstance(node, exp.With):
            names = [cte.alias_or_name.lower() for cte in node.expressions]
            index = next((i for i, cte in enumerate(node.expressions) if cte is child), 0)
            if name in (names if node.args.get("recursive") else names[:index]):
                return True
        else:
            with_ = node.args.get("with_") or node.args.get("with")
            if isinstance(with_, exp.With) and with_ is not child and any(
                    cte.alias_or_name.lower() == name for cte in with_.expressions):
                return True
        child, node = node, node.parent
    return False
