"""Claims from passages, teacher labels with a resumable cache, and the soft-label loss."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pilotfish.errors import ConfigError
from pilotfish.training.nli_teacher import ClaimPair, claim_pairs, read_labels, sample_passages, teacher_label

PASSAGES = [
    ("d1", "Aspirin lowers fever in adults within an hour. It was first made in 1897 by Felix Hoffmann at Bayer."),
    ("d1", "Aspirin also thins the blood of most patients. Daily doses are given after a heart attack in Germany."),
    ("d2", "Vitamin D is made in the skin under sunlight.Deficiency weakens the bones of children in Norway."),
]


class OverlapTeacher:
    """Says Yes when every word of the claim is in the passage; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def option_probs(self, messages: list[dict[str, str]], options: list[str]) -> tuple[dict[str, float], Any]:
        self.calls += 1
        text = messages[-1]["content"]
        evidence, claim = text.split("\n\nClaim: ")
        claim = claim.split("\n\n")[0]
        inside = all(w.strip(".,").lower() in evidence.lower() for w in claim.split())
        return {"Yes": 0.9 if inside else 0.1, "No": 0.1 if inside else 0.9}, None


def test_claim_pairs_make_three_kinds_from_each_passage() -> None:
    pairs = claim_pairs(PASSAGES, per_passage=2, seed=1)
    kinds = {p.kind for p in pairs}
    assert kinds == {"entailment", "contradiction", "neutral"}
    for pair in pairs:
        assert pair.premise in {text for _, text in PASSAGES} and pair.hypothesis not in ("", pair.premise)
    # A full stop without a following space still ends a sentence ("sunlight.Deficiency").
    assert any(p.hypothesis.startswith("Deficiency weakens") for p in pairs if p.doc_id == "d2") or \
        any(p.hypothesis.startswith("Vitamin D is made in the skin under sunlight.") for p in pairs)
    assert claim_pairs(PASSAGES, per_passage=2, seed=1) == pairs  # fixed by the seed


def test_sample_passages_is_seeded_and_refuses_an_empty_corpus() -> None:
    class Row:
        def __init__(self, doc_id: str, text: str) -> None:
            self.doc_id, self.text = doc_id, text

    rows = [Row(f"d{i}", " ".join(["word"] * 40) + f" {i}") for i in range(10)]
    assert sample_passages(rows, 3, seed=4) == sample_passages(rows, 3, seed=4)
    assert len(sample_passages(rows, 50)) == 10
    with pytest.raises(ConfigError, match="ingest your documents first"):
        sample_passages([Row("x", "too short")], 3)


def test_teacher_labels_are_cached_and_resumed(tmp_path: Path) -> None:
    pairs = claim_pairs(PASSAGES, per_passage=1, seed=0)
    cache = tmp_path / "labels.jsonl"
    teacher = OverlapTeacher()
    first = teacher_label(pairs[:3], teacher, cache=cache)
    assert teacher.calls == 3 and all(p.teacher in (0.9, 0.1) for p in first)
    assert first[0].teacher == 0.9  # the entailed claim is a sentence of its passage
    with cache.open("a") as fh:
        fh.write('{"key": "torn')  # a run killed mid-write
    again = teacher_label(pairs, teacher, cache=cache)
    assert teacher.calls == len(pairs)  # only the new pairs went to the teacher
    assert [p.teacher for p in again[:3]] == [p.teacher for p in first]
    assert len(read_labels(cache)) == len(pairs)


def test_teacher_without_probabilities_is_refused() -> None:
    with pytest.raises(ConfigError, match="option probabilities"):
        teacher_label([ClaimPair("p", "h", "neutral")], object())


def test_teacher_stops_at_its_deadline(tmp_path: Path) -> None:
    pairs = claim_pairs(PASSAGES, per_passage=1, seed=0)
    assert teacher_label(pairs, OverlapTeacher(), deadline=0.0) == []


def test_soft_loss_is_binary_cross_entropy_on_entailment() -> None:
    torch = pytest.importorskip("torch")
    from pilotfish.training.nli_data import NLIPair
    from pilotfish.training.nli_train import _loss

    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    label_id = {"entailment": 0, "neutral": 1, "contradiction": 2}
    batch = [NLIPair("p", "h", "entailment", target=0.8), NLIPair("p", "h", "contradiction")]
    q = torch.softmax(logits, dim=-1)
    want = (-(0.8 * q[0, 0].log() + 0.2 * (1 - q[0, 0]).log()) - q[1, 2].log()) / 2
    assert torch.isclose(_loss(logits, batch, label_id), want, atol=1e-5)


def test_labels_file_lines_carry_the_pair(tmp_path: Path) -> None:
    cache = tmp_path / "labels.jsonl"
    teacher_label(claim_pairs(PASSAGES[:1], seed=0)[:1], OverlapTeacher(), cache=cache)
    record = json.loads(cache.read_text().splitlines()[0])
    assert {"key", "premise", "hypothesis", "kind", "doc_id", "teacher"} <= set(record)
