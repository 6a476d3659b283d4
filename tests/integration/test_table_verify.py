"""`--pipeline verified` over a table answer: the shipped NLI model reads the SQL result, phrased as the answer to
the question, and supports a faithful sentence while it drops one the result does not say."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotfish.answer import build
from pilotfish.llms.fake import FakeLLM
from pilotfish.tables.catalog import TableCatalog

pytestmark = pytest.mark.integration
SQL = "```sql\nSELECT region FROM sales WHERE year = 2023 ORDER BY revenue DESC LIMIT 1\n```"


@pytest.mark.parametrize(("reply", "label"), [("West had the highest revenue in 2023 [1].", "supported"),
                                              ("East had the highest revenue in 2023 [1].", "unsupported")])
def test_verified_pipeline_checks_a_table_answer(tmp_path: Path, reply: str, label: str) -> None:
    (tmp_path / "sales.csv").write_text("region,year,revenue\nWest,2023,1200\nEast,2023,800\nWest,2022,700\n")
    catalog = TableCatalog.for_files([tmp_path / "sales.csv"])
    llm = FakeLLM(respond=lambda m: SQL if "SELECT statement" in m[0]["content"] else reply)
    pipeline = build({"answer": {"llm": "fake"}, "tables": {}, "verify": {}}, None, tables=catalog, llms={"fake": llm})
    answer = pipeline.run("Which region had the highest revenue in 2023?")
    assert answer.rows == [["West"]]
    claim = answer.verification["claims"][0]
    assert claim["label"] in ((label,) if label == "supported" else ("unsupported", "contradicted"))
    assert answer.answered == (label == "supported")
