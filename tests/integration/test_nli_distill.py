"""NLI distillation end to end on real passages with a deterministic teacher: labels, nli-small continued
with its own head, int8 export, held-out comparison, calibrated thresholds, and the promotion gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.models import model_path
from pilotfish.models.trained import registered_models
from pilotfish.training.distill import PromotionGate, distill_nli_round
from pilotfish.verification.checker import NLIGroundednessChecker
from tests.unit.test_nli_teacher import OverlapTeacher

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docs"


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list:
    kb = KnowledgeBase.open(tmp_path_factory.mktemp("kb") / "kb", create=True, settings={"dense": False})
    kb.ingest(sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".md", ".txt"))[:8])
    return kb.corpus().rows


def test_a_round_trains_measures_and_registers_only_a_winner(rows: list, tmp_path: Path) -> None:
    teacher = OverlapTeacher()
    options = {"passages": 20, "minutes": 0.3, "epochs": 1, "batch_size": 8, "max_length": 128, "threads": 1}
    result = distill_nli_round(rows, teacher, name="kb-nli", root=tmp_path, gate=PromotionGate("auroc", 1.0),
                               **options)
    decision, report = result["decision"], result["report"]
    assert not decision["promoted"] and "kb-nli" not in registered_models()  # no AUROC gain of 1.0 exists
    student = Path(decision["student"])
    assert decision["current"] == "nli-small" and 0.5 <= report["before"] <= 1.0
    assert report["claims_labelled"] == teacher.calls > 15 and report["claims_held_out"] > 0
    assert (student / "model.onnx").is_file() and json.loads((student / "thresholds.json").read_text())["threshold"]
    # The student is a checker model like nli-small: same labels, scores in [0, 1].
    verdict = NLIGroundednessChecker.default(model=str(student)).check("Paris is in France.",
                                                                        ["Paris is the capital of France."])
    assert 0.0 <= verdict.supported <= 1.0 and verdict.label in ("supported", "unsupported", "contradicted")

    # A second round with no margin promotes when it is at least as good, then resolves by name.
    again = distill_nli_round(rows, OverlapTeacher(), name="kb-nli", root=tmp_path,
                              gate=PromotionGate("auroc", -1.0), **options)
    assert again["decision"]["promoted"]
    assert model_path("kb-nli") == Path(again["decision"]["student"]).resolve()
