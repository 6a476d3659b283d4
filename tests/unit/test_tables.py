"""The table path with the fake LLM: linking, SQL writing with votes and repair, row evidence, the graph's
table nodes and the [tables] spec."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pilotfish.answer import build
from pilotfish.answer.spec import PipelineSpec
from pilotfish.answer.table_nodes import route_for
from pilotfish.errors import ConfigError
from pilotfish.llms.fake import FakeLLM
from pilotfish.tables.catalog import TableCatalog
from pilotfish.tables.evidence import TableEvidence
from pilotfish.tables.linker import TableLinker
from pilotfish.tables.sql import SQLGenerator, extract_sql, vote


@pytest.fixture()
def catalog(tmp_path: Path) -> TableCatalog:
    (tmp_path / "sales.csv").write_text("region,year,revenue,cost\nWest,2023,1200,900\nEast,2023,800,500\n"
                                        "New York City,2023,950,400\nWest,2022,700,650\n")
    (tmp_path / "staff.csv").write_text("name,office,role\nAda,West,engineer\nGrace,East,admiral\n")
    return TableCatalog.for_files([tmp_path / "sales.csv", tmp_path / "staff.csv"], folder=tmp_path)


def test_linker_ranks_tables_and_links_values_exactly_fuzzily_and_by_initials(catalog: TableCatalog) -> None:
    linker = TableLinker(depth=2)
    linked = linker.link("What was the revenue in NYC in 2023?", catalog)
    assert linked.table_names[0] == "sales"
    assert [(v.column, v.value) for v in linked.values][:1] == [("region", "New York City")]
    assert any(c.column == "revenue" for c in linked.columns)
    misspelt = linker.link("Who works in the Wesst office?", catalog)
    assert ("staff", "office", "West") in {(v.table, v.column, v.value) for v in misspelt.values}
    assert linker.link("Which role does Grace have?", catalog).table_names[0] == "staff"
    assert TableLinker().link("anything", TableCatalog([])).tables == []


def test_extract_sql_and_vote() -> None:
    assert extract_sql("Here:\n```sql\nSELECT 1;\n```\nDone") == "SELECT 1"
    assert extract_sql("The query is SELECT a FROM t") == "SELECT a FROM t"

    class R:
        def __init__(self, rows: list[tuple[int]]) -> None:
            self.rows = rows

    cands = [{"sql": "a", "result": R([(1,)]), "error": None}, {"sql": "b", "result": R([(2,)]), "error": None},
             {"sql": "c", "result": R([(2,)]), "error": None}, {"sql": "d", "result": None, "error": "failed"}]
    assert vote(cands)["sql"] == "b"  # two candidates agree on (2,)
    assert vote(cands[:2])["sql"] == "a"  # a tie goes to the greedy one
    assert vote([cands[3], {"sql": "e", "result": R([]), "error": None}])["sql"] == "e"  # ran beats failed


def test_generator_repairs_a_failing_statement_once(catalog: TableCatalog) -> None:
    llm = FakeLLM(replies=["SELECT margin FROM sales", "```sql\nSELECT SUM(revenue) FROM sales WHERE year = 2023\n```"])
    found = SQLGenerator(llm=llm).answer("What was the total revenue in 2023?", catalog)
    assert found.error is None and found.rows == [(2950,)]
    assert found.repairs[0]["problem"].startswith("failed:") and "margin" in found.repairs[0]["problem"]
    repair = llm.calls[1]["messages"][-1]["content"]
    assert "no such column" in repair and "sales(region, year, revenue, cost)" in repair  # the real columns
    assert found.to_dict()["candidates"][0]["error"].startswith("failed")


def test_generator_never_runs_a_write_and_reports_the_refusal(catalog: TableCatalog, tmp_path: Path) -> None:
    db = tmp_path / "tables.db"
    before = db.read_bytes()
    llm = FakeLLM(replies=["DROP TABLE sales", "DELETE FROM sales"])
    found = SQLGenerator(llm=llm).answer("Remove every sale", catalog)
    assert found.sql == "DROP TABLE sales" and found.error.startswith("refused")
    assert found.repairs[0]["error"].startswith("refused")
    assert db.read_bytes() == before and sqlite3.connect(db).execute("SELECT COUNT(*) FROM sales").fetchone() == (4,)


def test_prompt_shows_linked_tables_example_rows_and_value_notes(catalog: TableCatalog) -> None:
    llm = FakeLLM(replies=["SELECT revenue FROM sales WHERE region = 'New York City'"])
    generator = SQLGenerator(llm=llm, all_tables_below=1)  # link: show only the linked tables
    found = generator.answer("Revenue of NYC?", catalog)
    prompt = llm.calls[0]["messages"][1]["content"]
    assert found.tables == ["sales"] and 'CREATE TABLE "sales"' in prompt and "staff" not in prompt
    assert "example rows of sales" in prompt and "West\t2023\t1200\t900" in prompt
    assert "\"NYC\" in the question is likely sales.region = 'New York City'" in prompt
    assert SQLGenerator(llm=llm).prompt_tables(found.linked, catalog) == ["sales", "staff"]  # a small database


def test_table_evidence_shows_small_tables_whole_and_best_rows_of_large_ones(tmp_path: Path) -> None:
    rows = "\n".join(f"City{i},{i}" for i in range(100))
    (tmp_path / "pop.csv").write_text("city,people\n" + rows + "\nLisbon,545000\n")
    catalog = TableCatalog.for_files([tmp_path / "pop.csv"])
    passage = TableEvidence(rows=3).select("How many people live in Lisbon?", catalog)[0]
    assert passage.chunk_id.startswith("table:pop#") and "101" in passage.chunk_id.split("#")[1].split(",")
    assert "| 101 | Lisbon | 545000 |" in passage.text and passage.text.count("\n") == 3 + 2


def test_route_rules() -> None:
    base = {"tables": 1, "values": 0, "columns": 0, "cue": False, "text": True}
    assert route_for(base)[0] == "text"
    assert route_for({**base, "values": 1})[0] == "both"
    assert route_for({**base, "values": 1, "cue": True})[0] == "tables"
    assert route_for({**base, "columns": 2, "cue": True})[0] == "tables"
    assert route_for({**base, "text": False})[0] == "tables"
    assert route_for({**base, "tables": 0, "values": 3, "cue": True})[0] == "text"


def _sql_llm(messages: list[dict[str, str]]) -> str:
    if "SELECT statement" in messages[0]["content"]:
        return "```sql\nSELECT region, revenue - cost AS margin FROM sales WHERE year = 2023 ORDER BY margin DESC " \
               "LIMIT 1\n```"
    return "New York City had the highest margin in 2023 [1]."


def test_pipeline_over_a_table_answers_from_sql_and_cites_it(catalog: TableCatalog) -> None:
    pipeline = build({"answer": {"llm": "fake"}, "tables": {}}, None, tables=catalog,
                     llms={"fake": FakeLLM(respond=_sql_llm)})
    answer = pipeline.run("Which region had the highest margin in 2023?")
    assert answer.answered and "New York City" in answer.text
    assert answer.sql.startswith("SELECT region") and answer.rows == [["New York City", 550]]
    assert answer.citations[0].chunk_id == "sql:sales" and answer.evidence[0].retriever == "sql"
    nodes = [s.node for s in answer.trace]
    assert nodes[:4] == ["link_tables", "retrieve", "sql", "gate"]  # SQL found rows: no row evidence
    link = answer.trace[0].outputs["tables"]
    assert link["route"] == "tables" and link["linked"]["tables"][0]["name"] == "sales"
    assert answer.to_dict()["sql"] == answer.sql
    prompt = next(s for s in answer.trace if s.node == "generate").inputs["messages"][1]["content"]
    assert 'Table sales answers "Which region had the highest margin in 2023?" with: region = New York City; ' \
        "margin = 550." in prompt and answer.evidence[0].metadata["sql"] == answer.sql
    abstains = build({"answer": {"llm": "fake"}, "tables": {}}, None, tables=catalog, llms={"fake": FakeLLM(
        respond=lambda m: _sql_llm(m) if "SELECT statement" in m[0]["content"] else "I cannot answer this from the "
        "documents.")}).run("Which region had the highest margin in 2023?")
    assert abstains.text == "region = New York City; margin = 550 [1]." and abstains.answered


def test_pipeline_without_sql_reads_rows_and_without_tables_skips_the_table_nodes(catalog: TableCatalog) -> None:
    llm = FakeLLM(replies=["Grace is an admiral [1]."])
    pipeline = build({"answer": {"llm": "fake"}, "tables": {"sql": False}}, None, tables=catalog, llms={"fake": llm})
    assert "sql" not in pipeline.spec.nodes
    answer = pipeline.run("What is the role of Grace?")
    assert answer.sql is None and answer.evidence[0].chunk_id == "table:staff#1,2"
    assert "| 2 | Grace | East | admiral |" in llm.calls[0]["messages"][1]["content"]
    empty = build({"answer": {"llm": "fake"}, "tables": {}}, None, tables=TableCatalog([]), llms={"fake": llm})
    skipped = empty.run("What is the role of Grace?")
    assert [s.node for s in skipped.trace][:3] == ["link_tables", "retrieve", "gate"] and not skipped.answered


def test_tables_spec_is_checked() -> None:
    assert PipelineSpec.parse({"answer": {}, "tables": {"samples": 3}}).tables.samples == 3
    with pytest.raises(ConfigError, match="route must be one of auto, tables, text, both"):
        PipelineSpec.parse({"answer": {}, "tables": {"route": "sql"}})
    with pytest.raises(ConfigError, match="must be positive"):
        PipelineSpec.parse({"answer": {}, "tables": {"depth": 0}})
    with pytest.raises(ConfigError, match="node 'link_tables' needs a \\[tables\\] table"):
        PipelineSpec.parse({"answer": {}, "pipeline": {"nodes": ["link_tables", "retrieve", "sql", "generate"]}})
    with pytest.raises(ConfigError, match="no \\[tables\\] table"):
        build({"answer": {"llm": "fake"}}, None, tables=TableCatalog([]), llms={"fake": FakeLLM(replies=["x"])})


def test_sql_demonstrations_from_a_pool_file(catalog: TableCatalog, tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"question": "How many pets are there?", "sql": "SELECT COUNT(*) FROM pets"}\n'
                    '{"question": "Name the oldest dog.", "sql": "SELECT name FROM dogs ORDER BY age DESC LIMIT 1"}\n')
    (tmp_path / "p.toml").write_text('[answer]\nllm = "fake"\n[tables]\ndemos = "pool.jsonl"\ndemo_k = 1\n')
    llm = FakeLLM(respond=_sql_llm)
    pipeline = build(tmp_path / "p.toml", None, tables=catalog, llms={"fake": llm})
    pipeline.run("How many regions are there?")
    prompt = llm.calls[0]["messages"][1]["content"]
    assert "-- Q: How many pets are there?\n-- SQL: SELECT COUNT(*) FROM pets" in prompt and "dogs" not in prompt
    (tmp_path / "bad.jsonl").write_text('{"question": "x"}\n')
    with pytest.raises(ConfigError, match='demonstration 1 needs a non-empty "question" and "sql"'):
        build({"answer": {"llm": "fake"}, "tables": {"demos": str(tmp_path / "bad.jsonl")}}, None,
              tables=catalog, llms={"fake": llm})
    with pytest.raises(ConfigError, match="does not exist"):
        build({"answer": {"llm": "fake"}, "tables": {"demos": str(tmp_path / "none.jsonl")}}, None,
              tables=catalog, llms={"fake": llm})
