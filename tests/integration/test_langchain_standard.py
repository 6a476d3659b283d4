"""PilotfishRetriever against the `langchain-tests` standard retriever suite (BM25, and dense with minilm-l6)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from pilotfish.integrations.langchain import PilotfishRetriever

QUERY = "What do people say about the lighthouse?"
# Every text mentions the lighthouse, so BM25 (which drops zero-score rows) has enough hits for any k.
TEXTS = [
    "The lighthouse keeper climbs the stairs every evening.",
    "A storm cracked the lighthouse lens in 1902.",
    "Tourists photograph the red lighthouse at sunset.",
    "The old lighthouse now runs on solar power.",
    "Ships once relied on the lighthouse fog horn.",
    "The lighthouse museum opens on weekends.",
    "Gulls nest on the ledge below the lighthouse.",
    "Painters set up easels near the lighthouse cliffs.",
    "The lighthouse beam reaches twenty nautical miles.",
    "Locals say the lighthouse is haunted by a sailor.",
    "The lighthouse was automated in the 1980s.",
    "A footpath leads from the harbour to the lighthouse.",
    "Winter waves spray over the lighthouse rocks.",
    "The lighthouse appears on the town's coat of arms.",
    "Schoolchildren visit the lighthouse each spring.",
    "The lighthouse tower has two hundred steps.",
    "A new lighthouse was built further up the coast.",
    "The lighthouse lamp was first lit with whale oil.",
    "Weddings are sometimes held beside the lighthouse.",
    "The lighthouse cottage is rented to holidaymakers.",
]
METADATAS = [{"n": i, "even": i % 2 == 0} for i in range(len(TEXTS))]
# The suite's one async test needs pytest-asyncio, and the project runs it in strict mode, so mark the
# classes; pytest-asyncio then warns about the marker on the sync tests, which is expected here.
ASYNC_MARKS = [
    pytest.mark.asyncio,
    pytest.mark.filterwarnings("ignore:The test <Function .*> is marked with '@pytest.mark.asyncio'"),
]


@functools.cache
def _inner(kind: str) -> Any:
    """Index the texts once per kind; every test wraps the same pilotfish retriever."""
    return PilotfishRetriever.from_texts(TEXTS, metadatas=METADATAS, kind=kind).retriever


class TestPilotfishBM25Standard(RetrieversIntegrationTests):
    pytestmark = ASYNC_MARKS

    @property
    def retriever_constructor(self) -> type[PilotfishRetriever]:
        return PilotfishRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"retriever": _inner("bm25"), "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


class TestPilotfishDenseStandard(RetrieversIntegrationTests):
    pytestmark = [pytest.mark.integration, *ASYNC_MARKS]

    @property
    def retriever_constructor(self) -> type[PilotfishRetriever]:
        return PilotfishRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"retriever": _inner("dense"), "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


@pytest.mark.integration
def test_dense_from_texts_ranks_by_meaning_and_filters() -> None:
    retriever = PilotfishRetriever.from_texts(
        ["The stock market fell sharply today.", "Kittens like to sleep in the sun.", "Bond yields rose."],
        metadatas=[{"topic": "finance"}, {"topic": "pets"}, {"topic": "finance"}], kind="dense", k=1)
    top = retriever.invoke("shares dropped on Wall Street")[0]
    assert top.id == "0" and top.metadata["retriever"] == "dense"
    assert [d.id for d in retriever.invoke("shares dropped", filters={"topic": "pets"})] == ["1"]
