"""The rules an SQL statement must pass before the sandbox runs it, checked on sqlglot's parse tree.

`check_statement` needs no database: it refuses anything but one query over the allowed tables (no writes,
PRAGMA, ATTACH or transactions, not even inside a CTE; no stacked statements; no function on the deny list;
no table-valued function; no huge LIKE pattern or printf width) and returns the statement, stripped of
trailing ';' and whitespace, with the names of its CTEs. `SQLSandbox` calls it, then runs the statement
read-only.

>>> check_statement("SELECT name FROM fruit WHERE price > 1;", dialect="sqlite", allowed=frozenset({"fruit"}),
...                 max_chars=10_000)
('SELECT name FROM fruit WHERE price > 1', frozenset())
>>> try:
...     check_statement("SELECT load_extension('evil.so')", dialect="sqlite", allowed=frozenset({"fruit"}),
...                     max_chars=10_000)
... except SQLRefusedError as err:
...     print(str(err)[:60])
function not allowed: load_extension() is on the deny list (
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable
from typing import Any

from pilotfish.errors import SQLRefusedError

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
_WIDE_FORMAT = re.compile(r"%[^a-zA-Z%]*(\*|\d{4})")  # printf widths run inside one call, past the time limit
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check_statement(sql: str, *, dialect: str, allowed: frozenset[str] | Callable[[], frozenset[str]],
                    max_chars: int) -> tuple[str, frozenset[str]]:
    """The statement (stripped of trailing ';' and whitespace) and its CTE names (lower case) if it may run;
    else SQLRefusedError. `dialect` is sqlglot's ('sqlite' or 'postgres'); `allowed` holds the lower-case
    table names a query may read, or is called for them the first time a table reference needs checking
    (so a statement that reads no table never asks the database)."""
    import sqlglot
    from sqlglot import exp

    if not isinstance(sql, str):
        raise SQLRefusedError(f"not text: expected the SQL statement as a string, got {type(sql).__name__}")
    if len(sql) > max_chars:
        raise SQLRefusedError(f"too long: the SQL text has {len(sql)} characters, more than the limit of "
                              f"{max_chars}; write a shorter query")
    if "\x00" in sql:
        raise SQLRefusedError("NUL character: the SQL text contains a NUL (\\x00) character; remove it")
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise SQLRefusedError("empty statement: there is no SQL to run; write one SELECT statement")
    try:
        parsed = sqlglot.parse(text, read=dialect)
    except RecursionError:
        raise SQLRefusedError("not valid SQL: the statement is nested too deeply; simplify it") from None
    except Exception as err:  # sqlglot ParseError, TokenError and the odd internal error on garbage input
        raise SQLRefusedError(f"not valid SQL: {_first_line(err)[:300]}; fix the syntax ({dialect} "
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
    tables = allowed if callable(allowed) else lambda: allowed
    ctes: set[str] = set()
    for node in root.walk():
        if isinstance(node, forbidden):
            raise SQLRefusedError(f"read-only: the query contains {_kind(node)} ({_snippet(node)}); only reads "
                                  "are allowed")
        if isinstance(node, exp.CTE):
            ctes.add(node.alias_or_name.lower())
        elif isinstance(node, exp.Table):
            _check_table(node, dialect, tables)
        elif isinstance(node, exp.From | exp.Join):
            inner = node.this.this if isinstance(node.this, exp.Lateral) else node.this
            if not isinstance(inner, exp.Table | exp.Subquery | exp.Values | exp.Query):
                raise SQLRefusedError(f"table-valued function: {_snippet(inner)} in FROM is not allowed; read "
                                      "from the allowed tables")
        elif isinstance(node, (exp.Func, *_classes(_PATTERNS))):
            _check_call(node)
    return text, frozenset(ctes)


def _denied_function(name: str | None) -> bool:
    return any(fnmatch.fnmatchcase((name or "").lower(), pattern) for pattern in DENIED_FUNCTIONS)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in _ANSI.sub("", str(err)).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _check_table(table: Any, dialect: str, allowed_tables: Callable[[], frozenset[str]]) -> None:
    from sqlglot import exp

    if not isinstance(table.this, exp.Identifier):
        raise SQLRefusedError(f"table-valued function: {_snippet(table)} is not allowed; read from the allowed "
                              "tables")
    parts = [p for p in (table.catalog, table.db, table.name) if p]
    if len(parts) == 1 and _cte_reference(table):
        return
    ref, allowed = ".".join(parts).lower(), allowed_tables()
    if ref in allowed or (dialect == "sqlite" and ref.startswith("main.") and ref[5:] in allowed):
        return
    names = sorted(allowed)
    shown = ", ".join(names[:30]) + (f" and {len(names) - 30} more" if len(names) > 30 else "")
    raise SQLRefusedError(f"table not allowed: {ref!r} is not one of the tables this query may read ({shown}); "
                          "use only those")


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
