"""DemoRetriever and PseudoLabeler with the real MiniLM embedder."""

from __future__ import annotations

import pytest

from pilotfish.errors import ConfigError
from pilotfish.llms.fake import FakeLLM
from pilotfish.prompts.demos import Demo, DemoRetriever, PseudoLabeler

POOL = [Demo("Is Paris in France?", "yes"), Demo("Is Paris located in France?", "yes"),
        Demo("Is the city of Paris in France?", "yes"), Demo("Is Marseille a French city?", "yes"),
        Demo("Who wrote the novel Dune?", "Frank Herbert"), Demo("How tall is Mount Everest?", "8,849 m")]


def test_mmr_picks_relevant_but_not_repeated_demonstrations() -> None:
    plain = DemoRetriever(POOL, k=2, diversity=0.0).select("Is Paris a city of France?")
    assert all("Paris" in d.question for d in plain)  # pure similarity: two near-copies
    diverse = DemoRetriever(POOL, k=2, diversity=0.5).select("Is Paris a city of France?")
    assert "Paris" in diverse[0].question
    assert "Paris" not in diverse[1].question  # MMR skips the paraphrases of the first pick


def test_knn_pseudo_labels_keep_only_confident_votes() -> None:
    labelled = [Demo(q, "sport") for q in ("Who won the football world cup?", "How many players are on a "
                                           "basketball team?", "Which tennis player won Wimbledon?")]
    labelled += [Demo(q, "food") for q in ("How do you bake sourdough bread?", "What spices go into curry?",
                                           "How long should pasta boil?")]
    labeler = PseudoLabeler(method="knn", k=3, min_confidence=0.6)
    found = {d.question: d for d in labeler.label(["Who scored in the football final?", "How do I cook rice?"],
                                                   labelled)}
    assert found["Who scored in the football final?"].answer == "sport"
    assert found["How do I cook rice?"].answer == "food"
    assert all(d.source == "pseudo" and 0.6 <= d.confidence <= 1.0 for d in found.values())
    strict = PseudoLabeler(method="knn", k=6, min_confidence=0.9).label(["Who scored in the football final?"], labelled)
    assert strict == []  # 3 of 6 neighbours agree at best: not confident enough


def test_llm_pseudo_labels_use_agreement_as_confidence() -> None:
    llm = FakeLLM(replies=['{"answer": "Paris"}', '{"answer": "paris."}', '{"answer": "Lyon"}', "broken",
                           '{"answer": "Paris"}'])
    kept = PseudoLabeler(method="llm", llm=llm, samples=5, min_confidence=0.7).label(["Capital of France?"])
    assert kept == [Demo("Capital of France?", "paris", 0.75, "pseudo")]  # 3 of 4 parsed votes
    with pytest.raises(ConfigError, match="needs an llm"):
        PseudoLabeler(method="llm")
    with pytest.raises(ConfigError, match="labelled items"):
        PseudoLabeler(method="knn").label(["x?"], [])
