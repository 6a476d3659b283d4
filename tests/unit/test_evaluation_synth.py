"""QASynthesizer with FakeLLM, a BM25-only knowledge base, and stand-ins for the reranker and embedder
(no model files; tests/integration/test_evaluation_synth.py runs the real ones)."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from pilotfish.errors import ConfigError
from pilotfish.evaluation.datasets import load_dataset
from pilotfish.evaluation.synth import DROP_REASONS, QASynthesizer, qa_messages, support
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.fake import FakeLLM

FILLER = " It is described in many books, taught in schools and visited by people from all over the world every year."
DOCS = {
    "kansas_txt": "The University of Kansas is a public research university. Its main campus is in Lawrence, on "
                  "Mount Oread, the highest hill in the town." + FILLER,
    "jazz_txt": "Kansas City jazz grew in the 1930s. The pianist Count Basie led the most famous band of that "
                "scene, playing riffs and blues." + FILLER,
    "swing_txt": "Swing music in Kansas City during the 1930s was shaped by the band of the pianist Count Basie, "
                 "whose riffs defined a style." + FILLER,
    "volcano_txt": "Mount St. Helens erupted in 1980 in the state of Washington, killing 57 people and "
                   "flattening forests for miles." + FILLER,
    "bread_txt": "Sourdough bread needs flour, water, salt and a starter of wild yeast that ferments the dough "
                 "slowly for many hours." + FILLER,
    "cats_txt": "Domestic cats sleep for most of the day, purr when they are content and hunt small birds and "
                "mice at dusk." + FILLER,
    "short_txt": "A note far too short to ask anything about.",
}
REPLIES = {  # a keyword of the chunk -> the LLM's reply for it
    "Mount Oread": {"question": "On which hill is the main campus of the University of Kansas?",
                    "answer": "Mount Oread"},
    "most famous band": {"question": "Which pianist led a famous Kansas City jazz band in the 1930s?",
                         "answer": "Count Basie"},
    "Swing music": {"question": "Which pianist led a famous Kansas City jazz band during the 1930s?",
                    "answer": "Count Basie"},
    "St. Helens": {"question": "Which volcano erupted in Washington in 1980?", "answer": "Mount Vesuvius"},
    "Sourdough": "Sure! Here is a question about bread: what goes into sourdough?",
    "Domestic cats": {"question": "Who wrote the play about the prince?", "answer": "cats"},
}


def scripted(messages: Sequence[dict[str, str]]) -> str:
    chunk = messages[-1]["content"]
    for key, reply in REPLIES.items():
        if key in chunk:
            return reply if isinstance(reply, str) else json.dumps(reply)
    raise AssertionError(f"no scripted reply for {chunk[-200:]!r}")


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3}


class WordOverlapReranker:
    """Stands in for the cross-encoder: relevant (5.0) when question and passage share two content words."""

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [5.0 if len(_words(q) & _words(p)) >= 2 else -5.0 for q, p in pairs]


class BagOfWordsEmbedder:
    """Stands in for MiniLM: unit-length hashed bag-of-words vectors."""

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[i, zlib.crc32(word.encode()) % 64] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture()
def kb(text_kb: Callable[..., KnowledgeBase]) -> KnowledgeBase:
    return text_kb(**DOCS)


def synthesizer(kb: KnowledgeBase, llm: FakeLLM, **options: float) -> QASynthesizer:
    synth = QASynthesizer(kb=kb, llm=llm, **options)  # type: ignore[arg-type]
    synth.reranker, synth.embedder = WordOverlapReranker(), BagOfWordsEmbedder()
    return synth


def test_filters_keep_good_items_and_count_every_drop(kb: KnowledgeBase, tmp_path: Path) -> None:
    llm = FakeLLM(respond=scripted)
    result = synthesizer(kb, llm).run(10, seed=3)
    report = result.report
    assert report.eligible_chunks == 6 and report.tried == 6  # the short note is never sampled
    assert not any("far too short" in call["messages"][-1]["content"] for call in llm.calls)
    assert {r: c for r, c in report.dropped.items() if c} == {"invalid": 1, "unsupported": 1, "unanswerable": 1,
                                                               "duplicate": 1}
    assert list(report.dropped) == list(DROP_REASONS)
    assert report.kept == len(result.items) == 2
    by_answer = {item["answers"][0]: item for item in result.items}
    assert set(by_answer) == {"Mount Oread", "Count Basie"}  # one of the two Basie questions is a near-duplicate
    assert by_answer["Mount Oread"]["doc_ids"] == ["docs/kansas.txt"]
    assert by_answer["Count Basie"]["doc_ids"][0] in ("docs/jazz.txt", "docs/swing.txt")
    assert by_answer["Mount Oread"]["chunk_id"].startswith("docs/kansas.txt::")
    assert [item["id"] for item in result.items] == ["synth-0001", "synth-0002"]
    assert report.usage.calls == 6 and report.usage.completion_tokens > 0  # failed parses are counted too
    assert result.examples["unsupported"][0]["answer"] == "Mount Vesuvius"
    assert "no JSON" in result.examples["invalid"][0]["error"]
    assert llm.calls[0]["json_schema"]["required"] == ["question", "answer"]

    path = tmp_path / "synth.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in result.items))
    data = load_dataset(path)
    assert [item.answers for item in data] == [result.items[0]["answers"], result.items[1]["answers"]]
    assert data.items[0].gold_doc_ids == result.items[0]["doc_ids"]
    assert data.items[0].metadata["chunk_id"] == result.items[0]["chunk_id"]


def test_stops_once_n_are_kept_and_the_seed_fixes_the_sample(kb: KnowledgeBase) -> None:
    first = synthesizer(kb, FakeLLM(respond=scripted)).run(1, seed=3)
    again = synthesizer(kb, FakeLLM(respond=scripted)).run(1, seed=3)
    assert first.report.kept == 1 and first.report.tried < 6
    assert first.items == again.items
    other_seeds = {synthesizer(kb, FakeLLM(respond=scripted)).run(1, seed=s).items[0]["question"] for s in range(8)}
    assert len(other_seeds) > 1


def test_thresholds_are_parameters(kb: KnowledgeBase) -> None:
    lenient = synthesizer(kb, FakeLLM(respond=scripted), min_score=-10.0, dedup=1.0, min_support=0.5).run(10)
    assert {r: c for r, c in lenient.report.dropped.items() if c} == {"invalid": 1}
    strict = synthesizer(kb, FakeLLM(respond=scripted), min_score=10.0).run(10)
    assert strict.report.kept == 0 and strict.report.dropped["unanswerable"] == 4


@pytest.mark.parametrize(("reply", "reason"), [
    ({"question": "What does the passage say about Kansas?", "answer": "Lawrence"}, "vague"),
    ({"question": "Is Mount Oread a hill in Lawrence?", "answer": "Mount Oread"}, "answer_in_question"),
    ({"question": "Where is the campus of the University of Kansas?",
      "answer": "The main campus of the university is in the town of Lawrence on Mount Oread"}, "long_answer"),
    ({"question": "Where?", "answer": "Lawrence"}, "too_short"),
    ({"question": "Where is Hamlet taught every year?", "answer": "schools"}, "off_chunk"),
    ({"question": "Where is the University of Kansas?", "answer": "the"}, "too_short"),
    ({"question": "Where is the University of Kansas?", "answer": 7}, "invalid"),
])
def test_unusable_replies_are_dropped_with_their_reason(kb: KnowledgeBase, reply: dict[str, object],
                                                        reason: str) -> None:
    result = synthesizer(kb, FakeLLM(replies=[json.dumps(reply)])).run(1)
    assert result.report.kept == 0 and result.report.dropped[reason] == result.report.tried == 3
    assert sum(result.report.dropped.values()) == 3


def test_bad_arguments_and_knowledge_bases_without_long_chunks(text_kb: Callable[..., KnowledgeBase]) -> None:
    kb = text_kb(note_txt="Too short to ask about.")
    synth = synthesizer(kb, FakeLLM(respond=scripted))
    with pytest.raises(ConfigError, match="n must be at least 1"):
        synth.run(0)
    with pytest.raises(ConfigError, match="30 words or more"):
        synth.run(5)
    with pytest.raises(ConfigError, match="dedup"):
        QASynthesizer(kb=kb, llm=FakeLLM(respond=scripted), dedup=1.5)
    with pytest.raises(ConfigError, match="oversample"):
        QASynthesizer(kb=kb, llm=FakeLLM(respond=scripted), oversample=0.5)


def test_prompt_and_support() -> None:
    messages = qa_messages("Count Basie led the band.", "Jazz")
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert json.loads(messages[1]["content"])["answer"] == "Mount Oread"  # the worked example's reply
    assert 'Passage (from "Jazz"):\nCount Basie led the band.' in messages[2]["content"]
    assert support("Count Basie", "count basie's band") == 0.5  # "basie's" is not "basie"
    assert support("the 1930s", "In the 1930s.") == 1.0 and support("", "anything") == 0.0
