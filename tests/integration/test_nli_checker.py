"""The shipped NLI model (`nli-small`) and the checkers built on it, on clear-cut real sentences."""

from __future__ import annotations

import pytest

from pilotfish.models.nli import NLIModel
from pilotfish.verification.checker import NLIGroundednessChecker
from pilotfish.verification.uncertainty import SemanticEntropy

pytestmark = pytest.mark.integration

KANSAS = ("The University of Kansas is a public research university with its main campus in Lawrence, Kansas. "
          "It was founded in 1865 and is the largest university in the state.")


@pytest.fixture(scope="module")
def nli() -> NLIModel:
    return NLIModel()


def test_three_way_probabilities_on_clear_pairs(nli: NLIModel) -> None:
    entail, contra = nli.predict([("A man is playing a guitar on stage.", "A man is playing an instrument."),
                                  ("A man is playing a guitar on stage.", "Nobody is playing anything.")])
    assert entail.label == "entailment" and contra.label == "contradiction"
    for s in (entail, contra):
        assert abs(s.entailment + s.neutral + s.contradiction - 1.0) < 1e-6


def test_checker_finds_the_supporting_passage_and_flags_the_rest(nli: NLIModel) -> None:
    checker = NLIGroundednessChecker.default()
    verdict = checker.check("The University of Kansas has its main campus in Lawrence. It was founded in 1990.",
                            ["Kansas City jazz developed in the 1930s.", KANSAS])
    first, second = verdict.claims
    assert first.label == "supported" and first.passage == 1
    assert second.label != "supported" and verdict.label != "supported"
    assert 0.0 <= verdict.supported == min(first.supported, second.supported)


def test_long_evidence_is_read_in_windows(nli: NLIModel) -> None:
    filler = " ".join(f"Chapter {i} of the report describes the weather in the region during that year."
                      for i in range(40))
    evidence = filler + " " + KANSAS
    assert len(nli.windows(evidence, "It was founded in 1865.")) > 1
    verdict = NLIGroundednessChecker.default().check("The University of Kansas was founded in 1865.", [evidence])
    assert verdict.claims[0].label == "supported"


def test_semantic_entropy_separates_agreeing_from_disagreeing_answers(nli: NLIModel) -> None:
    entropy = SemanticEntropy(model=nli)
    question = "Where is the main campus of the University of Kansas?"
    agree = entropy.measure(["Lawrence, Kansas", "in Lawrence, Kansas", "Lawrence, Kansas."], question=question)
    split = entropy.measure(["Lawrence, Kansas", "Topeka", "Wichita"], question=question)
    assert agree.entropy < split.entropy
