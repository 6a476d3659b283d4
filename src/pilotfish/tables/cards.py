"""Schema cards: what a table holds, in a few lines a retriever can index and an LLM can read.

A card names the table, where it came from, its row count and each column with its type and a few
sample values. `card.text()` is the searchable card (indexed with the documents, found by the linker);
`card.create_sql()` is the CREATE statement the SQL prompt shows.

>>> card = TableCard(name="sales", source="sales.csv", rows=3, columns=(
...     ColumnCard(name="region", type="text", samples=("West", "East")),
...     ColumnCard(name="margin", type="number", samples=("0.31", "0.12"))))
>>> print(card.text())
Table sales (from sales.csv, 3 rows). Columns: region (text, e.g. West, East); margin (number, e.g. 0.31, 0.12).
>>> print(card.create_sql())
CREATE TABLE "sales" (
  "region" TEXT,
  "margin" REAL
);
>>> TableCard.from_dict(card.to_dict()) == card
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

SAMPLES = 3
_SQL_TYPES = {"integer": "INTEGER", "number": "REAL", "date": "DATE", "text": "TEXT"}


@dataclass(frozen=True)
class ColumnCard:
    name: str
    type: str  # integer | number | date | text
    samples: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableCard:
    """One table: its SQL name, the database holding it (None: the knowledge base's own), its source."""

    name: str
    source: str
    rows: int
    columns: tuple[ColumnCard, ...]
    database: str | None = None
    sheet: str | None = None
    foreign_keys: tuple[str, ...] = ()  # "col -> other_table.col"

    def text(self) -> str:
        origin = Path(self.source).name if "://" not in self.source else "a database"
        if self.sheet:
            origin += f", sheet {self.sheet}"
        cols = "; ".join(f"{c.name} ({c.type}" + (f", e.g. {', '.join(c.samples)})" if c.samples else ")")
                         for c in self.columns)
        return f"Table {self.name} (from {origin}, {self.rows} rows). Columns: {cols}."

    def create_sql(self) -> str:
        lines = [f'  "{c.name}" {_SQL_TYPES.get(c.type, "TEXT")}' for c in self.columns]
        for fk in self.foreign_keys:
            col, target = fk.split(" -> ")
            table, column = target.rsplit(".", 1)
            lines.append(f'  FOREIGN KEY ("{col}") REFERENCES "{table}"("{column}")')
        return f'CREATE TABLE "{self.name}" (\n' + ",\n".join(lines) + "\n);"

    def column(self, name: str) -> ColumnCard | None:
        return next((c for c in self.columns if c.name.lower() == name.lower()), None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableCard:
        columns = tuple(ColumnCard(name=c["name"], type=c["type"], samples=tuple(c.get("samples", ())))
                        for c in data["columns"])
        return cls(name=data["name"], source=data["source"], rows=int(data["rows"]), columns=columns,
                   database=data.get("database"), sheet=data.get("sheet"),
                   foreign_keys=tuple(data.get("foreign_keys", ())))


def card_of_frame(name: str, frame: pd.DataFrame, *, source: str, sheet: str | None = None) -> TableCard:
    """The card of a loaded table: types from the frame's dtypes, samples its most frequent values."""
    import pandas as pd

    columns = []
    for col in frame.columns:
        series = frame[col]
        if pd.api.types.is_integer_dtype(series.dtype):
            kind = "integer"
        elif pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
            kind = "number"
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            kind = "date"
        else:
            kind = "text"
        present = series.dropna()
        if kind == "text":
            present = present[present.astype(str).str.strip() != ""]
        top = present.astype(str).value_counts().index[:SAMPLES] if len(present) else []
        samples = tuple(_short(v.removesuffix(" 00:00:00") if kind == "date" else v) for v in top)
        columns.append(ColumnCard(name=str(col), type=kind, samples=samples))
    return TableCard(name=name, source=source, rows=len(frame), columns=tuple(columns), sheet=sheet)


def card_of_database_table(connection: Any, name: str, *, source: str, database: str | None) -> TableCard:
    """The card of a table already in a database (SQLAlchemy connection): declared types, row count,
    foreign keys, and the most frequent values of each column as samples."""
    from sqlalchemy import inspect, text

    inspector = inspect(connection)
    quote = connection.dialect.identifier_preparer.quote
    rows = int(connection.execute(text(f"SELECT COUNT(*) FROM {quote(name)}")).scalar() or 0)
    columns = []
    for col in inspector.get_columns(name):
        declared = str(col["type"]).upper()
        kind = ("integer" if "INT" in declared else "number" if any(t in declared for t in ("REAL", "FLOA", "DOUB",
                                                                                            "NUM", "DEC"))
                else "date" if "DATE" in declared or "TIME" in declared else "text")
        q = quote(col["name"])
        found: list[Any] = []
        if not any(t in declared for t in ("JSON", "BLOB", "BYTEA", "ARRAY", "[]")):  # no equality to group by
            with connection.begin_nested():  # a failed sample query must not end the transaction on PostgreSQL
                try:
                    found = list(connection.execute(text(
                        f"SELECT {q} FROM {quote(name)} WHERE {q} IS NOT NULL GROUP BY {q} "
                        f"ORDER BY COUNT(*) DESC LIMIT {SAMPLES}")).scalars())
                except Exception:  # an exotic type: the card shows no samples for it
                    found = []
        columns.append(ColumnCard(name=col["name"], type=kind, samples=tuple(_short(str(v)) for v in found)))
    fks = tuple(f"{c} -> {fk['referred_table']}.{r}" for fk in inspector.get_foreign_keys(name)
                for c, r in zip(fk["constrained_columns"], fk["referred_columns"]))
    return TableCard(name=name, source=source, rows=rows, columns=tuple(columns), database=database,
                     foreign_keys=fks)


def _short(value: str, limit: int = 40) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[:limit - 1] + "…"
