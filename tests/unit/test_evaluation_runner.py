"""evaluate(): scores, SQL storage, resumption after a crash, and the LLM call cache, with FakeLLM."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pilotfish.errors import ConfigError
from pilotfish.evaluation.datasets import EvalDataset, EvalItem
from pilotfish.evaluation.llm_cache import CachedKB, CachedLLM
from pilotfish.evaluation.runner import evaluate
from pilotfish.evaluation.store import EvalStore
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.fake import FakeLLM
from tests.unit.pipelines import pipeline as make_pipeline

ITEMS = [EvalItem("q1", "What is the capital of France?", ["Paris"], ["docs/paris.txt"]),
         EvalItem("q2", "Which river flows through Paris?", ["the Seine"], ["docs/seine.txt"]),
         EvalItem("q3", "Who painted the Mona Lisa?", ["Leonardo da Vinci"], ["docs/mona.txt"])]


def answer_from_question(messages: list[dict[str, str]]) -> str:
    question = messages[-1]["content"].rsplit("Question:", 1)[-1]
    return "Paris [1]." if "capital" in question else "The Seine [1]." if "river" in question else "Picasso [1]."


@pytest.fixture()
def kb(text_kb: Callable[..., KnowledgeBase]) -> KnowledgeBase:
    return text_kb(paris_txt="Paris is the capital of France.", seine_txt="The Seine is a river in Paris.",
                   mona_txt="The Mona Lisa hangs in the Louvre, painted by Leonardo da Vinci.")


def test_scores_summary_and_stored_runs(kb: KnowledgeBase) -> None:
    store = EvalStore("sqlite://")
    pipeline = make_pipeline(kb, FakeLLM(respond=answer_from_question), top_k=2)
    result = evaluate(pipeline, EvalDataset("toy", ITEMS), name="base", store=store, pipeline_label="basic")
    by_id = {r["id"]: r for r in result.to_records()}
    assert by_id["q1"]["em"] == 1.0 and by_id["q2"]["em"] == 1.0 and by_id["q3"]["f1"] == 0.0
    assert by_id["q1"]["retrieved"][0] == "docs/paris.txt" and by_id["q1"]["recall@5"] == 1.0
    assert by_id["q1"]["mrr@5"] == 1.0 and by_id["q1"]["citation_precision"] == 1.0
    summary = result.summary()
    assert summary["items"] == 3 and summary["em"] == pytest.approx(2 / 3, abs=1e-4)
    assert store.list_runs()[0]["status"] == "finished" and store.run("base")["summary"]["em"] == summary["em"]
    with pytest.raises(ConfigError, match="finished run named 'base'"):
        evaluate(pipeline, EvalDataset("toy", ITEMS), name="base", store=store, pipeline_label="basic")
    with pytest.raises(ConfigError, match="no evaluation run named 'other'"):
        store.run("other")
    with pytest.raises(ConfigError, match="unknown metric group"):
        evaluate(pipeline, EvalDataset("toy", ITEMS), name="x", store=store, metrics=["bleu"])


def test_interrupted_run_resumes_without_redoing_items(kb: KnowledgeBase) -> None:
    store, calls = EvalStore("sqlite://"), []

    def flaky(messages: list[dict[str, str]]) -> str:
        calls.append(messages)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user stops the run during the second question
        return answer_from_question(messages)

    pipeline = make_pipeline(kb, FakeLLM(respond=flaky), top_k=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate(pipeline, EvalDataset("toy", ITEMS), name="r", store=store, pipeline_label="basic")
    assert store.list_runs()[0]["status"] == "running" and len(store.records(1)) == 1
    result = evaluate(pipeline, EvalDataset("toy", ITEMS), name="r", store=store, pipeline_label="basic")
    assert len(result.records) == 3 and len(calls) == 4  # one done, one interrupted, two more
    with pytest.raises(ConfigError, match="same dataset and pipeline"):
        store_two = EvalStore("sqlite://")
        store_two.start_run("s", dataset="a", pipeline="basic", config={})
        store_two.start_run("s", dataset="b", pipeline="basic", config={})


def test_cached_rerun_calls_no_llm_and_no_search(kb: KnowledgeBase, tmp_path: Path) -> None:
    fake = FakeLLM(respond=answer_from_question)
    cached = CachedLLM(fake, tmp_path / "cache.sqlite")
    pipeline = make_pipeline(CachedKB(kb, tmp_path / "search.sqlite"), cached, top_k=2)
    first = evaluate(pipeline, EvalDataset("toy", ITEMS), name="one", pipeline_label="basic")
    again = CachedLLM(fake, tmp_path / "cache.sqlite")  # a new process would open the same file
    searches = CachedKB(kb, tmp_path / "search.sqlite")
    second = evaluate(make_pipeline(searches, again, top_k=2), EvalDataset("toy", ITEMS), name="two",
                      pipeline_label="basic")
    assert len(fake.calls) == 3 and again.hits == 3 and again.misses == 0
    assert searches.hits == 3 and searches.misses == 0
    assert [r["retrieved"] for r in first.records] == [r["retrieved"] for r in second.records]
    assert [r["answer"] for r in first.records] == [r["answer"] for r in second.records]
    assert second.records[0]["prompt_tokens"] == first.records[0]["prompt_tokens"]  # original usage is kept


def test_a_failing_item_is_recorded_and_the_run_goes_on(kb: KnowledgeBase) -> None:
    from pilotfish.errors import LLMError

    def sometimes(messages: list[dict[str, str]]) -> str:
        if "river" in messages[-1]["content"].rsplit("Question:", 1)[-1]:
            raise LLMError("the server answered 503 after 3 retries")
        return answer_from_question(messages)

    pipeline = make_pipeline(kb, FakeLLM(respond=sometimes), top_k=2)
    result = evaluate(pipeline, EvalDataset("toy", ITEMS), name="e", pipeline_label="basic")
    failed = next(r for r in result.records if r["id"] == "q2")
    assert "503" in failed["error"] and failed["f1"] == 0.0 and not failed["answered"]
    assert result.summary()["errors"] == 1 and result.summary()["items"] == 3


def test_concurrent_answers_are_all_stored_once(kb: KnowledgeBase) -> None:
    store = EvalStore("sqlite://")
    pipeline = make_pipeline(kb, FakeLLM(respond=answer_from_question), top_k=2)
    seen: list[int] = []
    result = evaluate(pipeline, EvalDataset("toy", ITEMS), name="c", store=store, concurrency=3,
                      progress=lambda n, total: seen.append(n))
    assert sorted(r["id"] for r in result.records) == ["q1", "q2", "q3"] and seen == [1, 2, 3]
    assert {r["id"]: r["em"] for r in result.records} == {"q1": 1.0, "q2": 1.0, "q3": 0.0}
    with pytest.raises(ConfigError, match="concurrency"):
        evaluate(pipeline, EvalDataset("toy", ITEMS), name="d", store=store, concurrency=0)


def test_answer_similarity_takes_the_best_gold_answer(kb: KnowledgeBase) -> None:
    def embed(texts: list[str]) -> list[list[float]]:  # a word-overlap stand-in for MiniLM
        vocab = ["paris", "seine", "picasso", "leonardo", "river"]
        return [[float(w in t.lower()) for w in vocab] + [0.1] for t in texts]

    items = [*ITEMS[:2], EvalItem("q3", "Who painted the Mona Lisa?", ["Leonardo da Vinci", "Picasso"], [])]
    pipeline = make_pipeline(kb, FakeLLM(respond=answer_from_question), top_k=2)
    result = evaluate(pipeline, EvalDataset("toy", items), name="sim", metrics=["answers", "similarity"], embed=embed)
    by_id = {r["id"]: r for r in result.to_records()}
    assert by_id["q1"]["answer_similarity"] == pytest.approx(1.0)
    assert by_id["q3"]["answer_similarity"] == pytest.approx(1.0)  # "Picasso" matches the second gold answer
    assert by_id["q3"]["f1"] == 1.0 and "answer_similarity" in result.summary()
