"""Tables in a knowledge base: table files become SQL tables with searchable cards, databases register by URL,
re-ingest replaces, prune drops, and bad input is reported without losing what was stored."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from pilotfish.errors import TableError
from pilotfish.knowledge.base import KnowledgeBase


@pytest.fixture()
def kb(tmp_path: Path) -> KnowledgeBase:
    return KnowledgeBase.open(tmp_path / "kb", create=True, settings={"dense": False, "tokenizer": "words"})


def _workbook(path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference

    wb = Workbook()
    ws = wb.active
    ws.title = "Budget"
    for row in (["Dept", "Budget 2023"], ["Ops", 1000], ["R&D", 2500]):
        ws.append(row)
    other = wb.create_sheet("Heads")
    for row in (["Dept", "Head"], ["Ops", "Lin"], ["R&D", "Ng"]):
        other.append(row)
    chart = BarChart()
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=3), titles_from_data=True)
    wb.create_chartsheet("Chart").add_chart(chart)
    wb.save(path)


def test_csv_and_workbook_become_tables_with_cards_that_search_finds(kb: KnowledgeBase, tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text("region,revenue\nWest,1200\nEast,800\n")
    _workbook(tmp_path / "budget.xlsx")
    report = kb.ingest([tmp_path / "sales.csv", tmp_path / "budget.xlsx"])
    assert report.failed == [] and report.tables == 3 and report.total_tables == 3
    assert ("skipped sheet 'Chart': chart sheet" in [n for _, n in report.notes])
    catalog = kb.tables()
    assert sorted(c.name for c in catalog.cards) == ["budget_budget", "budget_heads", "sales"]
    budget = catalog.card("budget_budget")
    assert [(c.name, c.type) for c in budget.columns] == [("dept", "text"), ("budget_2023", "integer")]
    assert catalog.sandbox(["budget_budget"]).run("SELECT SUM(budget_2023) FROM budget_budget").rows == [(3500,)]
    hits = kb.search("budget of each department", mode="bm25", top_k=1)
    assert hits[0].doc_id == "table:budget_budget" and hits[0].metadata["kind"] == "table"


def test_reingest_replaces_a_changed_table_and_prune_drops_it(kb: KnowledgeBase, tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    path.write_text("region,revenue\nWest,1200\n")
    kb.ingest([path])
    assert kb.ingest([path]).files_skipped == 1
    path.write_text("region,revenue\nWest,1200\nEast,800\n")
    assert kb.ingest([path]).files_changed == 1
    assert kb.tables().sandbox(["sales"]).run("SELECT COUNT(*) FROM sales").rows == [(2,)]
    path.unlink()
    assert kb.ingest([], prune=True).files_pruned == 1
    assert kb.tables().cards == []
    db = sqlite3.connect(kb.directory / "pilotfish.db")
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'sales'").fetchall() == []


def test_same_name_from_two_folders_and_reserved_names_get_new_names(kb: KnowledgeBase, tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "sales.csv").write_text("region,revenue\nWest,1\n")
    (tmp_path / "chunks.csv").write_text("x,y\n1,2\n")
    report = kb.ingest([tmp_path / "a", tmp_path / "b", tmp_path / "chunks.csv"])
    assert sorted(c.name for c in kb.tables().cards) == ["chunks_2", "sales", "sales_2"]
    assert any("stored as 'sales_2'" in n for _, n in report.notes)
    assert kb.store.counts()["chunks"] >= 3  # pilotfish's own chunks table is untouched


def test_bad_table_files_fail_alone_and_keep_what_was_stored(kb: KnowledgeBase, tmp_path: Path) -> None:
    good = tmp_path / "sales.csv"
    good.write_text("region,revenue\nWest,1200\n")
    kb.ingest([good])
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    (tmp_path / "header.csv").write_text("a,b\n")
    good.write_text("region,revenue\nWest,1200\nEast,900\n")
    report = kb.ingest([good, tmp_path / "empty.csv", tmp_path / "ragged.csv", tmp_path / "header.csv"])
    reasons = {Path(p).name: r for p, r in report.failed}
    assert set(reasons) == {"empty.csv", "ragged.csv", "header.csv"}
    assert "line 3" in reasons["ragged.csv"] and "no data rows" in reasons["header.csv"]
    assert kb.tables().sandbox(["sales"]).run("SELECT COUNT(*) FROM sales").rows == [(2,)]


def test_csv_with_text_field_stays_one_document_per_row(kb: KnowledgeBase, tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_text("id,body\nq1,Reset your password from the login page.\n")
    report = kb.ingest([tmp_path / "faq.csv"], text_field="body", id_field="id")
    assert report.tables == 0 and report.documents == 1 and kb.tables().cards == []


def test_registered_database_is_described_not_copied(kb: KnowledgeBase, tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
        c.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(1, "Ada", 10.5), (2, "Grace", 20.0)])
    url = f"sqlite:///{db}"
    report = kb.ingest([], databases=[url])
    assert report.failed == [] and report.tables == 1
    card = kb.tables().card("orders")
    assert card.database == url and card.rows == 2
    assert kb.tables().sandbox(["orders"]).run("SELECT SUM(total) FROM orders").rows == [(30.5,)]
    internal = sqlite3.connect(kb.directory / "pilotfish.db")
    assert internal.execute("SELECT name FROM sqlite_master WHERE name = 'orders'").fetchall() == []
    assert kb.ingest([], databases=[url]).files_skipped == 1  # same schema and counts: unchanged
    with sqlite3.connect(db) as c:  # the table disappears between ingest and ask
        c.execute("DROP TABLE orders")
    with pytest.raises(TableError, match="cannot read orders.customer"):
        kb.tables().values("orders", "customer")


def test_database_that_does_not_connect_is_reported(kb: KnowledgeBase, tmp_path: Path) -> None:
    report = kb.ingest([], databases=[f"sqlite:///{tmp_path / 'missing.db'}", "postgresql://u:secret@127.0.0.1:1/x"])
    assert len(report.failed) == 2 and not (tmp_path / "missing.db").exists()
    assert "no SQLite database" in report.failed[0][1]
    assert "secret" not in report.failed[1][0] + report.failed[1][1]
    assert "cannot read the database postgresql://u:***@" in report.failed[1][1]


def test_spider_database_registers_with_foreign_keys(kb: KnowledgeBase, tmp_path: Path) -> None:
    data = Path(os.environ.get("PILOTFISH_BENCH_DATA", Path(__file__).resolve().parents[3] / "shared" / "benchmarks"))
    source = data / "spider" / "database" / "concert_singer"
    if not source.exists():
        pytest.skip(f"Spider databases not found in {data}; set PILOTFISH_BENCH_DATA")
    shutil.copy(source / "concert_singer.sqlite", tmp_path / "cs.sqlite")
    kb.ingest([], databases=[f"sqlite:///{tmp_path / 'cs.sqlite'}"])
    card = kb.tables().card("singer_in_concert")
    assert "Singer_ID -> singer.Singer_ID" in card.foreign_keys


def test_a_crash_while_saving_tables_keeps_the_previous_state(kb: KnowledgeBase, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import pilotfish.knowledge.ingest as ingest_module

    path = tmp_path / "sales.csv"
    path.write_text("region,revenue\nWest,1200\n")
    kb.ingest([path])
    path.write_text("region,revenue\nWest,1200\nEast,800\n")
    (tmp_path / "staff.csv").write_text("name\nAda\n")
    saved = []

    def crash_on_second(session: object, source: object, tables: object) -> None:
        if saved:
            raise RuntimeError("power cut")
        saved.append(True)
        real_save(session, source, tables)

    real_save = ingest_module.save_tables
    monkeypatch.setattr(ingest_module, "save_tables", crash_on_second)
    with pytest.raises(RuntimeError, match="power cut"):
        kb.ingest([path, tmp_path / "staff.csv"])
    monkeypatch.undo()
    reopened = KnowledgeBase.open(kb.directory)
    assert [c.name for c in reopened.tables().cards] == ["sales"]
    assert reopened.tables().sandbox(["sales"]).run("SELECT COUNT(*) FROM sales").rows == [(1,)]
    db = sqlite3.connect(kb.directory / "pilotfish.db")
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'staff'").fetchall() == []
