"""Tables on PostgreSQL (a real server; .ci/run starts one): a knowledge base stored in PostgreSQL ingests a CSV
as a PostgreSQL table, SQL runs in a read-only transaction there, prune drops the table; a PostgreSQL database
registers by URL in a SQLite knowledge base. Runs when PILOTFISH_TEST_POSTGRES_URL names a database the test
may wipe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.knowledge.store import Base, KnowledgeStore
from pilotfish.llms.fake import FakeLLM
from pilotfish.tables.sql import SQLGenerator

URL = os.environ.get("PILOTFISH_TEST_POSTGRES_URL", "")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not URL, reason="set PILOTFISH_TEST_POSTGRES_URL to run against PostgreSQL")]
SETTINGS = {"tokenizer": "words", "dense": False}


@pytest.fixture()
def clean_db() -> str:
    from sqlalchemy import text

    store = KnowledgeStore(URL)
    Base.metadata.drop_all(store.engine)
    with store.engine.begin() as c:
        for name in ("pf_sales", "pf_sales_2", "pf_orders", "pf_orders_2"):
            c.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
    store.engine.dispose()
    return URL


def test_csv_becomes_a_postgres_table_queried_read_only(clean_db: str, tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    path = tmp_path / "pf_sales.csv"
    path.write_text("region,revenue\nWest,1200\nEast,800\n")
    kb = KnowledgeBase.open(tmp_path / "kb", db=clean_db, create=True, settings=SETTINGS)
    report = kb.ingest([path])
    assert report.failed == [] and report.tables == 1
    catalog = kb.tables()
    box = catalog.sandbox(["pf_sales"])
    assert box.dialect == "postgres" and box.run("SELECT SUM(revenue) FROM pf_sales").rows == [(2000,)]
    llm = FakeLLM(replies=["DROP TABLE pf_sales", "SELECT region FROM pf_sales ORDER BY revenue DESC LIMIT 1"])
    found = SQLGenerator(llm=llm).answer("Which region sold most?", catalog)
    assert found.candidates[0]["error"].startswith("refused") and found.rows == [("West",)]
    path.unlink()
    assert kb.ingest([], prune=True).files_pruned == 1
    engine = create_engine("postgresql+psycopg://" + clean_db.split("://", 1)[1])
    with engine.connect() as c:
        assert c.execute(text("SELECT to_regclass('pf_sales')")).scalar() is None
    engine.dispose()


def test_a_postgres_table_not_owned_by_pilotfish_keeps_its_name(clean_db: str, tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine("postgresql+psycopg://" + clean_db.split("://", 1)[1])
    with engine.begin() as c:
        c.execute(text("CREATE TABLE pf_orders (id INTEGER, customer TEXT, total NUMERIC(8, 2))"))
        c.execute(text("INSERT INTO pf_orders VALUES (1, 'Ada', 10.50), (2, 'Grace', 20.00)"))
    (tmp_path / "pf_orders.csv").write_text("id,customer\n9,Other\n")
    kb = KnowledgeBase.open(tmp_path / "kb", db=clean_db, create=True, settings=SETTINGS)
    report = kb.ingest([tmp_path / "pf_orders.csv"])
    assert [c.name for c in kb.tables().cards] == ["pf_orders_2"] and report.failed == []
    with engine.connect() as c:  # the other application's table is untouched
        assert c.execute(text("SELECT COUNT(*) FROM pf_orders")).scalar() == 2
    other = KnowledgeBase.open(tmp_path / "sqlite-kb", create=True, settings=SETTINGS)
    registered = other.ingest([], databases=[clean_db])
    assert registered.failed == [] and "pf_orders" in [c.name for c in other.tables().cards]
    box = other.tables().sandbox(["pf_orders"])
    assert box.run("SELECT SUM(total) FROM pf_orders").to_dict()["rows"] == [[30.5]]
    engine.dispose()
