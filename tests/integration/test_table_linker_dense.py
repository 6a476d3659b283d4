"""TableLinker with MiniLM card similarity finds a table that shares no word with the question."""

from __future__ import annotations

import pytest

from pilotfish.tables.cards import ColumnCard, TableCard
from pilotfish.tables.catalog import TableCatalog
from pilotfish.tables.linker import TableLinker

pytestmark = pytest.mark.integration


def test_dense_similarity_links_by_meaning() -> None:
    cards = [TableCard(name="peaks", source="peaks.csv", rows=3, columns=(
                 ColumnCard(name="name", type="text", samples=("Everest", "K2")),
                 ColumnCard(name="elevation_m", type="integer", samples=("8849", "8611")))),
             TableCard(name="rivers", source="rivers.csv", rows=3, columns=(
                 ColumnCard(name="name", type="text", samples=("Nile", "Amazon")),
                 ColumnCard(name="length_km", type="integer", samples=("6650", "6400"))))]
    catalog = TableCatalog(cards[::-1])  # rivers first: BM25 alone has no word to go on and keeps that order
    question = "How tall is the highest mountain?"
    no_values = {"values": lambda table, column: []}
    assert TableLinker(**no_values).link(question, catalog).table_names[0] == "rivers"
    assert TableLinker(dense="minilm-l6", **no_values).link(question, catalog).table_names[0] == "peaks"
    assert TableLinker(dense="minilm-l6", **no_values).link("Which is the longest river?", catalog).table_names[0] \
        == "rivers"
