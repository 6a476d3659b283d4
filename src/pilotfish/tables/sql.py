"""SQLGenerator: the LLM writes one SELECT over the linked schema; the sandbox runs it; votes and a repair
make it reliable.

The prompt shows only the linked tables (all tables when the database is small), as CREATE statements with
three example rows each, and notes where the question's values were found. With `samples > 1` a greedy
statement and `samples - 1` sampled ones are run and the result set most of them agree on wins
(self-consistency over execution results). A statement that fails, or finds nothing, is sent back once with
the problem for a repair.

>>> from pilotfish.llms.fake import FakeLLM
>>> from pilotfish.tables.catalog import TableCatalog
>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "sales.csv").write_text("region,margin\\nWest,0.31\\nEast,0.12\\n")
>>> catalog = TableCatalog.for_files([folder / "sales.csv"])
>>> llm = FakeLLM(replies=["```sql\\nSELECT region FROM sales ORDER BY margin DESC LIMIT 1\\n```"])
>>> found = SQLGenerator(llm=llm).answer("Which region had the highest margin?", catalog)
>>> found.sql, found.result.rows
('SELECT region FROM sales ORDER BY margin DESC LIMIT 1', [('West',)])
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pilotfish.errors import ConfigError, SQLExecutionError, SQLRefusedError, TableError
from pilotfish.llms.base import LLM, Usage
from pilotfish.prompts.builder import load_template
from pilotfish.tables.catalog import TableCatalog
from pilotfish.tables.demos import SQLDemoPool
from pilotfish.tables.linker import LinkedSchema, TableLinker

_FENCE = re.compile(r"```(?:sql|sqlite|postgresql)?\s*(.*?)(?:```|$)", re.S | re.I)
# a reply that starts like a statement is taken whole, so the sandbox judges all of it
_STATEMENT = re.compile(r"\s*(--|/\*|\(|(SELECT|WITH|VALUES|INSERT|UPDATE|DELETE|REPLACE|MERGE|DROP|CREATE|ALTER|"
                        r"TRUNCATE|PRAGMA|ATTACH|DETACH|VACUUM|REINDEX|ANALYZE|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|"
                        r"RELEASE|EXPLAIN|SET|COPY|GRANT|REVOKE|CALL|DO|LOAD|COMMENT)\b)", re.I)
_DIALECT_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


@dataclass(frozen=True)
class SQLAnswer:
    """What the table path found: the chosen SQL and its result (or the error), with every candidate, repair
    and the prompt, for the trace."""

    question: str
    sql: str | None
    result: Any  # SQLResult | None
    error: str | None
    linked: LinkedSchema | None
    tables: list[str] = field(default_factory=list)  # the tables the prompt showed
    candidates: list[dict[str, Any]] = field(default_factory=list)
    repairs: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0

    @property
    def columns(self) -> list[str]:
        return list(self.result.columns) if self.result is not None else []

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        return list(self.result.rows) if self.result is not None else []

    def to_dict(self) -> dict[str, Any]:
        result = self.result.to_dict() if self.result is not None else {"columns": [], "rows": []}
        return {"question": self.question, "sql": self.sql, "columns": result["columns"], "rows": result["rows"],
                "error": self.error, "tables": self.tables,
                "linked": self.linked.to_dict() if self.linked is not None else None,
                "candidates": self.candidates, "repairs": self.repairs, "prompt": self.messages,
                "seconds": round(self.seconds, 3)}


class SQLGenerator:
    """Question + catalog -> linked schema -> SQL written by `llm` -> run read-only in the sandbox."""

    def __init__(self, *, llm: LLM, linker: TableLinker | None = None, samples: int = 1, temperature: float = 0.7,
                 repair: bool = True, all_tables_below: int = 12, example_rows: int = 3, max_tokens: int = 320,
                 row_limit: int = 200, time_limit: float = 5.0, demos: SQLDemoPool | None = None,
                 demo_k: int = 2) -> None:
        if samples < 1:
            raise ConfigError(f"samples must be >= 1, got {samples}")
        if row_limit < 1 or time_limit <= 0:
            raise ConfigError(f"need row_limit >= 1 and time_limit > 0, got {row_limit}, {time_limit}")
        self.llm, self.linker = llm, linker or TableLinker()
        self.samples, self.temperature, self.repair = samples, temperature, repair
        self.all_tables_below, self.example_rows, self.max_tokens = all_tables_below, example_rows, max_tokens
        self.row_limit, self.time_limit = row_limit, time_limit
        self.demos, self.demo_k = demos, demo_k

    def answer(self, question: str, catalog: TableCatalog, *, linked: LinkedSchema | None = None) -> SQLAnswer:
        start = time.perf_counter()
        linked = linked or self.linker.link(question, catalog)
        if not linked.tables:
            return SQLAnswer(question, None, None, "no table to query: ingest a table file or give --table FILE",
                             linked, seconds=time.perf_counter() - start)
        tables = self.prompt_tables(linked, catalog)
        try:
            sandbox = catalog.sandbox(tables, row_limit=self.row_limit, time_limit=self.time_limit)
        except TableError as err:
            return SQLAnswer(question, None, None, str(err), linked, tables, seconds=time.perf_counter() - start)
        try:
            dialect = _DIALECT_NAMES.get(sandbox.dialect, sandbox.dialect)
            messages = self.messages(question, linked, catalog, tables, dialect)
            usage = Usage()
            replies = self.llm.generate(messages, max_tokens=self.max_tokens, temperature=0.0)
            if self.samples > 1:
                replies += self.llm.generate(messages, n=self.samples - 1, max_tokens=self.max_tokens,
                                             temperature=self.temperature)
            candidates = []
            for reply in replies:
                usage = usage + reply.usage
                candidates.append(_execute(sandbox, extract_sql(reply.text)))
            best = vote(candidates)
            repairs: list[dict[str, Any]] = []
            if self.repair and (best["error"] is not None or not best["result"].rows):
                problem = (best["error"] or "it ran but returned no rows") + _columns_hint(best, catalog, tables)
                repair_messages = [*messages, {"role": "assistant", "content": f"```sql\n{best['sql']}\n```"},
                                   {"role": "user", "content": load_template("sql_repair").format(
                                       sql=best["sql"], problem=problem, dialect=dialect)}]
                reply = self.llm.generate(repair_messages, max_tokens=self.max_tokens, temperature=0.0)[0]
                usage = usage + reply.usage
                fixed = _execute(sandbox, extract_sql(reply.text))
                repairs.append({"sql": fixed["sql"], "problem": problem, "error": fixed["error"],
                                "rows": len(fixed["result"].rows) if fixed["result"] is not None else None})
                if fixed["error"] is None and (best["error"] is not None or fixed["result"].rows):
                    best = fixed
        finally:
            sandbox.close()
        return SQLAnswer(question, best["sql"], best["result"], best["error"], linked, tables,
                         [_summary(c) for c in candidates], repairs, messages, usage, time.perf_counter() - start)

    # -- the prompt --------------------------------------------------------------------------------
    def prompt_tables(self, linked: LinkedSchema, catalog: TableCatalog) -> list[str]:
        """The linked tables of the best table's database, or all its tables when it has few, plus tables
        whose foreign keys join two of those."""
        home = catalog.url_of(catalog.card(linked.tables[0].name))
        same_db = [c for c in catalog.cards if catalog.url_of(c) == home]
        if len(same_db) < self.all_tables_below:
            return [c.name for c in same_db]
        top = linked.tables[0].score or 1.0
        chosen = [t.name for t in linked.tables if catalog.url_of(catalog.card(t.name)) == home
                  and t.score >= 0.25 * top]
        lowered = {c.lower() for c in chosen}
        for card in same_db:
            targets = {fk.split(" -> ")[1].rsplit(".", 1)[0].lower() for fk in card.foreign_keys}
            if card.name.lower() not in lowered and len(targets & lowered) >= 2:
                chosen.append(card.name)
        return chosen

    def messages(self, question: str, linked: LinkedSchema, catalog: TableCatalog, tables: Sequence[str],
                 dialect: str) -> list[dict[str, str]]:
        blocks = []
        for name in tables:
            card = catalog.card(name)
            block = card.create_sql()
            if self.example_rows:
                try:
                    columns, rows = catalog.rows(name, limit=self.example_rows)
                    lines = ["\t".join(columns)] + ["\t".join(_cell(v) for v in row) for row in rows]
                    block += f"\n/* {len(rows)} example rows of {card.name}:\n" + "\n".join(lines) + "\n*/"
                except (SQLRefusedError, SQLExecutionError, TableError):
                    pass
            blocks.append(block)
        notes = [f'-- "{v.matched}" in the question is likely {v.table}.{v.column} = \'{v.value}\''
                 for v in linked.values if v.table in tables]
        if self.demos is not None:
            shown = self.demos.select(question, self.demo_k)
            if shown:
                notes.insert(0, "-- Examples of questions and their SQL, over other tables:\n" + "\n".join(
                    f"-- Q: {' '.join(d['question'].split())}\n-- SQL: {' '.join(d['sql'].split())}" for d in shown))
        user = load_template("sql_user").format(schema="\n\n".join(blocks), notes="\n".join(notes),
                                                question=question.strip())
        return [{"role": "system", "content": load_template("sql_system").format(dialect=dialect)},
                {"role": "user", "content": user}]


def extract_sql(text: str) -> str:
    """The SQL of a reply: the first fenced block, else the text from its first SELECT or WITH."""
    fenced = _FENCE.search(text)
    sql = fenced.group(1) if fenced else text
    if not fenced and not _STATEMENT.match(sql):  # prose first: the SQL starts at its first SELECT or WITH
        match = re.search(r"\b(SELECT|WITH)\b", sql, re.I)
        sql = sql[match.start():] if match else sql
    sql = sql.strip()
    return sql[:-1].strip() if sql.endswith(";") and sql.count(";") == 1 else sql


def vote(candidates: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The candidate whose result set most candidates share (rows compared as sorted multisets); ties go
    to the earliest (the greedy one). Candidates that ran beat those that failed; non-empty beats empty."""
    ran = [c for c in candidates if c["error"] is None]
    if not ran:
        return candidates[0]
    useful = [c for c in ran if c["result"].rows] or ran
    keys = [_result_key(c["result"]) for c in useful]
    counts = Counter(keys)
    best = max(range(len(useful)), key=lambda i: (counts[keys[i]], -i))
    return useful[best]


def _execute(sandbox: Any, sql: str) -> dict[str, Any]:
    try:
        return {"sql": sql, "result": sandbox.run(sql), "error": None}
    except SQLRefusedError as err:
        return {"sql": sql, "result": None, "error": f"refused: {err}"}
    except SQLExecutionError as err:
        return {"sql": sql, "result": None, "error": f"failed: {err}"}


def _columns_hint(candidate: dict[str, Any], catalog: TableCatalog, tables: Sequence[str]) -> str:
    """For an unknown column or table, the columns each shown table really has (small models invent names)."""
    error = (candidate["error"] or "").lower()
    if "no such column" not in error and "no such table" not in error and "does not exist" not in error:
        return ""
    shown = "; ".join(f"{t}({', '.join(c.name for c in catalog.card(t).columns)})" for t in tables)
    return f". The tables and their only columns are: {shown}"


def _summary(candidate: dict[str, Any]) -> dict[str, Any]:
    result = candidate["result"]
    return {"sql": candidate["sql"], "error": candidate["error"], "rows": len(result.rows) if result else None}


def _result_key(result: Any) -> tuple[Any, ...]:
    return tuple(sorted(tuple(_cell(v) for v in row) for row in result.rows))


def _cell(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = " ".join(str(value).split()) if value is not None else "NULL"
    return text if len(text) <= 60 else text[:59] + "…"
