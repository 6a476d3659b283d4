"""The cascade and its confidence signals with scripted LLMs: accept, escalate, budget, trace."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pilotfish.errors import ConfigError
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.base import Generation, Usage
from pilotfish.llms.fake import FakeLLM
from pilotfish.routing.cascade import Cascade
from pilotfish.routing.signals import LogprobSignal, SelfConsistencySignal, SelfVerifySignal, agree, make_signal
from tests.unit.pipelines import pipeline as make_pipeline

Q = [{"role": "user", "content": "Capital of France?"}]


def test_agreeing_samples_accept_the_small_answer() -> None:
    small = FakeLLM(replies=["Paris [1]", "Paris", "paris.", "Paris"], name="small")
    large = FakeLLM(replies=["x"], name="large")
    gen = Cascade([small, large], signal=SelfConsistencySignal(samples=3), thresholds=0.6).generate(Q)[0]
    assert gen.text == "Paris [1]" and gen.model == "small" and large.calls == []
    assert gen.details["steps"][0]["confidence"] == 1.0 and gen.details["steps"][0]["accepted"]
    assert small.calls[1]["n"] == 3 and small.calls[1]["temperature"] == 0.7


def test_disagreeing_samples_escalate_through_three_models() -> None:
    small = FakeLLM(replies=["Lyon", "Nice", "Paris"], name="small")
    middle = FakeLLM(replies=["Paris", "Marseille", "Lille"], name="middle")
    large = FakeLLM(replies=["Paris"], name="large")
    gen = Cascade([small, middle, large], signal=SelfConsistencySignal(samples=2), thresholds=[0.5, 0.5]).generate(Q)[0]
    assert gen.model == "large" and gen.details["escalations"] == 2
    assert [s["model"] for s in gen.details["steps"]] == ["small", "middle", "large"]
    assert gen.usage.calls == 5  # three answers and two rounds of samples, all counted


def test_budget_stops_escalation_and_says_so() -> None:
    small, large = FakeLLM(replies=["Lyon", "Nice"], name="small"), FakeLLM(replies=["Paris"], name="large")
    large._config = {"price_per_mtok_in": 1_000_000.0, "price_per_mtok_out": 1_000_000.0}  # $1 a token
    gen = Cascade([small, large], signal=SelfConsistencySignal(samples=1), thresholds=0.9, max_cost=0.5).generate(Q)[0]
    assert gen.model == "small" and gen.details["stopped_by_budget"] and large.calls == []
    assert "budget" in gen.details["steps"][0]["reason"]


def test_self_verify_and_logprob_signals() -> None:
    verifier = FakeLLM(replies=['{"verdict": "yes"}'])
    confidence, usage = SelfVerifySignal().confidence(verifier, Q, Generation(text="Paris"))
    assert confidence == 1.0 and usage.calls == 1
    assert "Proposed answer: Paris" in verifier.calls[0]["messages"][1]["content"]
    assert SelfVerifySignal().confidence(FakeLLM(replies=["maybe"]), Q, Generation(text="Paris"))[0] == 0.0
    sure = Generation(text="Paris", token_logprobs=(("Par", -0.01), ("is", -0.01)))
    assert LogprobSignal().confidence(FakeLLM(replies=["x"]), Q, sure)[0] == pytest.approx(0.99, abs=1e-3)
    with pytest.raises(ConfigError, match="no token log-probabilities"):
        LogprobSignal().confidence(FakeLLM(replies=["x"]), Q, Generation(text="Paris"))

    class Scorer(FakeLLM):  # a backend that scores completions teacher-forced, as llama.cpp does
        def score_completion(self, messages: object, text: str) -> tuple[list[tuple[str, float]], Usage]:
            return [("Par", -0.1), ("is", -0.3)], Usage(prompt_tokens=9, calls=1)

    confidence, usage = LogprobSignal().confidence(Scorer(replies=["x"]), Q, Generation(text="Paris"))
    assert confidence == pytest.approx(0.8187, abs=1e-4) and usage.calls == 1


def test_agreement_and_config_errors() -> None:
    assert agree("The Eiffel Tower [2]", "eiffel tower") and agree("Paris", "Paris, France")
    assert not agree("Paris", "Lyon")
    assert agree('{"answer": "Paris", "sources": [1]}'.split('"')[3], "paris")
    with pytest.raises(ConfigError, match="at least two models"):
        Cascade([FakeLLM(replies=["x"])])
    with pytest.raises(ConfigError, match="one threshold in"):
        Cascade([FakeLLM(replies=["x"]), FakeLLM(replies=["y"])], thresholds=[0.5, 0.5])
    with pytest.raises(ConfigError, match="unknown confidence signal 'vibes'"):
        make_signal("vibes")


def test_pipeline_with_a_cascade_traces_the_route(text_kb: Callable[..., KnowledgeBase]) -> None:
    kb = text_kb(kansas_txt="The University of Kansas has its main campus in Lawrence.")
    small = FakeLLM(replies=['{"answer": "Topeka", "sources": [1]}', '{"answer": "Wichita", "sources": [1]}'],
                    name="small")
    large = FakeLLM(replies=['{"answer": "Lawrence", "sources": [1]}'], name="large")
    pipeline = make_pipeline(kb, Cascade([small, large], signal=SelfConsistencySignal(samples=1)), mode="bm25",
                             style="short")
    answer = pipeline.run("Where is the main campus of the University of Kansas?")
    assert answer.text == "Lawrence [1]" and answer.model == "large"
    route = answer.trace[3].outputs["route"]
    assert route["answered_by"] == "large" and route["steps"][0]["reason"].startswith("self-consistency 0.00 <")
    assert answer.usage.calls == 3
    cascade = Cascade([FakeLLM(replies=["Lawrence [1]"] * 3, name="s"), FakeLLM(replies=["x"], name="l")])
    streamed = list(make_pipeline(kb, cascade, mode="bm25").stream("Kansas?"))
    assert streamed[0] == "Lawrence [1]" and streamed[-1].model == "s"


def test_pipeline_with_a_router_routes_per_question(text_kb: Callable[..., KnowledgeBase]) -> None:
    import numpy as np

    from pilotfish.routing.classifier import ClassifierRouter
    from pilotfish.routing.data import RoutingData

    kb = text_kb(kansas_txt="The University of Kansas has its main campus in Lawrence.")
    data = RoutingData([f"p{i}" for i in range(40)], np.array([[1, 1], [0, 1]] * 20, np.float32), ["small", "large"])
    router = ClassifierRouter(models=["small", "large"], costs=[1, 10], shape_features=False)
    router.embed = lambda prompts: np.array([[1.0, 0.0] if "campus" in p or p[1:].isdigit() and int(p[1:]) % 2 == 0
                                             else [0.0, 1.0] for p in prompts], np.float32)  # no model needed
    router.fit(data, target_quality=1.0)
    small, large = FakeLLM(replies=["Lawrence [1]"], name="small"), FakeLLM(replies=["Lawrence [1]."], name="large")
    pipeline = make_pipeline(kb, router={"path": "in-memory", "llms": {"small": "small", "large": "large"}},
                             llms={"small": small, "large": large}, components={"router": router}, mode="bm25")
    answer = pipeline.run("Where is the main campus of the University of Kansas?")
    assert answer.model == "small" and large.calls == [] and pipeline.helper_llm is small
    step = next(s for s in answer.trace if s.node == "route")
    assert step.outputs["route"]["model"] == "small" and "predicted" in step.outputs["route"]
    assert [s.node for s in answer.trace] == ["retrieve", "gate", "route", "build_prompt", "generate", "cite"]
    assert pipeline.run("Kansas University?").model == "large"
    with pytest.raises(ConfigError, match="was trained for small, large; \\[router\\] llms lacks large"):
        make_pipeline(kb, router={"path": "in-memory", "llms": {"small": "small", "huge": "large"}},
                      llms={"small": small, "large": large}, components={"router": router})
    with pytest.raises(ConfigError, match="one \\[cascade\\], \\[router\\] or \\[answer\\]"):
        make_pipeline(kb, small, router={"path": "in-memory", "llms": {"small": "small", "large": "large"}},
                      components={"router": router})
