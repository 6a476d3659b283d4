"""The NLI checker's logic, the verify actions and the verify node, with a scripted NLI model and FakeLLM.

The real model's quality is measured in benchmarks/nli_claims.py; the integration tests load it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pilotfish.answer import PipelineSpec, build
from pilotfish.errors import ConfigError
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.base import Usage
from pilotfish.llms.fake import FakeLLM
from pilotfish.models.nli import NLIScores
from pilotfish.prompts.builder import ABSTAIN_TEXT
from pilotfish.types import Passage
from pilotfish.verification.checker import NLIGroundednessChecker, as_claim, language_problem, split_claims
from pilotfish.verification.repair import AnswerVerifier, drop_claims
from pilotfish.verification.uncertainty import SelfConsistencyChecker, SemanticEntropy
from tests.unit.pipelines import pipeline as make_pipeline


class ScriptedNLI:
    """Entails a hypothesis whose words all occur in the premise; contradicts one that says "not" wrongly."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def _score(self, premise: str, hypothesis: str) -> NLIScores:
        self.pairs.append((premise, hypothesis))
        words = {w.strip(".,\"'?").lower() for w in premise.split()}
        wanted = [w.strip(".,\"'?").lower() for w in hypothesis.split()]
        share = sum(w in words for w in wanted) / max(1, len(wanted))
        if "never" in wanted and "never" not in words:
            return NLIScores(0.02, 0.08, 0.9, premise)
        if share == 1.0:
            return NLIScores(0.95, 0.04, 0.01, premise)
        return NLIScores(share * 0.6, 1 - share * 0.6 - 0.05, 0.05, premise)  # partial overlap: the uncertain band

    def predict_windows(self, pairs: Sequence[tuple[str, str]], *, focus: int = 0) -> list[list[NLIScores]]:
        return [[self._score(p, h)] for p, h in pairs]

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[NLIScores]:
        return [self._score(p, h) for p, h in pairs]


def scripted(**kwargs: object) -> NLIGroundednessChecker:
    checker = NLIGroundednessChecker(**kwargs)  # type: ignore[arg-type]
    checker.nli = ScriptedNLI()  # type: ignore[assignment]
    return checker


EVIDENCE = ["Paris is the capital of France and its largest city.", "The Seine flows through Paris."]


def test_claims_get_labels_and_the_weakest_claim_decides() -> None:
    verdict = scripted().check("Paris is the capital of France [1]. Paris was never a city. Lyon has a zoo.",
                               EVIDENCE)
    assert [c.label for c in verdict.claims] == ["supported", "contradicted", "unsupported"]
    assert verdict.claims[0].passage == 0 and verdict.claims[0].claim == "Paris is the capital of France."
    assert verdict.label == "contradicted" and verdict.supported == min(c.supported for c in verdict.claims)
    assert "1 of 3" in verdict.reason


def test_unverifiable_input_is_never_supported() -> None:
    checker = scripted()
    empty = checker.check("Paris is the capital of France.", [])
    assert empty.label == "unverifiable" and empty.supported == 0.0 and "no evidence" in empty.reason
    assert checker.check("  [1] ", EVIDENCE).label == "unverifiable"
    german = checker.check("Die Hauptstadt von Frankreich ist Paris und sie ist sehr schön.", EVIDENCE)
    assert german.label == "unverifiable" and "English" in german.reason
    assert language_problem("Paris is the capital of France, with many museums and parks.") is None
    assert language_problem("東京は日本の首都であり、世界最大の都市圏を持つ都市である。") is not None


def test_short_answers_are_read_with_their_question() -> None:
    assert as_claim("1889", "When did the tower open?") == 'The answer to "When did the tower open?" is 1889.'
    assert as_claim("The tower opened in 1889 for the fair.", "When?") == "The tower opened in 1889 for the fair."
    assert split_claims("It opened in 1889 [2]. Dr. Smith saw it.") == ["It opened in 1889.", "Dr. Smith saw it."]


def test_uncertain_band_goes_to_the_llm_judge_and_its_cost_counts() -> None:
    judge = FakeLLM(replies=["Yes"], name="judge")
    verdict = scripted(llm=judge, band=(0.2, 0.9)).check("Paris is the capital of France. The Seine is long.",
                                                         EVIDENCE)
    first, second = verdict.claims
    assert first.judge == "nli" and second.judge == "llm" and second.supported == 1.0 and second.label == "supported"
    assert len(judge.calls) == 1 and "The Seine is long." in judge.calls[0]["messages"][-1]["content"]
    assert verdict.usage.calls == 1


def test_option_probabilities_are_used_when_the_backend_has_them() -> None:
    class ProbJudge(FakeLLM):
        def option_probs(self, messages: object, options: Sequence[str]) -> tuple[dict[str, float], Usage]:
            return {"Yes": 0.3, "No": 0.7}, Usage(prompt_tokens=50, calls=1)

    verdict = scripted(llm=ProbJudge(replies=["unused"]), band=(0.2, 0.9)).check("The Seine is long.", EVIDENCE)
    assert verdict.claims[0].supported == 0.3 and verdict.claims[0].label == "unsupported"
    assert verdict.usage.prompt_tokens == 50


def test_thresholds_round_trip_and_bad_settings(tmp_path: Path) -> None:
    checker = NLIGroundednessChecker(threshold=0.7, contradiction=0.6, band=(0.2, 0.8))
    checker.save_thresholds(tmp_path / "t.json", calibrated_on="test")
    again = NLIGroundednessChecker.from_thresholds(tmp_path / "t.json")
    assert (again.threshold, again.contradiction, again.band) == (0.7, 0.6, (0.2, 0.8))
    with pytest.raises(ConfigError, match="probability"):
        NLIGroundednessChecker(threshold=1.5)
    with pytest.raises(ConfigError, match="band"):
        NLIGroundednessChecker(band=(0.9, 0.1))
    with pytest.raises(ConfigError, match="cannot read"):
        NLIGroundednessChecker.from_thresholds(tmp_path / "missing.json")


def test_actions_drop_abstain_accept() -> None:
    text = "Paris is the capital of France [1]. Lyon has a zoo [2]."
    verdict = scripted().check(text, EVIDENCE)
    dropped, did, _ = AnswerVerifier(scripted(), action="drop").apply(text, verdict)
    assert dropped == "Paris is the capital of France [1]." and "dropped 1" in did
    assert AnswerVerifier(scripted(), action="abstain").apply(text, verdict)[0] == ABSTAIN_TEXT
    assert AnswerVerifier(scripted(), action="accept").apply(text, verdict)[0] == text
    nothing = scripted().check("Lyon has a zoo.", EVIDENCE)
    assert AnswerVerifier(scripted(), action="drop").apply("Lyon has a zoo.", nothing)[0] == ABSTAIN_TEXT
    assert drop_claims("Paris is big [1]. Lyon is small.", ["Lyon is small."]) == "Paris is big [1]."
    with pytest.raises(ConfigError, match="unknown verify action"):
        AnswerVerifier(scripted(), action="delete")


def test_rewrite_uses_the_small_llm_and_rechecks() -> None:
    text = "Paris is the capital of France. Lyon has a zoo."
    writer = FakeLLM(replies=["Paris is the capital of France. Lyon is big."])
    verdict = scripted().check(text, EVIDENCE)
    new, did, usage = AnswerVerifier(scripted(), action="rewrite", rewrite_llm=writer).apply(
        text, verdict, question="What is the capital?",
        passages=[Passage(str(i), "d", t, 1.0) for i, t in enumerate(EVIDENCE)])
    assert new == "Paris is the capital of France." and "rewrote" in did and usage.calls == 1


def test_verify_node_drops_claims_and_records_the_verdict(text_kb: Callable[..., KnowledgeBase]) -> None:
    kb = text_kb(paris_txt="Paris is the capital of France and its largest city.")
    llm = FakeLLM(replies=["Paris is the capital of France [1]. It has ten moons [1]."])
    pipeline = make_pipeline(kb, llm, verify={"action": "drop"},
                             components={"verifier": AnswerVerifier(scripted(), action="drop")})
    answer = pipeline.run("What is the capital of France?")
    assert answer.text == "Paris is the capital of France [1]." and answer.answered
    assert answer.verification["label"] == "unsupported" and answer.verification["action"] == "drop"
    assert [c["label"] for c in answer.verification["claims"]] == ["supported", "unsupported"]
    assert [s.node for s in answer.trace][-1] == "verify"
    streamed = list(pipeline.stream("What is the capital of France?"))
    assert streamed[0] == answer.text and streamed[-1].verification["label"] == "unsupported"


def test_retrieve_loop_is_bounded_and_counts_every_call(text_kb: Callable[..., KnowledgeBase]) -> None:
    kb = text_kb(paris_txt="Paris is the capital of France.", moon_txt="The Moon orbits the Earth.")
    llm = FakeLLM(replies=["Paris has ten moons [1]."])  # never supported, so every round retries
    pipeline = make_pipeline(kb, llm, verify={"action": "retrieve", "retries": 2},
                             components={"verifier": AnswerVerifier(scripted(), action="retrieve", retries=2)})
    answer = pipeline.run("What is the capital of France?")
    nodes = [s.node for s in answer.trace]
    assert nodes.count("retrieve_again") == 2 and nodes.count("generate") == 3
    assert answer.usage.calls == 3 and answer.text == ABSTAIN_TEXT and not answer.answered


def test_pipeline_files_with_a_verify_table(tmp_path: Path) -> None:
    good = tmp_path / "p.toml"
    good.write_text('[answer]\nllm = "smollm2-135m"\n[verify]\naction = "abstain"\nthreshold = 0.6\n')
    verifier = build(good, None).parts.verifier
    assert verifier.action == "abstain" and verifier.checker.threshold == 0.6
    bad = tmp_path / "bad.toml"
    bad.write_text('[answer]\n[verify]\nactoin = "drop"\n')
    with pytest.raises(ConfigError, match="unknown key actoin"):
        PipelineSpec.parse(bad)
    two = tmp_path / "two.toml"
    two.write_text('[answer]\nllm = "c"\n[cascade]\nmodels = ["a", "b"]\n')
    with pytest.raises(ConfigError, match="one \\[cascade\\], \\[router\\] or \\[answer\\]"):
        PipelineSpec.parse(two)


def test_self_consistency_and_semantic_entropy_with_a_scripted_model() -> None:
    nli = ScriptedNLI()
    sc = SelfConsistencyChecker(model=nli)  # type: ignore[arg-type]
    result = sc.measure("Paris is big. Paris was never founded.", ["Paris is big and old.", "Paris is big."])
    assert result.scores[1] > 0.8 > result.scores[0] and result.sentences[0] == "Paris is big."
    se = SemanticEntropy(model=nli)  # type: ignore[arg-type]
    same = se.measure(["Paris", "paris.", "the Paris"], question="Capital?")
    split = se.measure(["Paris", "Lyon", "Nice", "Lille"], question="Capital?")
    assert same.clusters == [[0, 1, 2]] and same.entropy == 0.0
    assert len(split.clusters) == 4 and split.entropy == pytest.approx(1.3863, abs=1e-4)
    with pytest.raises(ConfigError):
        SemanticEntropy(model=nli, n=1)  # type: ignore[arg-type]


def test_nli_signal_checks_the_answer_against_the_prompts_evidence() -> None:
    from pilotfish.llms.base import Generation
    from pilotfish.prompts.builder import PromptBuilder, parse_evidence
    from pilotfish.routing.signals import NLISignal, make_signal

    passages = [Passage(str(i), "d", t, 1.0) for i, t in enumerate(EVIDENCE)]
    messages = PromptBuilder().build("What is the capital of France?", passages)
    assert parse_evidence(messages) == ("What is the capital of France?", EVIDENCE)
    signal = make_signal("nli")
    assert isinstance(signal, NLISignal)
    signal._checker = scripted()
    sure, usage = signal.confidence(FakeLLM(replies=["x"]), messages,
                                    Generation(text="Paris is the capital of France [1]."))
    unsure, _ = signal.confidence(FakeLLM(replies=["x"]), messages, Generation(text="Lyon has a zoo [2]."))
    assert sure > 0.9 > unsure and usage.calls == 0


def test_a_number_the_evidence_never_writes_caps_the_claim() -> None:
    from pilotfish.verification.checker import NUMBER_MISSING_CAP, missing_numbers

    class NumberBlind(ScriptedNLI):  # like the small model: 3.3 and 3.4 read alike
        def _score(self, premise: str, hypothesis: str) -> NLIScores:
            return NLIScores(0.9, 0.05, 0.05, premise)

    checker = NLIGroundednessChecker()
    checker.nli = NumberBlind()  # type: ignore[assignment]
    verdict = checker.check("tmux 3.3 is installed.", ["Release 3.4 of tmux added popup windows."])
    assert verdict.label == "unsupported" and verdict.supported == NUMBER_MISSING_CAP
    assert "3.3 not in the evidence" in verdict.claims[0].reason
    assert checker.check("tmux 3.4 is installed.", ["Release 3.4 of tmux added popup windows."]).label == "supported"
    assert missing_numbers("It has three parts and 1,000 tests.", "3 parts, 1000 tests") == []
    assert missing_numbers("Founded on 7 April 2022.", "founded 2022") == ["7"]


def test_abstain_basis_decides_on_the_weakest_best_or_mean_claim() -> None:
    text = "Paris is the capital of France. It has 80 million people."
    verdict = scripted().check(text, EVIDENCE)
    supports = sorted(c.supported for c in verdict.claims)
    assert supports[0] < 0.5 <= supports[1]  # one claim supported, one not
    assert AnswerVerifier(scripted(), action="abstain").apply(text, verdict)[0] == ABSTAIN_TEXT
    kept, did, _ = AnswerVerifier(scripted(), action="abstain", basis="best").apply(text, verdict)
    assert kept == text and did.startswith("accepted: best claim support")
    strict = AnswerVerifier(scripted(threshold=0.99), action="abstain", basis="best")
    assert strict.apply(text, verdict)[1].startswith("abstained: best claim support")
    with pytest.raises(ConfigError, match="unknown verify basis 'median'"):
        AnswerVerifier(scripted(), action="abstain", basis="median")


def test_a_lead_in_about_the_sources_is_not_part_of_the_claim() -> None:
    from pilotfish.verification.checker import missing_numbers, split_claims
    from pilotfish.verification.repair import drop_claims

    text = "According to the evidence, Paris is the capital of France [1]. Based on the passages, it has a zoo."
    assert split_claims(text) == ["Paris is the capital of France.", "it has a zoo."]
    assert drop_claims(text, ["it has a zoo."]) == "According to the evidence, Paris is the capital of France [1]."
    verdict = scripted().check(text, EVIDENCE)
    assert verdict.claims[0].label == "supported"
    # a number the question itself gives is not the answer's to prove
    assert scripted().check("The war had over 60 million casualties.", ["The war ended in 1945."],
                            question="Which war had over 60 million casualties?").claims[0].reason == ""
    assert missing_numbers("over 60 million", "1945") == ["60"]


def test_the_default_gate_keeps_what_it_cannot_check_and_skips_multi_hop_questions() -> None:
    gate = AnswerVerifier(scripted(), action="abstain", basis="best", abstain_below=0.1, when="single-hop")
    text = "Der Eiffelturm steht in Paris und wurde 1889 eröffnet, er ist sehr hoch und bekannt."
    verdict = gate.check("Wo steht der Eiffelturm?", text, [])
    assert verdict is not None and verdict.label == "unverifiable"
    assert gate.apply(text, verdict)[:2] == (text, f"kept unchecked: {verdict.reason}")
    assert gate.skips("Which writer was from England, Henry Roth or Robert Erskine Childers?")
    assert gate.skips("Which version of tmux is installed?") is None
