"""Tables end to end: a CSV and a workbook ingested by the CLI, listed, queried with SQL written by a real model
(qwen2.5-0.5b: SmolLM2-135M cannot write SQL), answered by `ask` with the SQL and rows in its JSON, and the bad
inputs a user meets, each a clear `error:` line that loses nothing already stored."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from .conftest import run_cli
from .test_cli import assert_clean_error

pytestmark = pytest.mark.e2e
SQL_LLM = "qwen2.5-0.5b"
QUESTION = "What was the total revenue in 2023?"


def _workbook(path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference

    wb = Workbook()
    ws = wb.active
    ws.title = "Heads"
    for row in (["Region", "Head"], ["West", "Lin"], ["East", "Ng"], ["North", "Okafor"]):
        ws.append(row)
    chart = BarChart()
    chart.add_data(Reference(ws, min_col=1, min_row=1, max_row=3))
    wb.create_chartsheet("Chart").add_chart(chart)
    wb.save(path)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tables")
    (folder / "sales.csv").write_text('region,year,revenue\nWest,2023,"1,200"\nEast,2023,800\nWest,2022,700\n'
                                      "North,2023,950\n")
    _workbook(folder / "heads.xlsx")
    path = folder / "kb"
    result = run_cli("ingest", str(folder / "sales.csv"), str(folder / "heads.xlsx"), "--kb", str(path), "--no-dense")
    assert result.returncode == 0, result.stderr
    assert "2 tables" in result.stdout and "skipped sheet 'Chart': chart sheet" in result.stderr
    return path


def test_tables_lists_cards(kb: Path) -> None:
    shown = run_cli("tables", "--kb", str(kb))
    assert shown.returncode == 0 and "sales" in shown.stdout and "revenue (integer: 1200" in shown.stdout
    cards = {c["name"]: c for c in json.loads(run_cli("tables", "--kb", str(kb), "--json").stdout)}
    assert set(cards) == {"sales", "heads"} and cards["sales"]["rows"] == 4


def test_sql_and_ask_answer_an_aggregate_over_rows(kb: Path) -> None:
    result = run_cli("sql", QUESTION, "--kb", str(kb), "--llm", SQL_LLM, "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["rows"] == [[2950]] and "sum" in found["sql"].lower() and found["error"] is None
    human = run_cli("sql", QUESTION, "--kb", str(kb), "--llm", SQL_LLM, "--show-sql")
    assert human.returncode == 0 and "SQL SELECT" in human.stdout and "2950" in human.stdout
    asked = run_cli("ask", QUESTION, "--kb", str(kb), "--llm", SQL_LLM, "--max-tokens", "64", "--json")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["rows"] == [[2950]] and answer["sql"] and answer["answered"]
    assert "2950" in answer["answer"].replace(",", "")
    assert "sql:sales" in [c["chunk_id"] for c in answer["citations"]]
    link = answer["trace"][0]
    assert link["node"] == "link_tables" and link["outputs"]["tables"]["route"] == "tables"


def test_ask_over_one_table_file_without_a_knowledge_base(tmp_path: Path) -> None:
    table = tmp_path / "people.csv"
    table.write_text("name,age\nAda,36\nGrace,85\nAlan,41\n")
    result = run_cli("ask", "How many people are older than 40?", "--table", str(table), "--llm", SQL_LLM, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["rows"] == [[2]] and "2" in answer["answer"]
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "a", "question": "How many people are there?", "table": str(table)}) + "\n")
    batch = run_cli("ask", "--questions", str(questions), "--kb", str(tmp_path / "none"), "--llm", SQL_LLM)
    assert batch.returncode == 0, batch.stderr
    line = json.loads(batch.stdout)
    assert line["id"] == "a" and line["rows"] == [[3]]


def test_bad_table_input_is_a_clear_error_and_keeps_the_tables(kb: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    bad = run_cli("ingest", str(tmp_path / "empty.csv"), str(tmp_path / "ragged.csv"), "--kb", str(kb))
    assert bad.returncode == 1 and "empty.csv" in bad.stderr and "line 3" in bad.stderr
    assert_clean_error(run_cli("sql", QUESTION, "--kb", str(kb), "--table", str(tmp_path / "empty.csv")),
                       "give one of --kb, --database and --table")
    assert_clean_error(run_cli("sql", QUESTION, "--database", "postgresql://pf:hunter2@127.0.0.1:1/none"),
                       "cannot read the database postgresql://pf:***@")
    assert_clean_error(run_cli("ingest", "--kb", str(kb)), "give files or folders to ingest, or --database URL")
    assert_clean_error(run_cli("ask", QUESTION, "--table", str(tmp_path / "ragged.csv")), "line 3")
    listed = json.loads(run_cli("tables", "--kb", str(kb), "--json").stdout)
    assert {c["name"] for c in listed} == {"sales", "heads"}  # nothing already stored was lost


def test_a_registered_database_that_goes_away(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE orders (id INTEGER, customer TEXT, total REAL)")
        c.execute("INSERT INTO orders VALUES (1, 'Ada', 10.5)")
    kb = tmp_path / "kb"
    done = run_cli("ingest", "--database", f"sqlite:///{db}", "--kb", str(kb), "--no-dense")
    assert done.returncode == 0, done.stderr
    db.unlink()
    gone = run_cli("sql", "How many orders are there?", "--kb", str(kb), "--llm", "smollm2-135m", "--json")
    assert_clean_error(gone, "no SQLite database at", "moved or deleted")
    assert not db.exists()  # reading never creates an empty database in its place
