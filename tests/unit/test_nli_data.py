"""NLI training data: loading labelled pairs with clear errors, and FactCC-style synthesis."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pilotfish.errors import ConfigError
from pilotfish.training.nli_data import LABELS, load_pairs, synthesize

DOCS = [["Ada Lovelace was born in 1815 in London, England.", "She is often regarded as the first programmer.",
         "Her father was the poet Lord Byron, who left England in 1816."],
        ["The Thames flows through London for many miles.", "It is 346 kilometres long, the longest in England."],
        ["Marie Curie won the Nobel Prize in Physics in 1903.", "She was the first woman to win a Nobel Prize.",
         "Curie was born in Warsaw, which was then part of Russia."]]


def test_synthesis_changes_facts_for_contradictions_and_keeps_them_for_entailment() -> None:
    pairs = synthesize(DOCS, per_document=6, seed=3)
    assert {p.label for p in pairs} == set(LABELS)
    for p in pairs:
        if p.label == "entailment":  # the hypothesis is a sentence of the premise, or its head clause
            assert p.hypothesis in p.premise or p.hypothesis[:-1] in p.premise
        elif p.label == "contradiction":  # exactly one fact changed: not in the premise, but close to a sentence
            assert p.hypothesis not in p.premise
            assert any(len(set(p.hypothesis.split()) & set(s.split())) >= len(s.split()) - 3
                       for s in p.premise.split(". "))
        else:
            assert p.hypothesis not in p.premise
    assert synthesize(DOCS, per_document=6, seed=3) == pairs  # reproducible


def test_load_pairs_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "ok.jsonl.gz"
    with gzip.open(good, "wt") as fh:
        fh.write(json.dumps({"premise": "A dog runs.", "hypothesis": "An animal runs.", "label": "entailment"}) + "\n")
    assert load_pairs([good])[0].label == "entailment"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"premise": "A", "hypothesis": "B", "label": "maybe"}) + "\n")
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: label 'maybe'"):
        load_pairs([bad])
    bad.write_text('{"premise": "A"}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: need premise, hypothesis and label"):
        load_pairs([bad])


def test_free_cores_counts_cores_busy_now(monkeypatch: pytest.MonkeyPatch) -> None:
    from pilotfish.training import nli_train

    monkeypatch.setattr(nli_train.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(nli_train.time, "sleep", lambda _: None)
    ticks = iter([(1000, 500), (2000, 1000)])  # half of the jiffies idle: two of four cores busy
    monkeypatch.setattr(nli_train, "_cpu_times", lambda: next(ticks))
    assert nli_train.free_cores() == 2
    ticks = iter([(1000, 500), (2000, 500)])  # no idle time at all: still one thread
    assert nli_train.free_cores() == 1
