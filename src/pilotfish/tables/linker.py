"""TableLinker: which tables, columns and cell values a question is about, found by small models.

Tables are ranked by BM25 over their schema cards (name, column names split into words, sample values)
and by how many question words match their cell values; columns by the question words their name shares
and the values they hold. Cell values are matched after normalising case, accents and punctuation, by
fuzzy ratio (rapidfuzz) for misspellings, and by initials ("NYC" finds "New York City"). The SQL
generator then reads only the linked schema; table evidence reads only the linked tables' rows.

>>> from pilotfish.tables.cards import ColumnCard, TableCard
>>> from pilotfish.tables.catalog import TableCatalog
>>> cards = [TableCard(name="city_sales", source="s.csv", rows=2, columns=(
...              ColumnCard(name="city", type="text"), ColumnCard(name="revenue", type="number"))),
...          TableCard(name="staff", source="t.csv", rows=2, columns=(ColumnCard(name="name", type="text"),))]
>>> linker = TableLinker(values=lambda table, column: ["New York City", "Boston"] if column == "city" else [])
>>> linked = linker.link("What was the revenue in NYC?", TableCatalog(cards))
>>> linked.tables[0].name, linked.values[0].value
('city_sales', 'New York City')
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.tables.catalog import TableCatalog

_WORD = re.compile(r"[A-Za-z0-9]+(?:['.][A-Za-z0-9]+)*")
_STOP = frozenset("a an the of in on at to for by with from and or is are was were be been what which who whom "
                  "whose when where how many much does do did has have had this that these those it its as than "
                  "all any each list show give me find name names number count there their per most least".split())


@dataclass(frozen=True)
class LinkedTable:
    name: str
    score: float


@dataclass(frozen=True)
class LinkedColumn:
    table: str
    column: str
    score: float


@dataclass(frozen=True)
class LinkedValue:
    table: str
    column: str
    value: str
    matched: str  # the question's words that matched
    score: float  # 100: exact after normalising; fuzzy ratio or initials otherwise


@dataclass(frozen=True)
class LinkedSchema:
    """The linker's answer for one question: ranked tables, columns and matched cell values."""

    question: str
    tables: list[LinkedTable]
    columns: list[LinkedColumn] = field(default_factory=list)
    values: list[LinkedValue] = field(default_factory=list)

    @property
    def table_names(self) -> list[str]:
        return [t.name for t in self.tables]

    def to_dict(self) -> dict[str, Any]:
        return {"tables": [{"name": t.name, "score": round(t.score, 3)} for t in self.tables],
                "columns": [{"table": c.table, "column": c.column, "score": round(c.score, 3)} for c in self.columns],
                "values": [{"table": v.table, "column": v.column, "value": v.value, "matched": v.matched,
                            "score": round(v.score, 1)} for v in self.values]}


class TableLinker:
    """Links a question to `depth` tables of a `TableCatalog`, their best columns and matched values.

    `values(table, column)` supplies a text column's distinct values (default: the catalog's); the BM25
    index over cards is built once per catalog and reused."""

    def __init__(self, *, depth: int = 3, fuzzy: float = 88.0, max_values: int = 8,
                 values: Callable[[str, str], Sequence[str]] | None = None, dense: str | None = None) -> None:
        if depth < 1:
            raise ConfigError(f"linker depth must be >= 1, got {depth}")
        if not 50 <= fuzzy <= 100:
            raise ConfigError(f"fuzzy must be a rapidfuzz ratio between 50 and 100, got {fuzzy}")
        self.depth, self.fuzzy, self.max_values = depth, fuzzy, max_values
        self._values = values
        self.dense = dense  # an embedding model (e.g. "minilm-l6") whose card similarity joins BM25's score
        self._lock = threading.Lock()
        self._index: tuple[int, Any] | None = None
        self._normalised: dict[tuple[str, str], dict[str, str]] = {}

    def link(self, question: str, catalog: TableCatalog) -> LinkedSchema:
        return self.link_batch([question], catalog)[0]

    def link_batch(self, questions: Sequence[str], catalog: TableCatalog) -> list[LinkedSchema]:
        if not catalog.cards:
            return [LinkedSchema(question=q, tables=[]) for q in questions]
        index = self._indexes(catalog)
        return [self._link_one(q, catalog, index) for q in questions]

    # -- tables ------------------------------------------------------------------------------------
    def _indexes(self, catalog: TableCatalog) -> Any:
        """(BM25 over the cards, (embedder, card vectors) or None), built once per catalog."""
        with self._lock:
            if self._index is None or self._index[0] != id(catalog):
                from pilotfish.retrievers.bm25 import BM25Retriever
                from pilotfish.retrievers.corpus import ChunkCorpus, CorpusRow

                rows = [CorpusRow(chunk_id=c.name, doc_id=c.name, text=card_words(c), title="", source=c.source,
                                  metadata={}) for c in catalog.cards]
                bm25 = BM25Retriever()
                bm25.index(ChunkCorpus(rows))
                vectors = None
                if self.dense is not None:
                    from pilotfish.models.embedding import Embedder

                    embedder = Embedder(model=self.dense)
                    vectors = (embedder, embedder.encode_documents([c.text() for c in catalog.cards]))
                self._index = (id(catalog), (bm25, vectors))
                self._normalised = {}
            return self._index[1]

    def _link_one(self, question: str, catalog: TableCatalog, index: Any) -> LinkedSchema:
        bm25, vectors = index
        scores = bm25.scores(question) if question.strip() else []
        if vectors is not None and len(scores):
            top = float(max(scores)) or 1.0
            embedder, matrix = vectors
            # BM25 scaled to [0, 1] plus cosine similarity: each finds tables the other misses
            scores = scores / top + matrix @ embedder.encode_queries([question])[0]
        cards = catalog.cards
        ranked = sorted(range(len(cards)), key=lambda i: -float(scores[i]) if len(scores) else 0.0)
        # value matching is the costly part: only the best-scored tables (all of them in a small catalog)
        considered = ranked[:max(self.depth * 3, 8)]
        values = self._match_values(question, catalog, [cards[i].name for i in considered])
        bonus: dict[str, float] = {}
        for v in values:
            bonus[v.table] = bonus.get(v.table, 0.0) + v.score / 100
        top = max((float(scores[i]) for i in considered), default=0.0) or 1.0
        table_score = {cards[i].name: float(scores[i]) / top + bonus.get(cards[i].name, 0.0) for i in considered}
        order = sorted(table_score, key=lambda n: -table_score[n])[:self.depth]
        tables = [LinkedTable(n, table_score[n]) for n in order]
        words = set(_stems(question))
        columns: list[LinkedColumn] = []
        for t in tables:
            for col in catalog.card(t.name).columns:
                shared = words & set(_stems(" ".join(_split_name(col.name))))
                score = len(shared) + sum(v.score / 100 for v in values if v.table == t.name and v.column == col.name)
                if score > 0:
                    columns.append(LinkedColumn(t.name, col.name, score))
        columns.sort(key=lambda c: -c.score)
        return LinkedSchema(question=question, tables=tables, columns=columns,
                            values=[v for v in values if v.table in order][:self.max_values])

    # -- cell values -------------------------------------------------------------------------------
    def _match_values(self, question: str, catalog: TableCatalog, tables: list[str]) -> list[LinkedValue]:
        from rapidfuzz import fuzz, process

        spans = _spans(question)
        if not spans:
            return []
        found: dict[tuple[str, str, str], LinkedValue] = {}
        for table in tables:
            for col in catalog.card(table).columns:
                if col.type != "text":
                    continue
                lookup = self._lookup(catalog, table, col.name)
                if not lookup:
                    continue
                keys = list(lookup)
                for span, normal in spans:
                    hit = lookup.get(normal)
                    if hit is not None:
                        _keep(found, LinkedValue(table, col.name, hit, span, 100.0))
                        continue
                    if len(normal) >= 4:
                        for key, score, _ in process.extract(normal, keys, scorer=fuzz.ratio, limit=2,
                                                             score_cutoff=self.fuzzy):
                            _keep(found, LinkedValue(table, col.name, lookup[key], span, float(score)))
                    if span.isupper() and 2 <= len(span) <= 5:
                        for key, value in lookup.items():
                            if _initials(key) == normal:
                                _keep(found, LinkedValue(table, col.name, value, span, 90.0))
        return sorted(found.values(), key=lambda v: -v.score)

    def _lookup(self, catalog: TableCatalog, table: str, column: str) -> dict[str, str]:
        key = (table, column)
        if key not in self._normalised:
            values = self._values(table, column) if self._values is not None else catalog.values(table, column)
            self._normalised[key] = {normalise(v): v for v in values if 0 < len(v) <= 120}
        return self._normalised[key]


def normalise(text: str) -> str:
    """Lower case, accents and punctuation removed, spaces collapsed: 'São Paulo!' -> 'sao paulo'."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def card_words(card: Any) -> str:
    """The words BM25 indexes for a table: its name and column names split into words, and the card."""
    names = " ".join(_split_name(card.name) + [w for c in card.columns for w in _split_name(c.name)])
    return f"{names} {names} {card.text()}"


def _split_name(name: str) -> list[str]:
    """'Song_release_year' / 'songReleaseYear' -> ['song', 'release', 'year']."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def _stems(text: str) -> list[str]:
    words = [w.lower() for w in _WORD.findall(text)]
    return [w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words if w not in _STOP]


def _spans(question: str, longest: int = 4) -> list[tuple[str, str]]:
    """Question n-grams (1 to `longest` words) that do not start or end with a stop word, normalised."""
    words = _WORD.findall(question)
    out: dict[str, str] = {}
    for n in range(1, longest + 1):
        for i in range(len(words) - n + 1):
            piece = words[i:i + n]
            if piece[0].lower() in _STOP or piece[-1].lower() in _STOP:
                continue
            span = " ".join(piece)
            out.setdefault(normalise(span), span)
    return [(span, normal) for normal, span in out.items() if normal]


def _initials(normal: str) -> str:
    words = normal.split()
    return "".join(w[0] for w in words) if len(words) >= 2 else ""


def _keep(found: dict[tuple[str, str, str], LinkedValue], value: LinkedValue) -> None:
    key = (value.table, value.column, value.value)
    if key not in found or found[key].score < value.score:
        found[key] = value
