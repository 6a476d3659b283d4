"""`pilotfish distill` and `pilotfish train nli --teacher` as a user runs them: real models, tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli
from .test_cli import assert_clean_error

pytestmark = pytest.mark.e2e


@pytest.fixture()
def kb(docs: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "kb"
    assert run_cli("ingest", str(docs), "--kb", str(folder)).returncode == 3  # the corrupt PDF is reported
    return folder


def _questions(kb: Path, path: Path) -> Path:
    """A synth-style set: for each document, a question made of words from the middle of its text."""
    from pilotfish.knowledge.base import KnowledgeBase

    rows = KnowledgeBase.open(kb).corpus().rows
    first = {}
    for row in rows:
        first.setdefault(row.doc_id, row)
    with path.open("w") as fh:
        for i, row in enumerate(first.values()):
            words = row.text.split()
            middle = " ".join(words[len(words) // 3: len(words) // 3 + 10])
            fh.write(json.dumps({"id": f"q{i}", "question": f"What does it say about {middle}?",
                                 "answers": ["x"], "doc_ids": [row.doc_id]}) + "\n")
    return path


def test_distill_refuses_bad_input(kb: Path, tmp_path: Path) -> None:
    assert_clean_error(run_cli("distill", "router", "--kb", str(kb), "--name", "x"), "unknown component 'router'")
    assert_clean_error(run_cli("distill", "nli", "--kb", str(tmp_path / "none"), "--name", "x"),
                       "no knowledge base at")
    assert_clean_error(run_cli("distill", "nli", "--kb", str(kb), "--name", "x"), "needs --teacher")
    assert_clean_error(run_cli("distill", "embedder", "--kb", str(kb), "--name", "x"), "no training data")
    assert_clean_error(run_cli("distill", "embedder", "--kb", str(kb), "--name", "kb-embedder", "--pairs",
                               str(tmp_path / "none.jsonl")), "none.jsonl does not exist")
    assert_clean_error(run_cli("distill", "embedder", "--kb", str(kb), "--name", "minilm-l6", "--pairs",
                               str(tmp_path / "none.jsonl")), "a packaged model's name")
    assert_clean_error(run_cli("distill", "embedder", "--kb", str(kb), "--name", "Bad Name!"), "is not usable")
    assert_clean_error(run_cli("distill", "reranker", "--kb", str(kb), "--name", "x", "--margin", "-1"),
                       "--margin must be 0 or more")
    no_gold = tmp_path / "no-gold.jsonl"
    no_gold.write_text(json.dumps({"id": "1", "question": "Who?", "answers": ["x"]}) + "\n")
    assert_clean_error(run_cli("distill", "embedder", "--kb", str(kb), "--name", "x", "--dataset", str(no_gold)),
                       "no gold document ids")
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text(json.dumps({"id": "1", "question": "Who?", "answers": ["x"], "doc_ids": ["nope"]}) + "\n")
    assert_clean_error(run_cli("distill", "embedder", "--kb", str(kb), "--name", "x", "--dataset", str(elsewhere)),
                       "none of the gold documents")


def test_distill_embedder_keeps_the_current_model_when_the_student_does_not_win(kb: Path, tmp_path: Path) -> None:
    questions = _questions(kb, tmp_path / "synth.jsonl")
    result = run_cli("distill", "embedder", "--kb", str(kb), "--name", "kb-embedder", "--dataset", str(questions),
                     "--held-out", "0.34", "--minutes", "0.1", "--margin", "1.0", "--threads", "1")
    assert result.returncode == 2, result.stderr  # ran, measured, kept the current model
    assert "not promoted" in result.stdout and "under the margin of 1.000" in result.stdout
    reports = list((kb / "models" / "kb-embedder").glob("*/distill-report.json"))
    assert len(reports) == 1
    saved = json.loads(reports[0].read_text())
    assert saved["decision"]["current"] == "minilm-l6" and not saved["decision"]["promoted"]
    assert 0.0 <= saved["decision"]["before"] <= 1.0 and saved["report"]["train_pairs"] > 0
    listed = json.loads(run_cli("models", "list", "--json").stdout)
    assert "kb-embedder" not in {row["name"] for row in listed}


def test_train_nli_refuses_a_teacher_that_cannot_teach(kb: Path, tmp_path: Path) -> None:
    """SmolLM2-135M gives every claim P(Yes) under 0.5: the command says so before it trains anything."""
    out = tmp_path / "kb-nli"
    result = run_cli("train", "nli", "--teacher", "smollm2-135m", "--documents", str(kb), "--passages", "12",
                     "--minutes", "0.2", "--out", str(out), "--name", "kb-nli", "--threads", "1")
    assert_clean_error(result, "the teacher calls no held-out claim supported", "use a stronger teacher")
    assert len((out / "teacher-labels.jsonl").read_text().splitlines()) > 20  # the labels are kept for a rerun
    assert not (out / "model.onnx").exists()
    assert "kb-nli" not in {row["name"] for row in json.loads(run_cli("models", "list", "--json").stdout)}
