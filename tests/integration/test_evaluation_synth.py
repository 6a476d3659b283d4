"""QASynthesizer's filters with the real models: a MiniLM knowledge base, the ms-marco cross-encoder, FakeLLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilotfish.evaluation.datasets import load_dataset
from pilotfish.evaluation.synth import QASynthesizer
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.fake import FakeLLM
from tests.unit.test_evaluation_synth import DOCS, scripted

pytestmark = pytest.mark.integration


def test_real_reranker_and_embedder_filter_as_the_fakes_do(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name.replace("_", ".")).write_text(text)
    kb = KnowledgeBase.open(tmp_path / "kb", create=True)  # MiniLM chunks and dense index
    kb.ingest([docs])
    result = QASynthesizer(kb=kb, llm=FakeLLM(respond=scripted)).run(10, seed=3)
    # "Who wrote the play Hamlet?" of the cats chunk is what the cross-encoder rejects; the two Count
    # Basie questions differ by one word, well over MiniLM's 0.9 cosine.
    dropped = {reason: count for reason, count in result.report.dropped.items() if count}
    assert dropped == {"invalid": 1, "unsupported": 1, "unanswerable": 1, "duplicate": 1}
    assert sorted(item["answers"][0] for item in result.items) == ["Count Basie", "Mount Oread"]
    assert all(item["score"] > 0.0 for item in result.items)
    path = tmp_path / "synth.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in result.items))
    data = load_dataset(path)
    assert len(data) == 2 and data.items[0].gold_doc_ids == result.items[0]["doc_ids"]
    assert {item.gold_doc_ids[0] for item in data} - {"docs/jazz.txt", "docs/swing.txt"} == {"docs/kansas.txt"}
