"""TableEvidence (T-RAG): the linked tables' rows that matter, as compact markdown passages for the prompt.

When SQL is not the tool (free-text cells, "describe", lookups) or found nothing, the answer reads rows
instead. A small table is shown whole; a large one by its `rows` best rows (BM25 over the rows' text, rows
holding a linked value first), in table order. Each passage is cited as `table:NAME#ROW,ROW,...`
(1-based row numbers), and the NLI checker reads the same text.

>>> import pathlib, tempfile
>>> from pilotfish.tables.catalog import TableCatalog
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "staff.csv").write_text("name,role\\nAda,engineer\\nGrace,admiral\\n")
>>> catalog = TableCatalog.for_files([folder / "staff.csv"])
>>> passage = TableEvidence().select("What was Grace's role?", catalog)[0]
>>> passage.chunk_id
'table:staff#1,2'
>>> print(passage.text)
Table staff (rows 1-2 of 2):
| # | name | role |
|---|---|---|
| 1 | Ada | engineer |
| 2 | Grace | admiral |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.tables.catalog import TableCatalog
from pilotfish.tables.linker import LinkedSchema, TableLinker, normalise
from pilotfish.types import Passage

MAX_ROWS_READ = 5000


class TableEvidence:
    """Rows of the `tables` best linked tables as passages: whole tables up to `whole_below` rows, else the
    `rows` best rows."""

    def __init__(self, *, rows: int = 8, tables: int = 1, whole_below: int = 40, max_cell_chars: int = 80,
                 linker: TableLinker | None = None) -> None:
        if rows < 1 or tables < 1:
            raise ConfigError(f"need rows >= 1 and tables >= 1, got {rows}, {tables}")
        self.rows, self.tables, self.whole_below, self.max_cell_chars = rows, tables, whole_below, max_cell_chars
        self.linker = linker or TableLinker()

    def select(self, question: str, catalog: TableCatalog, *, linked: LinkedSchema | None = None) -> list[Passage]:
        linked = linked or self.linker.link(question, catalog)
        out = []
        for table in linked.tables[:self.tables]:
            card = catalog.card(table.name)
            columns, rows = catalog.rows(card.name, limit=MAX_ROWS_READ)
            if not rows:
                continue
            chosen = (list(range(len(rows))) if len(rows) <= self.whole_below
                      else self._best_rows(question, columns, rows, linked, card.name))
            out.append(self._passage(card, columns, rows, chosen, table.score))
        return out

    def _best_rows(self, question: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                   linked: LinkedSchema, table: str) -> list[int]:
        from pilotfish.retrievers.bm25 import BM25Retriever
        from pilotfish.retrievers.corpus import ChunkCorpus, CorpusRow

        texts = [" ; ".join(f"{c}: {v}" for c, v in zip(columns, row) if v is not None) for row in rows]
        bm25 = BM25Retriever()
        bm25.index(ChunkCorpus([CorpusRow(chunk_id=str(i), doc_id=table, text=t, title="", source="", metadata={})
                                for i, t in enumerate(texts)]))
        scores = [float(s) for s in bm25.scores(question)]
        wanted = {normalise(v.value) for v in linked.values if v.table == table}
        for i, row in enumerate(rows):
            if wanted & {normalise(str(v)) for v in row if v is not None}:
                scores[i] += 100.0  # a row holding a linked value comes first
        best = sorted(range(len(rows)), key=lambda i: -scores[i])[:self.rows]
        return sorted(best)

    def _passage(self, card: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]], chosen: list[int],
                 score: float) -> Passage:
        header = "| # | " + " | ".join(columns) + " |"
        lines = [header, "|" + "---|" * (len(columns) + 1)]
        lines += ["| " + " | ".join([str(i + 1), *(self._cell(v) for v in rows[i])]) + " |" for i in chosen]
        span = (f"rows {chosen[0] + 1}-{chosen[-1] + 1}" if chosen == list(range(chosen[0], chosen[-1] + 1))
                else f"{len(chosen)} rows")
        text = f"Table {card.name} ({span} of {len(rows)}):\n" + "\n".join(lines)
        numbers = ",".join(str(i + 1) for i in chosen)
        return Passage(chunk_id=f"table:{card.name}#{numbers}", doc_id=f"table:{card.name}", text=text, score=score,
                       source=card.source, title=f"Table {card.name}", retriever="table",
                       metadata={"kind": "table", "table": card.name, "rows": [i + 1 for i in chosen]})

    def _cell(self, value: Any) -> str:
        return cell_text(value, self.max_cell_chars)


def cell_text(value: Any, limit: int = 80) -> str:
    """A cell as evidence text: empty for NULL, whole floats without '.0', one line, no pipes, at most `limit`."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = " ".join(str(value).split()).replace("|", "/")
    return text if len(text) <= limit else text[:limit - 1] + "…"
