"""`pilotfish tables` and `pilotfish sql`: the tables a knowledge base holds, and the table path alone.

    pilotfish tables --kb .pilotfish
    pilotfish sql "Which region had the highest margin?" --kb .pilotfish --show-sql
    pilotfish sql --questions q.jsonl --database sqlite:///shop.db --out answers.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pilotfish.answer.spec import DEFAULT_LLM
from pilotfish.cli.common import DbOpt, KbOpt, _quiet_libraries, check_question_or_batch, err, fail, out, print_table
from pilotfish.errors import PilotfishError, QueryError, TableError


def tables(
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the cards as JSON.")] = False,
) -> None:
    """List the tables of a knowledge base: name, source, rows and columns with types and sample values."""
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.knowledge.tables import redact

    try:
        catalog = KnowledgeBase.open(kb, db=db).tables()
    except PilotfishError as e:
        fail(str(e))
    if as_json:
        out.print_json(json.dumps([{**c.to_dict(), "database": redact(c.database) if c.database else None,
                                    "card": c.text()} for c in catalog.cards]))
        return
    if not catalog.cards:
        out.print(f"{kb} holds no tables; add CSV, TSV, XLSX or Parquet files with `pilotfish ingest FILE --kb {kb}` "
                  "or a database with `pilotfish ingest --database URL`", soft_wrap=True)
        return
    table = Table("table", "source", "rows", "columns (type: samples)")
    for card in catalog.cards:
        columns = "\n".join(f"{c.name} ({c.type}" + (f": {', '.join(c.samples)})" if c.samples else ")")
                            for c in card.columns)
        source = redact(card.database) if card.database else card.source + (f" [{card.sheet}]" if card.sheet else "")
        table.add_row(card.name, escape(source), str(card.rows), escape(columns))
    print_table(table)


def sql(
    question: Annotated[str | None, typer.Argument(help="The question.")] = None,
    kb: Annotated[Path | None, typer.Option("--kb", help="Knowledge-base folder whose tables to query.",
                                            envvar="PILOTFISH_KB")] = None,
    db: DbOpt = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL of a database to query instead.")] = None,
    table: Annotated[Path | None, typer.Option(help="A CSV, TSV, XLSX or Parquet file to query instead.")] = None,
    llm: Annotated[str | None, typer.Option(help=f"The SQL writer (default {DEFAULT_LLM}).",
                                            envvar="PILOTFISH_LLM")] = None,
    samples: Annotated[int, typer.Option(help="SQL candidates, voted by their results.")] = 1,
    repair: Annotated[bool, typer.Option(help="Send a failed or empty statement back once.")] = True,
    depth: Annotated[int, typer.Option(help="Tables linked per question.")] = 3,
    row_limit: Annotated[int, typer.Option(help="Most rows returned.")] = 200,
    demos: Annotated[Path | None, typer.Option(help='JSONL pool of {"question", "sql"} demonstrations.')] = None,
    show_sql: Annotated[bool, typer.Option("--show-sql", help="Print the SQL and the linked schema.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    questions: Annotated[Path | None, typer.Option(help='JSONL of {"id", "question"}: batch mode.')] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Batch results file (default stdout).")] = None,
) -> None:
    """Answer with SQL alone: link tables, write one read-only SELECT, run it in the sandbox, print the rows."""
    from pilotfish.cli.search import _read_jsonl_records, _write_lines

    _quiet_libraries()
    try:
        check_question_or_batch(question, questions)
        catalog = open_catalog(kb, db, database, table)
        writer = _writer(llm, samples=samples, repair=repair, depth=depth, row_limit=row_limit, demos=demos)
        if questions is not None:
            records = _read_jsonl_records(questions, "question")
            lines = [json.dumps(_record(r["id"], writer.answer(r["question"], catalog))) for r in records]
            _write_lines(lines, output)
            return
        assert question is not None
        found = writer.answer(question, catalog)
    except PilotfishError as e:
        fail(str(e))
    if as_json:
        out.print_json(json.dumps(found.to_dict()))
    else:
        _print_found(found, show_sql)
    if found.error is not None:
        raise typer.Exit(1)


def open_catalog(kb: Path | None, db: str | None, database: str | None, table: Path | None) -> Any:
    """The tables of exactly one of --kb, --database and --table."""
    from pilotfish.tables.catalog import TableCatalog

    given = [name for name, value in (("--kb", kb), ("--database", database), ("--table", table)) if value]
    if len(given) > 1:
        raise QueryError(f"give one of --kb, --database and --table, not {' and '.join(given)}")
    if database is not None:
        return TableCatalog.for_database(database)
    if table is not None:
        if not table.is_file():
            raise TableError(f"no table file at {table}; give a CSV, TSV, XLSX or Parquet file")
        return TableCatalog.for_files([table])
    from pilotfish.knowledge.base import KnowledgeBase

    catalog = KnowledgeBase.open(kb or Path(".pilotfish"), db=db).tables()
    if not catalog.cards:
        raise TableError(f"{kb or '.pilotfish'} holds no tables; ingest a CSV, TSV, XLSX or Parquet file, or "
                         "register a database with `pilotfish ingest --database URL`")
    return catalog


def _writer(llm: str | None, **options: Any) -> Any:
    from pilotfish.llms import resolve_llm
    from pilotfish.tables.demos import SQLDemoPool
    from pilotfish.tables.linker import TableLinker
    from pilotfish.tables.sql import SQLGenerator

    depth, demos = options.pop("depth"), options.pop("demos")
    pool = SQLDemoPool.from_file(demos) if demos is not None else None
    return SQLGenerator(llm=resolve_llm(llm or DEFAULT_LLM), linker=TableLinker(depth=depth), demos=pool, **options)


def _record(qid: str, found: Any) -> dict[str, Any]:
    data = found.to_dict()
    return {"id": qid, "sql": data["sql"], "columns": data["columns"], "rows": data["rows"], "error": data["error"]}


def _print_found(found: Any, show_sql: bool) -> None:
    if show_sql:
        linked = found.linked.to_dict() if found.linked is not None else {"tables": [], "values": []}
        tables = ", ".join(f"{t['name']} ({t['score']:.2f})" for t in linked["tables"])
        out.print(f"[bold]linked tables[/] {escape(tables)}", soft_wrap=True)
        for v in linked["values"]:
            out.print(f"  [dim]{escape(v['matched'])!r} -> {escape(v['table'])}.{escape(v['column'])} = "
                      f"{escape(v['value'])!r}[/]", soft_wrap=True, highlight=False)
        for repair in found.repairs:
            out.print(f"[dim]repaired after: {escape(repair['problem'])}[/]", soft_wrap=True, highlight=False)
        out.print(f"[bold]SQL[/] {escape(found.sql or '(none)')}", soft_wrap=True, highlight=False)
    if found.error is not None:
        err.print(f"[bold red]error:[/] {escape(found.error)}", soft_wrap=True, highlight=False)
        return
    result = Table(*found.columns)
    for row in found.result.to_dict()["rows"]:
        result.add_row(*(escape(str(v)) if v is not None else "" for v in row))
    print_table(result)
    more = " (more rows were cut: raise --row-limit)" if found.result.truncated else ""
    out.print(f"[dim]{len(found.rows)} rows{more}, {found.seconds:.1f}s[/]", soft_wrap=True)
