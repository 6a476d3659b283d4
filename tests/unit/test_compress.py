"""SentenceCompressor's selection and its node in the answer graph (scores scripted, no model)."""

from __future__ import annotations

from collections.abc import Callable

from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.fake import FakeLLM
from pilotfish.retrievers.compress import SentenceCompressor
from pilotfish.types import Passage
from tests.unit.pipelines import pipeline as make_pipeline


def overlap(question: str, sentences: list[tuple[str, str]]) -> list[float]:
    words = set(question.lower().strip("?").split())
    return [len(words & set(s.lower().strip(".").split())) for _, s in sentences]


def test_keeps_the_best_sentences_grouped_in_order_and_drops_empty_passages() -> None:
    c = SentenceCompressor(keep=2)
    c.scores = overlap  # type: ignore[method-assign]
    passages = [Passage("c1", "d1", "Bread is baked daily. The Seine flows through Paris. Paris is old.", 1.0),
                Passage("c2", "d2", "Cats sleep a lot. Dogs bark.", 0.5),
                Passage("c3", "d3", "The river Seine is long. It ends at Le Havre.", 0.4)]
    out = c.compress("Which river Seine flows through Paris?", passages)
    assert [(p.chunk_id, p.text) for p in out] == [("c1", "The Seine flows through Paris."),
                                                   ("c3", "The river Seine is long.")]
    assert out[0].metadata["compressed_from"] == 3
    short = [Passage("c1", "d1", "One sentence only here.", 1.0)]
    assert c.compress("anything?", short) == short  # nothing to cut


def test_compress_node_in_the_pipeline(text_kb: Callable[..., KnowledgeBase]) -> None:
    kb = text_kb(paris_txt="About Paris\n\nBread is baked daily in France. The Seine flows through Paris. "
                           "Paris has many museums. The Louvre is one of them.")
    llm = FakeLLM(replies=["The Seine [1]."])
    pipeline = make_pipeline(kb, llm, mode="bm25", compress=1)
    pipeline.parts.compressor.scores = overlap  # type: ignore[union-attr,method-assign]
    answer = pipeline.run("Which river flows through Paris?")
    assert [s.node for s in answer.trace] == ["retrieve", "gate", "compress", "build_prompt", "generate", "cite"]
    prompt = llm.calls[0]["messages"][1]["content"]
    assert "[1] About Paris: The Seine flows through Paris." in prompt and "Louvre" not in prompt
    assert answer.citations[0].doc_id == "docs/paris.txt"
    assert answer.evidence[0].text == "The Seine flows through Paris."
