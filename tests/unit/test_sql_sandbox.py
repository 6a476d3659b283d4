"""SQLSandbox on a small SQLite file built here: what may run, what is refused, and that nothing changes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from pilotfish.errors import ConfigError, SQLExecutionError, SQLRefusedError
from pilotfish.tables.sandbox import SQLResult, SQLSandbox

PEOPLE = [(1, "Ada", "London", 1815, 3.5), (2, "Grace", "New York", 1906, 4.0), (3, "Alan", "London", 1912, 2.5),
          (4, "Edsger", "Rotterdam", 1930, 3.0), (5, "Barbara", "Boston", 1939, 4.5)]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, city TEXT, born INTEGER, score REAL);
        CREATE TABLE cities (name TEXT PRIMARY KEY, country TEXT);
        CREATE TABLE secrets (token TEXT);
        CREATE VIEW londoners AS SELECT name FROM people WHERE city = 'London';
        INSERT INTO cities VALUES ('London', 'UK'), ('New York', 'US'), ('Rotterdam', 'NL'), ('Boston', 'US');
        INSERT INTO secrets VALUES ('hunter2');
    """)
    db.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?)", PEOPLE)
    db.commit()
    db.close()
    return path


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Path]:
    """The database file; after the test its bytes are unchanged and no other file appeared beside it."""
    path = _build(tmp_path / "people.db")
    before = _sha256(path)
    yield path
    assert _sha256(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.db"]


@pytest.fixture()
def sandbox(db: Path) -> Iterator[SQLSandbox]:
    box = SQLSandbox(url=f"sqlite:///{db}", tables=["people", "cities", "londoners"], time_limit=0.5)
    yield box
    box.close()


# -- what may run ----------------------------------------------------------------------------------------------
ALLOWED = {
    "select": ("SELECT name FROM people WHERE born < 1900", ["name"], [("Ada",)]),
    "join": ("SELECT p.name, c.country FROM people p JOIN cities c ON c.name = p.city WHERE p.id = 2",
             ["name", "country"], [("Grace", "US")]),
    "cte": ("WITH old AS (SELECT name, born FROM people WHERE born < 1910) SELECT name FROM old ORDER BY born",
            ["name"], [("Ada",), ("Grace",)]),
    "union": ("SELECT name FROM cities WHERE country = 'NL' UNION SELECT name FROM people WHERE id = 1 ORDER BY 1",
              ["name"], [("Ada",), ("Rotterdam",)]),
    "aggregate": ("SELECT city, COUNT(*) AS n FROM people GROUP BY city HAVING n > 1", ["city", "n"], [("London", 2)]),
    "subquery": ("SELECT name FROM people WHERE score = (SELECT MAX(score) FROM people)", ["name"], [("Barbara",)]),
    "recursive_bounded": ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3) "
                          "SELECT SUM(n) FROM c", ["SUM(n)"], [(6,)]),
    "view": ("SELECT name FROM londoners ORDER BY name", ["name"], [("Ada",), ("Alan",)]),
    "case_and_quotes": ('SELECT "NAME" FROM "People" WHERE ID = 3', ["name"], [("Alan",)]),
    "main_prefix": ("SELECT count(*) FROM main.people", ["count(*)"], [(5,)]),
    "cte_shadowing_unlisted_name": ("WITH secrets AS (SELECT 'none' AS token) SELECT token FROM secrets",
                                    ["token"], [("none",)]),
    "printf": ("SELECT printf('%.2f|%-6s|', score, name) AS p FROM people WHERE id = 1", ["p"], [("3.50|Ada   |",)]),
    "like_and_functions": ("SELECT upper(name), round(score) FROM people WHERE name LIKE 'A%' ORDER BY id",
                           ["upper(name)", "round(score)"], [("ADA", 4.0), ("ALAN", 3.0)]),
}


@pytest.mark.parametrize("name", list(ALLOWED))
def test_allowed_queries_return_rows(sandbox: SQLSandbox, name: str) -> None:
    sql, columns, rows = ALLOWED[name]
    result = sandbox.run(sql + " ;\n")
    assert (result.sql, result.columns, result.rows, result.truncated) == (sql, columns, rows, False)
    assert result.seconds >= 0
    assert sandbox.validate(sql + ";") == sql


def test_row_limit_sets_truncated(db: Path) -> None:
    box = SQLSandbox(url=f"sqlite:///{db}", row_limit=2)
    full = box.run("SELECT id FROM people ORDER BY id")
    assert (full.rows, full.truncated) == ([(1,), (2,)], True)
    exact = box.run("SELECT id FROM people WHERE id <= 2")
    assert (len(exact.rows), exact.truncated) == (2, False)
    box.close()


def test_time_limit_stops_a_runaway_recursive_cte(sandbox: SQLSandbox) -> None:
    with pytest.raises(SQLExecutionError, match="took longer than 0.5 s"):
        sandbox.run("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT MAX(n) FROM c")
    assert sandbox.run("SELECT COUNT(*) FROM people").rows == [(5,)]  # the connection is still usable


def test_every_table_when_tables_is_none(db: Path) -> None:
    box = SQLSandbox(url=f"sqlite:///{db}")
    assert box.run("SELECT token FROM secrets").rows == [("hunter2",)]
    with pytest.raises(SQLRefusedError, match="table not allowed: 'sqlite_master'"):
        box.run("SELECT name FROM sqlite_master")
    box.close()


# -- what is refused, one case per rule --------------------------------------------------------------------------
REFUSED = {
    "too_long": ("SELECT 1 " + " " * 10_000, "too long"),
    "empty": ("  ;\n ", "empty statement"),
    "only_a_comment": ("-- nothing here", "empty statement"),
    "unparsable": ("SELEC name FROM people", "not valid SQL"),
    "unbalanced": ("SELECT (name FROM people", "not valid SQL"),
    "nul_character": ("SELECT name FROM people\x00; DROP TABLE people", "NUL character"),
    "stacked": ("SELECT 1; DROP TABLE people", "one statement only"),
    "stacked_after_comment": ("SELECT 1 /* a comment */; DELETE FROM people", "one statement only"),
    "stacked_after_line_comment": ("SELECT 1 -- comment\n; DROP TABLE people", "one statement only"),
    "drop": ("DROP TABLE people", "read-only"),
    "delete": ("DELETE FROM people", "read-only"),
    "update": ("UPDATE people SET name = 'x'", "read-only"),
    "insert": ("INSERT INTO people (name) VALUES ('x')", "read-only"),
    "create": ("CREATE TABLE t (x)", "read-only"),
    "alter": ("ALTER TABLE people ADD COLUMN x TEXT", "read-only"),
    "pragma": ("PRAGMA writable_schema = 1", "read-only"),
    "attach": ("ATTACH DATABASE 'other.db' AS other", "read-only"),
    "detach": ("DETACH DATABASE other", "read-only"),
    "begin": ("BEGIN", "read-only"),
    "vacuum": ("VACUUM", "read-only"),
    "explain": ("EXPLAIN SELECT 1", "read-only"),
    "values_root": ("VALUES (1)", "read-only"),
    "select_into": ("SELECT * INTO copy FROM people", "read-only: the query contains"),
    "data_modifying_cte": ("WITH d AS (DELETE FROM people RETURNING *) SELECT * FROM d", "read-only: the query"),
    "unlisted_table": ("SELECT token FROM secrets", "table not allowed: 'secrets'"),
    "sqlite_master": ("SELECT sql FROM sqlite_master", "table not allowed: 'sqlite_master'"),
    "sqlite_schema": ("SELECT sql FROM main.sqlite_schema", "table not allowed: 'main.sqlite_schema'"),
    "unlisted_in_subquery": ("SELECT name FROM people WHERE name IN (SELECT token FROM secrets)", "table not allowed"),
    "cte_out_of_scope": ("SELECT * FROM (WITH secrets AS (SELECT 1) SELECT * FROM secrets), secrets",
                         "table not allowed: 'secrets'"),
    "cte_reading_itself": ("WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets", "table not allowed"),
    "temp_schema": ("SELECT * FROM temp.people", "table not allowed"),
    "table_valued_pragma": ("SELECT * FROM pragma_table_info('people')", "table-valued function"),
    "table_valued_json_each": ("SELECT value FROM json_each('[1, 2]')", "table-valued function"),
    "load_extension": ("SELECT load_extension('evil.so')", "function not allowed: load_extension()"),
    "readfile": ("SELECT readfile('/etc/passwd')", "function not allowed: readfile()"),
    "writefile": ("SELECT writefile('x.txt', name) FROM people", "function not allowed: writefile()"),
    "zeroblob": ("SELECT length(ZEROBLOB(1000000000))", "function not allowed: zeroblob()"),
    "randomblob": ("SELECT hex(randomblob(100))", "function not allowed: randomblob()"),
    "fts3_tokenizer": ("SELECT fts3_tokenizer('simple')", "function not allowed"),
    "huge_like": ("SELECT name FROM people WHERE name LIKE '" + "%a" * 150 + "'", "pattern too long"),
    "huge_glob": ("SELECT name FROM people WHERE name GLOB '" + "*a" * 150 + "'", "pattern too long"),
    "printf_star_width": ("SELECT printf('%.*c', 1000000000, 'x')", "format width"),
    "printf_huge_width": ("SELECT printf('%2000000000d', 1)", "format width"),
    "printf_computed_format": ("SELECT printf(name, 1) FROM people", "format width"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refusals_name_the_rule(sandbox: SQLSandbox, name: str) -> None:
    sql, reason = REFUSED[name]
    with pytest.raises(SQLRefusedError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        sandbox.validate(sql)
    with pytest.raises(SQLRefusedError):
        sandbox.run(sql)


POSTGRES_REFUSED = {
    "data_modifying_cte": ("WITH d AS (DELETE FROM people RETURNING *) SELECT * FROM d", "read-only"),
    "update_cte": ("WITH u AS (UPDATE people SET name = 'x' RETURNING id) SELECT * FROM u", "read-only"),
    "for_update": ("SELECT * FROM people FOR UPDATE", "read-only"),
    "copy": ("COPY people TO '/tmp/people.csv'", "read-only"),
    "set": ("SET statement_timeout = 0", "read-only"),
    "select_into_temp": ("SELECT 1 AS a INTO TEMP t", "read-only"),
    "pg_sleep": ("SELECT pg_catalog.pg_sleep(10)", "function not allowed: pg_sleep()"),
    "pg_read_file": ("SELECT pg_read_file('postgresql.conf')", "function not allowed"),
    "set_config": ("SELECT set_config('search_path', 'x', false)", "function not allowed"),
    "current_setting": ("SELECT current_setting('data_directory')", "function not allowed"),
    "query_to_xml": ("SELECT query_to_xml('SELECT * FROM secrets', true, true, '')", "function not allowed"),
    "nextval": ("SELECT nextval('people_id_seq')", "function not allowed"),
    "dblink": ("SELECT * FROM dblink('host=x', 'SELECT 1') AS t(a int)", "table-valued function"),
    "generate_series": ("SELECT * FROM generate_series(1, 10)", "table-valued function"),
    "pg_catalog": ("SELECT * FROM pg_catalog.pg_tables", "table not allowed"),
    "pg_user_through_cte": ("WITH pg_user AS (SELECT * FROM pg_user) SELECT * FROM pg_user", "table not allowed"),
    "information_schema": ("SELECT * FROM information_schema.tables", "table not allowed"),
    "huge_regex": ("SELECT name FROM people WHERE name ~ '" + "(a+)+" * 50 + "'", "pattern too long"),
}


@pytest.mark.parametrize("name", list(POSTGRES_REFUSED))
def test_postgres_refusals_without_a_server(name: str) -> None:
    box = SQLSandbox(url="postgresql://reader@db.invalid/shop", tables=["people", "shop.orders"])
    sql, reason = POSTGRES_REFUSED[name]
    with pytest.raises(SQLRefusedError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        box.validate(sql)
    assert box.validate("SELECT o.id FROM shop.orders o JOIN people p ON p.id = o.person") != ""


class _FakeError(Exception):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class _FakePostgres:
    """Stands in for the SQLAlchemy engine and a psycopg connection: records what the sandbox sends."""

    def __init__(self, rows: list[tuple], fail: Exception | None = None) -> None:
        self.rows, self.fail, self.log = rows, fail, []

    def raw_connection(self) -> _FakePostgres:
        return self

    def cursor(self, name: str | None = None) -> _FakePostgres:
        self.log.append(("cursor", name.startswith("pilotfish_sandbox_") if name else None))
        return self

    def execute(self, sql: str) -> None:
        self.log.append(("execute", sql))
        if self.fail is not None and not sql.startswith("SET"):
            raise self.fail
        self.description = [("id",), ("name",)]

    def fetchmany(self, n: int) -> list[tuple]:
        self.log.append(("fetchmany", n))
        return self.rows[:n]

    def rollback(self) -> None:
        self.log.append(("rollback",))

    def close(self) -> None:
        self.log.append(("close",))

    def dispose(self) -> None:
        self.log.append(("dispose",))


def test_postgres_run_is_read_only_timed_and_rolled_back() -> None:
    box = SQLSandbox(url="postgresql://reader@db.invalid/shop", tables=["people"], row_limit=2, time_limit=1.5)
    fake = box._engine = _FakePostgres([(1, "a"), (2, "b"), (3, "c")])
    result = box.run("SELECT id, name FROM people WHERE name LIKE 'a%';")
    assert (result.columns, result.rows, result.truncated) == (["id", "name"], [(1, "a"), (2, "b")], True)
    assert [entry for entry in fake.log if entry[0] == "execute"] == [
        ("execute", "SET TRANSACTION READ ONLY"), ("execute", "SET LOCAL statement_timeout = 1500"),
        ("execute", "SET LOCAL lock_timeout = 1500"), ("execute", "SELECT id, name FROM people WHERE name LIKE 'a%'")]
    assert ("cursor", True) in fake.log and ("fetchmany", 3) in fake.log
    assert fake.log.index(("rollback",)) > fake.log.index(("fetchmany", 3))
    box.close()
    assert fake.log[-1] == ("dispose",)


@pytest.mark.parametrize("state, error, message", [
    ("57014", SQLExecutionError, "took longer than 1.5 s"),
    ("55P03", SQLExecutionError, "for a lock"),
    ("25006", SQLRefusedError, "read-only guard: cannot execute"),
    ("42703", SQLExecutionError, 'the query failed: column "nope" does not exist'),
])
def test_postgres_errors_are_ours(state: str, error: type, message: str) -> None:
    box = SQLSandbox(url="postgresql://reader@db.invalid/shop", tables=["people"], time_limit=1.5)
    text = {"25006": "cannot execute DELETE in a read-only transaction"}.get(state, 'column "nope" does not exist')
    fake = box._engine = _FakePostgres([], _FakeError(text + "\nLINE 1: ...", state))
    with pytest.raises(error, match=message):
        box.run("SELECT nope FROM people")
    assert ("rollback",) in fake.log


def test_postgres_discovers_tables_of_the_search_path() -> None:
    box = SQLSandbox(url="postgres://reader@db.invalid/shop")
    box._engine = _FakePostgres([("public", "People", True), ("sales", "orders", False)])
    assert box.validate("SELECT * FROM people JOIN sales.orders ON true") != ""
    with pytest.raises(SQLRefusedError, match="table not allowed: 'orders'"):
        box.validate("SELECT * FROM orders")


def test_postgres_unreachable_server_is_a_clear_error() -> None:
    box = SQLSandbox(url="postgresql://reader@127.0.0.1:1/shop", tables=["people"], time_limit=1)
    with pytest.raises(SQLExecutionError, match="cannot connect to the PostgreSQL database"):
        box.run("SELECT 1")


# -- the second wall: the SQLite authorizer, with the validator bypassed ------------------------------------------
@pytest.mark.parametrize("sql", [
    "SELECT token FROM secrets", "SELECT sql FROM sqlite_master", "SELECT load_extension('x')",
    "SELECT * FROM json_each('[1]')", "SELECT * FROM pragma_table_info('people')", "PRAGMA writable_schema = 1",
    "ATTACH DATABASE 'other.db' AS other", "VACUUM INTO 'copy.db'", "INSERT INTO people (name) VALUES ('x')",
    "DELETE FROM people", "CREATE TEMP TABLE t (x)", "BEGIN", "REINDEX", "ANALYZE",
    "WITH londoners AS (SELECT token FROM secrets) SELECT * FROM londoners",
])
def test_authorizer_denies_what_the_validator_would_refuse(sandbox: SQLSandbox, sql: str) -> None:
    with pytest.raises(SQLRefusedError, match="read-only guard: .+ is not allowed"):
        sandbox._run_sqlite(sql, frozenset({"londoners"}) if "WITH" in sql else frozenset())


def test_an_allowed_view_reads_its_tables_for_it(db: Path) -> None:
    box = SQLSandbox(url=f"sqlite:///{db}", tables=["londoners"])
    assert box.run("SELECT name FROM londoners ORDER BY name").rows == [("Ada",), ("Alan",)]
    with pytest.raises(SQLRefusedError, match="table not allowed: 'people'"):
        box.run("SELECT name FROM people")
    with pytest.raises(SQLRefusedError, match="read-only guard"):  # a CTE named like the view gains nothing
        box._run_sqlite("WITH londoners AS (SELECT name FROM people) SELECT * FROM londoners", frozenset({"londoners"}))
    box.close()


def test_schema_loads_and_reloads_under_the_authorizer(tmp_path: Path) -> None:
    path = _build(tmp_path / "schema.db")
    box = SQLSandbox(url=f"sqlite:///{path}")
    assert box.run("SELECT COUNT(*) FROM people").rows == [(5,)]  # first statement: SQLite reads its schema
    writer = sqlite3.connect(path)
    writer.execute("CREATE TABLE later (x)")  # another connection changes the schema: ours must reload it
    writer.commit()
    writer.close()
    assert box.run("SELECT name FROM londoners ORDER BY name").rows == [("Ada",), ("Alan",)]
    box.close()


# -- errors from the database --------------------------------------------------------------------------------------
def test_database_errors_become_sql_execution_errors(sandbox: SQLSandbox) -> None:
    with pytest.raises(SQLExecutionError, match="no such column: nope"):
        sandbox.run("SELECT nope FROM people")
    with pytest.raises(SQLExecutionError, match="no such table: ghosts"):
        SQLSandbox(url=sandbox.url, tables=["ghosts"]).run("SELECT * FROM ghosts")


def test_missing_file_is_a_clear_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    for box in (SQLSandbox(url=f"sqlite:///{missing}", tables=["t"]), SQLSandbox(url=f"sqlite:///{missing}")):
        with pytest.raises(SQLExecutionError, match="does not exist"):
            box.run("SELECT * FROM t")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_database_or_cannot_be_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notes.db"
    path.write_text("just text, not SQLite " * 100)
    with pytest.raises(SQLExecutionError, match="cannot read the SQLite database"):
        SQLSandbox(url=f"sqlite:///{path}").run("SELECT 1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite3, "connect", refuse)
    with pytest.raises(SQLExecutionError, match="unable to open database file"):
        SQLSandbox(url=f"sqlite:///{path}", tables=["t"]).run("SELECT 1")


# -- arguments, results, threads -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, bad", [
    ({"url": "sqlite://"}, "in-memory"), ({"url": "sqlite:///:memory:"}, "in-memory"),
    ({"url": "mysql://u@h/db"}, "unsupported database"), ({"url": "people.db"}, "not a database URL"),
    ({"url": "sqlite:///x.db", "tables": "people"}, "list of table names"),
    ({"url": "sqlite:///x.db", "tables": []}, "allows nothing"),
    ({"url": "sqlite:///x.db", "row_limit": 0}, "row_limit=0"),
    ({"url": "sqlite:///x.db", "time_limit": 0}, "time_limit=0"),
    ({"url": "sqlite:///x.db", "max_sql_chars": True}, "max_sql_chars=True"),
])
def test_bad_arguments_are_config_errors(kwargs: dict, bad: str) -> None:
    with pytest.raises(ConfigError, match=bad):
        SQLSandbox(**kwargs)


def test_dialect_from_the_url_without_io(tmp_path: Path) -> None:
    assert SQLSandbox(url=f"sqlite:///{tmp_path}/absent.db").dialect == "sqlite"
    for url in ("postgresql://u:p@db.invalid/x", "postgres://db.invalid/x", "postgresql+psycopg://db.invalid/x"):
        assert SQLSandbox(url=url).dialect == "postgres"
    assert list(tmp_path.iterdir()) == []


def test_to_dict_is_json_safe(sandbox: SQLSandbox) -> None:
    result = SQLResult(sql="SELECT 1", columns=["a", "b", "c", "d", "e"],
                       rows=[(Decimal("1.50"), dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4), b"\x00\x01", None)],
                       truncated=False, seconds=0.01)
    assert result.to_dict()["rows"] == [[1.5, "2024-01-02", "2024-01-02T03:04:00", "<2 bytes>", None]]
    ran = sandbox.run("SELECT name, score, CAST('ab' AS BLOB) AS raw FROM people ORDER BY id LIMIT 1").to_dict()
    assert json.loads(json.dumps(ran))["rows"] == [["Ada", 3.5, "<2 bytes>"]]
    assert set(ran) == {"sql", "columns", "rows", "truncated", "seconds"}


def test_threads_share_one_sandbox(sandbox: SQLSandbox) -> None:
    results: list[list[tuple]] = []

    def work() -> None:
        for _ in range(20):
            results.append(sandbox.run("SELECT COUNT(*) FROM people JOIN cities ON cities.name = people.city").rows)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[(5,)]] * 80


def test_close_then_run_reopens(sandbox: SQLSandbox) -> None:
    assert sandbox.run("SELECT 1").rows == [(1,)]
    sandbox.close()
    sandbox.close()
    assert sandbox.run("SELECT 2").rows == [(2,)]


def test_import_stays_light() -> None:
    code = ("import sys, pilotfish.tables.sandbox; "
            "print(sorted(m for m in ('sqlglot', 'sqlalchemy', 'psycopg') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
