"""The same knowledge-base code on PostgreSQL (a real server; .ci/run starts one).

Runs when PILOTFISH_TEST_POSTGRES_URL names a database the test may wipe, e.g.
postgresql://pf:pf@127.0.0.1:5432/pilotfish_test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.knowledge.store import Base, KnowledgeStore

URL = os.environ.get("PILOTFISH_TEST_POSTGRES_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="set PILOTFISH_TEST_POSTGRES_URL to run against PostgreSQL")


@pytest.fixture()
def clean_db() -> str:
    store = KnowledgeStore(URL)
    Base.metadata.drop_all(store.engine)
    store.engine.dispose()
    return URL


def test_ingest_search_reingest_on_postgres(clean_db: str, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Photosynthesis turns light into chemical energy in chloroplasts.")
    (docs / "b.md").write_text("# Volcanoes\n\nMagma rises through the crust and erupts as lava.")
    (docs / "c.jsonl").write_text(
        '{"_id": "n1", "title": "Tides", "text": "The moon pulls the oceans.", "year": 2020}\n')
    settings = {"tokenizer": "words", "dense": False}
    kb = KnowledgeBase.open(tmp_path / "kb", db=clean_db, create=True, settings=settings)
    assert kb.store.engine.dialect.name == "postgresql"
    report = kb.ingest([docs])
    assert (report.files_new, report.documents, report.failed) == (3, 3, [])
    assert kb.search("lava erupts", mode="bm25")[0].doc_id == "docs/b.md"
    assert [p.doc_id for p in kb.search("moon oceans", mode="bm25", filters={"year": "2020"})] == ["n1"]

    again = KnowledgeBase.open(tmp_path / "kb", db=clean_db).ingest([docs])
    assert again.files_skipped == 3 and again.documents == 0

    (docs / "a.txt").write_text("Mitochondria produce ATP for the cell.")
    (docs / "b.md").unlink()
    changed = KnowledgeBase.open(tmp_path / "kb", db=clean_db).ingest([docs], prune=True)
    assert changed.files_changed == 1 and changed.files_pruned == 1 and changed.total_documents == 2
    reopened = KnowledgeBase.open(tmp_path / "kb", db=clean_db)
    assert reopened.search("ATP cell", mode="bm25")[0].doc_id == "docs/a.txt"
    assert reopened.search("lava", mode="bm25") == []
