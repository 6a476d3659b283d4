"""The promotion gate of `pilotfish distill`: a student replaces the current model only when it wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilotfish.errors import ConfigError
from pilotfish.models.trained import register_model, registered_models
from pilotfish.training.distill import PromotionGate, _decide, current_model, student_folder


def test_gate_needs_the_margin() -> None:
    gate = PromotionGate("ndcg@10", margin=0.02)
    assert gate.decide(0.50, 0.53)[0]
    assert not gate.decide(0.50, 0.51)[0]
    assert not gate.decide(0.50, 0.40)[0]
    assert "the current model stays" in gate.decide(0.5, 0.5)[1]
    assert PromotionGate("auroc", margin=0.0).decide(0.5, 0.5)[0]  # margin 0: a tie is enough


def test_current_model_is_the_registered_one_or_the_default(tmp_path: Path) -> None:
    assert current_model("nli", "support-nli") == "nli-small"
    assert current_model("embedder", "support-emb", default="bge-small") == "bge-small"
    register_model("support-nli", tmp_path, role="nli")
    assert current_model("nli", "support-nli") == str(tmp_path.resolve())
    with pytest.raises(ConfigError, match="registered as a nli model"):
        current_model("reranker", "support-nli")
    with pytest.raises(ConfigError, match="unknown component"):
        current_model("router", "x")


def _student(tmp_path: Path, stamp: str) -> Path:
    folder = tmp_path / "models" / "kb-nli" / stamp
    folder.mkdir(parents=True)
    return folder


def test_a_worse_student_is_never_promoted(tmp_path: Path) -> None:
    gate = PromotionGate("auroc", margin=0.01)
    first = _student(tmp_path, "1")
    result = _decide("nli", "kb-nli", "nli-small", first, {"n": 1}, before=0.60, after=0.70, gate=gate)
    assert result["decision"]["promoted"] and registered_models()["kb-nli"]["path"] == str(first.resolve())
    worse = _student(tmp_path, "2")
    result = _decide("nli", "kb-nli", str(first), worse, {"n": 2}, before=0.70, after=0.65, gate=gate)
    assert not result["decision"]["promoted"]
    assert registered_models()["kb-nli"]["path"] == str(first.resolve())  # still the first student
    saved = json.loads((worse / "distill-report.json").read_text())
    assert saved["decision"]["before"] == 0.7 and saved["decision"]["after"] == 0.65 and saved["report"] == {"n": 2}
    better = _student(tmp_path, "3")
    _decide("nli", "kb-nli", str(first), better, {}, before=0.70, after=0.75, gate=gate)
    entry = registered_models()["kb-nli"]
    assert entry["path"] == str(better.resolve()) and entry["previous"][-1]["path"] == str(first.resolve())
    assert entry["card"]["decision"]["why"].startswith("auroc 0.750 beats 0.700")


def test_student_folders_are_per_name(tmp_path: Path) -> None:
    folder = student_folder(tmp_path, "kb-nli")
    assert folder.parent == tmp_path / "kb-nli" and len(folder.name) == 15


def test_a_pipeline_names_its_reranker(tmp_path: Path) -> None:
    from pilotfish.answer.spec import PipelineSpec
    from pilotfish.knowledge.base import KnowledgeBase

    spec = PipelineSpec.parse({"answer": {"llm": "fake"}, "retrieve": {"rerank": True, "reranker": "kb-reranker"}})
    assert spec.retrieve.reranker == "kb-reranker"
    assert PipelineSpec.parse(spec.to_dict()).retrieve.reranker == "kb-reranker"  # round-trips
    with pytest.raises(ConfigError, match="reranker"):
        PipelineSpec.parse({"answer": {"llm": "fake"}, "retrieve": {"reranker": 3}})
    kb = KnowledgeBase.open(tmp_path / "kb", create=True)
    assert kb.reranker_for("kb-reranker") is kb.reranker_for("kb-reranker")
    assert kb.reranker_for("kb-reranker") is not kb.reranker
    assert kb.reranker.to_config()["init"]["model"] == "ms-marco-l12"
