"""Rewriter, decomposer, demonstrations and pipeline files with a scripted LLM: plans, fallbacks, traces."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pilotfish.answer import PipelineSpec, build
from pilotfish.errors import ConfigError
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.fake import FakeLLM
from pilotfish.prompts.builder import PromptBuilder, parse_evidence
from pilotfish.prompts.decompose import Decomposer, gate_reasons, split_comparison
from pilotfish.prompts.demos import Demo, load_pool
from pilotfish.prompts.rewrite import QueryRewriter
from pilotfish.types import Passage
from tests.unit.pipelines import pipeline as make_pipeline

DOCS = {"kansas_txt": "The University of Kansas has its main campus in Lawrence. Its fight song is the Kansas Song.",
        "lawrence_txt": "Lawrence is a city in Douglas County, Kansas, on the Kansas River.",
        "bread_md": "# Bread\n\nSourdough bread rises with a starter of wild yeast."}


@pytest.fixture()
def kb(text_kb: Callable[..., KnowledgeBase]) -> KnowledgeBase:
    return text_kb(**DOCS)


def scripted(plan: str, step_answer: str = '{"answer": "University of Kansas", "sources": [1]}',
             final: str = "The Kansas Song [1].") -> FakeLLM:
    """Replies by prompt: the planning prompt gets `plan`, a step gets `step_answer`, the answer `final`."""
    def respond(messages: Sequence[dict[str, str]]) -> str:
        if "Split it into" in messages[0]["content"]:
            return plan
        if "Facts found so far" in messages[-1]["content"] or "JSON" not in messages[0]["content"]:
            return final
        return step_answer
    return FakeLLM(respond=respond)


# -- decomposer -------------------------------------------------------------------------------------
def test_gate_decomposes_nested_and_comparison_questions_but_not_single_facts() -> None:
    assert gate_reasons("What is the fight song of the university whose main campus is in Lawrence?")
    assert "compares two things" in gate_reasons("Which was founded first, Oberlin College or Kenyon College?")
    assert gate_reasons("What is the capital of France?") == []
    assert gate_reasons("Where does sourdough bread come from?") == []


def test_comparison_is_split_by_rule_into_one_step_per_name() -> None:
    steps = split_comparison("Are both Elko Regional Airport and Gerald R. Ford International Airport in Michigan?")
    assert steps == ["Are Elko Regional Airport in Michigan?", "Are Gerald R. Ford International Airport in Michigan?",
                     "Are both Elko Regional Airport and Gerald R. Ford International Airport in Michigan?"]
    assert split_comparison("Who was born first, Connie Willis or Margaret Landon?")[:2] == [
        "Who was born first, Connie Willis?", "Who was born first, Margaret Landon?"]
    assert split_comparison("What is the fight song of the university in Lawrence?") is None


def test_plan_substitutes_earlier_answers() -> None:
    reply = '{"steps": ["Which university is in Lawrence?", "What is the fight song of #1?"]}'
    d = Decomposer(FakeLLM(replies=[reply]), gate="always")
    plan = d.plan("What is the fight song of the university in Lawrence?")
    assert plan.multi_step and plan.usage.calls == 1 and plan.fallback is None
    assert Decomposer.substitute(plan.steps[1], ["the University of Kansas"]) == \
        "What is the fight song of the University of Kansas?"


@pytest.mark.parametrize("reply, why", [("not json at all", "not valid JSON"),
                                        ('{"steps": ["When was #2 born?", "Who directed Jaws?"]}', "refers to #2"),
                                        ('{"plan": []}', "steps"),
                                        (json.dumps({"steps": [f"step {i}?" for i in range(7)]}), "more than")])
def test_unusable_plan_falls_back_to_one_step_and_says_why(reply: str, why: str) -> None:
    plan = Decomposer(FakeLLM(replies=[reply]), gate="always").plan("Who directed the film that won in 1976?")
    assert plan.steps == ["Who directed the film that won in 1976?"] and why in (plan.fallback or "")
    assert plan.usage.calls == 1  # the failed call is still paid for


def test_decomposer_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="gate"):
        Decomposer(gate="sometimes")
    with pytest.raises(ConfigError, match="max_steps"):
        Decomposer(max_steps=9)
    with pytest.raises(ConfigError, match="no llm"):
        Decomposer(gate="always").plan("Who directed the film that won in 1976?")


def test_multihop_graph_answers_steps_then_reads_all_evidence(kb: KnowledgeBase) -> None:
    llm = scripted('{"steps": ["Which university has its main campus in Lawrence?", "What is the fight song of #1?"]}')
    pipeline = make_pipeline(kb, llm, mode="bm25", top_k=3, decompose={"gate": "always"}, step_top_k=2)
    answer = pipeline.run("What is the fight song of the university whose main campus is in Lawrence?")
    assert [s.node for s in answer.trace] == ["decompose", "answer_steps", "gate", "build_prompt", "generate", "cite"]
    steps = answer.trace[1].outputs["steps"]
    assert steps[0]["answer"] == "University of Kansas"
    assert steps[1]["question"] == "What is the fight song of University of Kansas?"  # #1 filled in
    final_prompt = llm.calls[-1]["messages"][-1]["content"]
    fact = "Facts found so far:\n- Which university has its main campus in Lawrence? University of Kansas"
    assert fact in final_prompt
    assert answer.text == "The Kansas Song [1]." and answer.usage.calls == 3  # plan, step 1, answer
    assert answer.citations[0].doc_id == "docs/kansas.txt"


def test_bad_plan_falls_back_to_the_basic_graph_noted_in_the_trace(kb: KnowledgeBase) -> None:
    pipeline = make_pipeline(kb, scripted("{oops"), mode="bm25", decompose={"gate": "always"})
    answer = pipeline.run("What is the fight song of the university whose main campus is in Lawrence?")
    assert [s.node for s in answer.trace][:2] == ["decompose", "retrieve"]
    assert "not valid JSON" in answer.trace[0].outputs["plan"]["fallback"]
    assert answer.text == "The Kansas Song [1]."


def test_single_fact_question_skips_the_planner(kb: KnowledgeBase) -> None:
    llm = scripted('{"steps": ["x?", "y?"]}')
    answer = make_pipeline(kb, llm, mode="bm25", decompose={}).run("What rises sourdough?")
    assert answer.trace[0].outputs["plan"]["reason"].startswith("the gate") and len(llm.calls) == 1


# -- rewriter ---------------------------------------------------------------------------------------
def test_multi_query_rewrite_keeps_the_question_first_and_drops_repeats() -> None:
    reply = '{"queries": ["Kansas fight song", "kansas fight song?", "University of Kansas song"]}'
    rewrite = QueryRewriter(FakeLLM(replies=[reply]), mode="multi", n=3).rewrite("What is the Kansas fight song?")
    assert rewrite.queries == ["What is the Kansas fight song?", "Kansas fight song", "University of Kansas song"]


def test_rewriter_fallbacks_keep_the_question() -> None:
    broken = QueryRewriter(FakeLLM(replies=["no json"]), mode="multi").rewrite("Kansas song?")
    assert broken.queries == ["Kansas song?"] and "not valid JSON" in broken.fallback
    empty = QueryRewriter(FakeLLM(replies=["..."]), mode="hyde").rewrite("Kansas song?")
    assert empty.passage is None and empty.fallback
    llm = FakeLLM(replies=["never"])
    assert QueryRewriter(llm, mode="standalone").rewrite("Kansas song?").queries == ["Kansas song?"] and not llm.calls
    with pytest.raises(ConfigError, match="rewrite mode"):
        QueryRewriter(llm, mode="poetic")


def test_rewrite_node_fuses_the_paraphrases_results(kb: KnowledgeBase) -> None:
    llm = FakeLLM(respond=lambda m: '{"queries": ["sourdough starter yeast"]}' if "search queries" in
                  m[-1]["content"] else "Wild yeast [2].")
    pipeline = make_pipeline(kb, llm, mode="bm25", top_k=3, rewrite={"mode": "multi"})
    answer = pipeline.run("Kansas fight song?")
    assert [s.node for s in answer.trace][:2] == ["rewrite", "retrieve"]
    found = {p.doc_id for p in answer.evidence}
    assert {"docs/kansas.txt", "docs/bread.md"} <= found  # each query contributed its best document
    assert answer.usage.calls == 2


# -- demonstrations and the prompt ------------------------------------------------------------------
def test_prompt_carries_demos_and_facts_and_evidence_still_parses() -> None:
    messages = PromptBuilder().build("Who?", [Passage("c1", "d1", "Ada wrote it.", 1.0)],
                                     demos=[Demo("Who wrote Hamlet?", "Shakespeare")], notes=["Who is Ada? A writer"])
    user = messages[1]["content"]
    assert user.startswith("Examples of questions and answers:\nQuestion: Who wrote Hamlet?\nAnswer: Shakespeare")
    assert "Facts found so far:\n- Who is Ada? A writer\n\nQuestion: Who?" in user
    assert parse_evidence(messages) == ("Who?", ["Ada wrote it."])


def test_pool_file_errors_name_the_line(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"question": "Is Paris in France?", "answer": "yes"}\n{"question": "Is Lyon in France?"}\n')
    labelled, unlabelled = load_pool(pool)
    assert [d.answer for d in labelled] == ["yes"] and unlabelled == ["Is Lyon in France?"]
    pool.write_text('{"question": "ok?", "answer": "yes"}\nnot json\n')
    with pytest.raises(ConfigError, match=r"pool.jsonl:2"):
        load_pool(pool)


# -- pipeline files ---------------------------------------------------------------------------------
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipe.toml"
    path.write_text(text)
    return path


def test_pipeline_file_builds_the_graph_it_names(tmp_path: Path) -> None:
    path = write(tmp_path, '[answer]\nllm = "smollm2-135m"\nstyle = "short"\npassage_order = "best_last"\n'
                           '[retrieve]\ntop_k = 4\nrerank = true\nrerank_depth = 12\n'
                           '[rewrite]\nmode = "hyde"\n[decompose]\ngate = "always"\n'
                           '[pipeline]\nnodes = ["rewrite", "decompose", "retrieve", "rerank", "generate"]\n')
    spec = PipelineSpec.parse(path)
    assert spec.retrieve.top_k == 4 and spec.retrieve.rerank and spec.answer.style == "short"
    assert spec.answer.passage_order == "best_last" and spec.retrieve.rerank_depth == 12
    pipeline = build(spec, None)
    parts = pipeline.parts
    assert parts.rewriter.mode == "hyde" and parts.decomposer.gate == "always"
    assert parts.rewriter.llm is parts.llm  # steering chores default to the answering model
    assert parts.llm.name == "smollm2-135m" and parts.builder.to_config()["init"]["order"] == "best_last"
    drawn = pipeline.mermaid()
    assert "rewrite --> decompose" in drawn and "retrieve --> rerank" in drawn and "rerank --> gate" in drawn
    assert PipelineSpec.parse(pipeline.to_config()) == spec  # the pipeline writes the spec that rebuilds it


@pytest.mark.parametrize("text, message", [
    ('[answer]\n[pipeline]\nnodes = ["retrieve", "summon", "generate"]\n', "unknown node 'summon'"),
    ('[answer]\n[pipeline]\nnodes = ["generate", "retrieve"]\n', "impossible edge generate -> retrieve"),
    ('[answer]\n[pipeline]\nnodes = ["retrieve", "retrieve", "generate"]\n', "impossible edge retrieve -> retrieve"),
    ('[answer]\n[pipeline]\nnodes = ["retrieve"]\n', "must include 'generate'"),
    ('[answer]\n[rewrite]\n[pipeline]\nnodes = ["retrieve", "generate"]\n', "[rewrite] is configured"),
    ('[answer]\n[pipeline]\nnodes = ["retrieve", "route", "generate"]\n', "needs a [router]"),
    ('[answer]\n[decompose]\nsteps = 3\n', "unknown key steps in [decompose]"),
    ('[answer]\n[teleport]\n', "found"),
    ('[answer]\n[retrieve]\ntop_k = "five"\n', "[retrieve] top_k must be a whole number, got 'five'"),
    ('[answer]\n[retrieve]\nrerank = "yes"\n', "[retrieve] rerank must be true or false"),
    ('[answer]\n[rewrite]\nn = true\n', "[rewrite] n must be a whole number, got True"),
    ('[answer]\nmax_tokens = 1.5\n', "[answer] max_tokens must be a whole number"),
    ('[answer]\npassage_order = 1\n', "[answer] passage_order must be"),
    ('[answer]\n[demos]\npool = "d.jsonl"\ndiversity = "lots"\n', "[demos] diversity must be a number"),
    ('[answer]\n[demos]\npool = "d.jsonl"\nllm = 3\n', "[demos] llm must be"),
    ('answer = 3\n', "[answer] must be a table"),
])
def test_bad_pipeline_files_are_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        PipelineSpec.parse(write(tmp_path, text))


def test_demos_pseudo_label_with_the_llm_the_file_names(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"question": "Capital of Spain?", "answer": "Madrid"}\n'
                                      '{"question": "Capital of France?"}\n', encoding="utf-8")
    labeller = FakeLLM(replies=['{"answer": "Paris"}'] * 5, name="my-endpoint")
    spec = write(tmp_path, '[answer]\nllm = "a"\n[demos]\npool = "d.jsonl"\npseudo_label = "llm"\n'
                           'llm = "my-endpoint"\n')
    pipeline = build(spec, None, llms={"a": FakeLLM(replies=["x"]), "my-endpoint": labeller})
    assert labeller.calls and sorted(d.answer for d in pipeline.parts.demos.pool) == ["Madrid", "paris"]
    assert pipeline.spec.nodes == ("retrieve", "demos", "generate")
    bad = write(tmp_path, '[answer]\n[demos]\npool = "d.jsonl"\npseudo_label = "knn"\nllm = "my-endpoint"\n')
    with pytest.raises(ConfigError, match='only used with pseudo_label = "llm"'):
        PipelineSpec.parse(bad)


@pytest.mark.parametrize("steps, problem", [
    (["How many copies of the anecdote by Roald Dahl sold?", "What is the nationality of #1?"], "brings words"),
    (["How many copies of Roald Dahl's variation on a popular anecdote sold?", "How many sold?"], "repeats the whole"),
])
def test_plans_copied_from_the_examples_or_restating_the_question_are_refused(steps: list[str], problem: str) -> None:
    question = "How many copies of Roald Dahl's variation on a popular anecdote sold?"
    assert problem in (Decomposer.plan_problem(question, steps) or "")
    plan = Decomposer(FakeLLM(replies=[json.dumps({"steps": steps})]), gate="always").plan(question)
    assert plan.steps == [question] and problem in (plan.fallback or "")
    assert Decomposer.plan_problem("Which country is the birthplace of the author of Dune?",
                                   ["Who wrote Dune?", "Which country is the birthplace of #1?"]) is None


def test_question_weight_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="question_weight"):
        QueryRewriter(mode="multi", question_weight=0)


def test_rule_split_steps_are_searched_but_not_answered(kb: KnowledgeBase) -> None:
    llm = scripted("never asked to plan")
    pipeline = make_pipeline(kb, llm, mode="bm25", top_k=3, decompose={"answer_split_steps": False})
    answer = pipeline.run("Which is older, the University of Kansas or Sourdough bread?")
    plan = answer.trace[0].outputs["plan"]
    assert plan["search_only"] and len(plan["steps"]) == 3
    steps = answer.trace[1].outputs["steps"]
    assert all("answer" not in s for s in steps) and len(llm.calls) == 1  # only the final answer
    assert {"docs/kansas.txt", "docs/bread.md"} <= {p.doc_id for p in answer.evidence}
