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


def test_stored_records_and_run_summary_carry_retrieval_scores(kb: KnowledgeBase) -> None:
    # the report and `eval compare` read the stored records, so recall@5, nDCG@5 and MRR must be stored too
    store = EvalStore("sqlite://")
    pipeline = make_pipeline(kb, FakeLLM(respond=answer_from_question), top_k=2)
    result = evaluate(pipeline, EvalDataset("toy", ITEMS), name="r", store=store, pipeline_label="basic",
                      concurrency=2)
    stored = {r["id"]: r for r in store.records(result.run_id)}
    assert stored == {r["id"]: r for r in result.to_records()}
    assert all({"recall@5", "ndcg@5", "mrr@5"} <= set(r) for r in stored.values())
    assert stored["q1"]["ndcg@5"] == 1.0 and stored["q1"]["mrr@5"] == 1.0
    summary = store.run("r")["summary"]
    assert {"recall@5", "ndcg@5", "mrr@5"} <= set(summary) and summary == result.summary()


def test_html_report_shows_the_summary_as_a_table_and_labels_every_axis(monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pilotfish.evaluation import report

    labels: list[tuple[str, str]] = []

    def figure(draw: Callable[[object], None]) -> str:  # the real drawing, keeping each plot's axis labels
        fig, ax = plt.subplots()
        draw(ax)
        labels.append((ax.get_xlabel(), ax.get_ylabel()))
        plt.close(fig)
        return "data:image/png;base64,"

    monkeypatch.setattr(report, "_figure", figure)
    store = EvalStore("sqlite://")
    run = store.start_run("basic <1>", dataset="toy", pipeline="basic", config={})
    for i in range(3):
        store.add_record(run, f"q{i}", {"question": f"Q{i}?", "answer": "A", "gold": ["A"], "f1": 1.0, "em": 1.0,
                                        "recall@5": 0.5, "ndcg@5": 0.4, "mrr@5": 0.5, "seconds": 0.5,
                                        "prompt_tokens": 10, "completion_tokens": 2})
    markdown, html = report.build_report(store, ["basic <1>"])
    assert len(labels) == 3 and all(x and y for x, y in labels), labels
    assert "<pre>" not in html and "<th>ndcg@5</th>" in html and "<th>mrr@5</th>" in html
    assert "<td>basic &lt;1&gt;</td>" in html and "<td>0.400 [0.400, 0.400]</td>" in html
    assert "| ndcg@5 | mrr@5 |" in markdown


def _eval_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., tuple[int, str]]:
    """`cli(*args, cwd=...)`: the `pilotfish` app with a FakeLLM for every LLM and a private PILOTFISH_HOME;
    returns (exit code, output)."""
    from typer.testing import CliRunner

    from pilotfish.cli import app

    monkeypatch.setenv("PILOTFISH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PILOTFISH_DB", raising=False)
    monkeypatch.setattr("pilotfish.llms.resolve_llm", lambda spec, **_: FakeLLM(respond=answer_from_question))

    def cli(*args: str, cwd: Path) -> tuple[int, str]:
        cwd.mkdir(parents=True, exist_ok=True)
        monkeypatch.chdir(cwd)
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.output

    return cli


def test_eval_runs_written_elsewhere_are_listed_and_reported(kb: KnowledgeBase, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             private_eval_registry: Path) -> None:
    import json

    cli = _eval_cli(monkeypatch, tmp_path)
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"id": i.id, "question": i.question, "answers": i.answers,
                                        "doc_ids": i.gold_doc_ids}) + "\n" for i in ITEMS))
    run = ["eval", "run", "--dataset", str(data), "--pipeline", "basic", "--kb", str(tmp_path / "kb"),
           "--style", "prose", "--no-cache"]
    code, output = cli(*run, "--out", str(tmp_path / "elsewhere"), "--name", "first", cwd=tmp_path / "a")
    assert code == 0, output
    assert all(f"\n│ {m} " in output for m in ("recall@5", "ndcg@5", "mrr@5")), output  # whole rows, not wrapped
    code, output = cli(*run, "--name", "second", cwd=tmp_path / "b")  # into b/.pilotfish-eval
    assert code == 0, output
    recorded = private_eval_registry.read_text().splitlines()  # $PILOTFISH_EVAL_REGISTRY, not PILOTFISH_HOME's
    assert str((tmp_path / "elsewhere").resolve()) in recorded and len(recorded) == 2, recorded
    assert not (tmp_path / "home" / "eval-folders.txt").exists()

    code, output = cli("eval", "list", "--json", cwd=tmp_path / "b")
    runs = {r["name"]: r for r in json.loads(output)}
    assert runs["first"]["folder"] == str((tmp_path / "elsewhere").resolve())
    assert runs["second"]["folder"] == ".pilotfish-eval" and runs["first"]["summary"]["ndcg@5"] == 1.0
    code, output = cli("eval", "list", cwd=tmp_path / "c")  # another directory: the recorded folders still
    assert code == 0 and "first" in output and "second" in output and "ndcg@5 1.000, mrr@5 1.000" in output, output

    code, output = cli("eval", "report", "first", "second", cwd=tmp_path / "b")  # two folders, one report
    assert code == 0, output
    table = [line for line in output.splitlines() if line.startswith(("| first | basic", "| second | basic"))]
    assert len(table) == 2 and all(line.endswith("|") for line in table), output  # not wrapped at 80 columns
    assert "| ndcg@5 | mrr@5 |" in output and len(table[0]) > 80
    code, output = cli("eval", "compare", "first", "second", "--json", cwd=tmp_path / "c")
    assert code == 0 and json.loads(output)["metrics"]["mrr@5"]["diff"] == 0.0, output

    code, output = cli(*run, "--name", "first", cwd=tmp_path / "b")  # a second "first", in b/.pilotfish-eval
    code, output = cli("eval", "report", "first", cwd=tmp_path / "b")
    assert code == 1 and "choose the folder with --out" in output, output
    code, output = cli("eval", "report", "first", "--out", str(tmp_path / "elsewhere"), cwd=tmp_path / "b")
    assert code == 0 and "| first |" in output, output
    code, output = cli("eval", "report", "nope", cwd=tmp_path / "b")
    assert code == 1 and "no evaluation run named 'nope'" in output, output
    code, output = cli("eval", "list", "--out", str(tmp_path / "none"), cwd=tmp_path / "b")
    assert code == 1 and "no evaluation runs in" in output, output


def test_eval_list_without_runs_says_how_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = _eval_cli(monkeypatch, tmp_path)
    code, output = cli("eval", "list", cwd=tmp_path)
    assert code == 1 and "start one with `pilotfish eval run`" in " ".join(output.split()), output
    for command in ("list", "report", "compare", "run"):
        code, output = cli("eval", command, "--help", cwd=tmp_path)
        assert code == 0 and "inside --kb" not in output and "runs.db inside" in output, output
