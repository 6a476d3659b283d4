"""One assembly path: specs parse once, `build` makes every pipeline, the CLI's answering commands all go
through it, every LLM a spec names can be wrapped (the eval cache), and a pipeline writes the spec that
rebuilds it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import pilotfish.answer
from pilotfish.answer import AnswerPipeline, PipelineSpec, build
from pilotfish.cli import app
from pilotfish.errors import ConfigError
from pilotfish.evaluation.llm_cache import CachedLLM
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.fake import FakeLLM

KANSAS = "The University of Kansas has its main campus in Lawrence. Its fight song is the Kansas Song."
THREE = {"answer": {"llm": "answerer", "style": "short", "max_tokens": 64},
         "rewrite": {"mode": "multi", "llm": "rewriter"}, "decompose": {"gate": "always", "llm": "planner"},
         "retrieve": {"mode": "bm25", "top_k": 2}}


def fakes() -> dict[str, FakeLLM]:
    return {"answerer": FakeLLM(replies=['{"answer": "Lawrence", "sources": [1]}'] * 9, name="answerer"),
            "rewriter": FakeLLM(replies=['{"queries": ["Kansas campus"]}'] * 9, name="rewriter"),
            "planner": FakeLLM(replies=['{"steps": ["Where is the University of Kansas?"]}'] * 9, name="planner")}


def test_the_eval_cache_sees_every_llm_a_spec_names(text_kb: Callable[..., KnowledgeBase], tmp_path: Path) -> None:
    from pilotfish.cli.eval import _cached

    kb = text_kb(kansas_txt=KANSAS)
    spec = PipelineSpec.parse(THREE)
    assert spec.llm_names == ["answerer", "rewriter", "planner"]
    first = fakes()
    pipeline = build(spec, kb, llms=first, wrap_llm=_cached(tmp_path / "llm-cache.sqlite"))
    parts = pipeline.parts
    wrapped = [parts.llm, parts.rewriter.llm, parts.decomposer.llm]
    assert all(isinstance(x, CachedLLM) for x in wrapped) and [x.name for x in wrapped] == list(first)
    answer = pipeline.run("Where is the main campus of the University of Kansas?")
    assert answer.text.startswith("Lawrence") and all(llm.calls for llm in first.values())
    # a second run over the same cache asks none of the three models anything
    again = fakes()
    rerun = build(spec, kb, llms=again, wrap_llm=_cached(tmp_path / "llm-cache.sqlite"))
    assert rerun.run("Where is the main campus of the University of Kansas?").text == answer.text
    assert not any(llm.calls for llm in again.values())


def test_a_pipeline_writes_the_spec_that_rebuilds_it(tmp_path: Path) -> None:
    (tmp_path / "pool.jsonl").write_text('{"question": "Capital of Spain?", "answer": "Madrid"}\n')
    file = tmp_path / "p.toml"
    file.write_text('[pipeline]\ndescription = "everything"\n[answer]\nllm = "a"\nstyle = "quoted"\nmax_tokens = 160\n'
                    '[retrieve]\nmode = "bm25"\ntop_k = 3\nrerank = true\ncompress = 4\n'
                    '[rewrite]\nmode = "hyde"\n[decompose]\n[demos]\npool = "pool.jsonl"\nk = 1\n'
                    '[verify]\naction = "abstain"\nthreshold = 0.6\njudge = "b"\nband = [0.2, 0.8]\n')
    llms = {"a": FakeLLM(replies=["x"], name="a"), "b": FakeLLM(replies=["y"], name="b")}
    pipeline = build(file, None, llms=llms)
    assert pipeline.spec.nodes == ("rewrite", "decompose", "retrieve", "rerank", "compress", "demos", "generate",
                                   "verify")
    config = json.loads(json.dumps(pipeline.to_config()))  # plain data, as a file or an API would carry it
    rebuilt = build(config, None, llms=llms)
    assert rebuilt.spec == pipeline.spec and rebuilt.mermaid() == pipeline.mermaid()
    assert rebuilt.parts.verifier.checker.threshold == 0.6 and rebuilt.parts.demos.k == 1
    cascade = build("cascade", None)
    assert PipelineSpec.parse(cascade.to_config()) == cascade.spec and "answer" in cascade.to_config()
    assert "llm" not in cascade.to_config()["answer"]  # the cascade names its own models


def test_node_names_are_the_same_in_the_spec_the_trace_and_the_drawing(text_kb: Callable[..., KnowledgeBase]) -> None:
    kb = text_kb(kansas_txt=KANSAS)
    pipeline = build({"answer": {"llm": "f"}, "retrieve": {"mode": "bm25", "compress": 1}}, kb,
                     llms={"f": FakeLLM(replies=["Lawrence [1]."])})
    pipeline.parts.compressor.scores = lambda q, sentences: [float(len(s)) for s in sentences]
    answer = pipeline.run("Where is the University of Kansas?")
    traced = [s.node for s in answer.trace]
    drawn = pipeline.mermaid()
    for node in pipeline.spec.nodes:
        assert node in traced and f"\t{node}(" in drawn
    assert traced == ["retrieve", "gate", "compress", "build_prompt", "generate", "cite"]


def test_the_stream_comes_from_the_graph(text_kb: Callable[..., KnowledgeBase]) -> None:
    kb = text_kb(kansas_txt=KANSAS)
    pipeline = build({"answer": {"llm": "f"}, "retrieve": {"mode": "bm25"}}, kb,
                     llms={"f": FakeLLM(replies=["Lawrence is the campus [1]."])})
    items = list(pipeline.stream("Where is the University of Kansas?"))
    pieces, answer = items[:-1], items[-1]
    assert len(pieces) > 1 and "".join(pieces).strip() == answer.text == "Lawrence is the campus [1]."
    assert [s.node for s in answer.trace] == ["retrieve", "gate", "build_prompt", "generate", "cite"]
    assert answer.usage.calls == 1 and answer.citations[0].doc_id == "docs/kansas.txt"
    assert answer.text == pipeline.run("Where is the University of Kansas?").text


@pytest.mark.parametrize("source, message", [
    ("turbo", "unknown pipeline 'turbo'"),
    ({"retrieve": {"top_k": 3}}, "one [cascade], [router] or [answer]"),
    ({"answer": {"llm": "a"}, "cascade": {"models": ["a", "b"]}}, "one [cascade], [router] or [answer]"),
    ({"answer": {}, "pipeline": {"nodes": ["retrieve", "rerank", "generate"]}, "retrieve": {"rerank": False}},
     "rerank = false but 'rerank' is in"),
    ({"answer": {}, "retrieve": {"compress": 3}, "pipeline": {"nodes": ["retrieve", "generate"]}},
     "compress is set but 'compress' is not"),
    ({"answer": {}, "verify": {"band": [0.2]}}, "band must be [LOW, HIGH]"),
    ({"cascade": {"models": ["a", "b"], "signal": "logprob", "samples": 3}}, "self-consistency signal only"),
])
def test_bad_specs_name_what_is_wrong(source: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=__import__("re").escape(message)):
        PipelineSpec.parse(source)


def test_cli_defaults_yield_to_the_file_and_the_declared_nodes(tmp_path: Path) -> None:
    file = tmp_path / "p.toml"
    file.write_text('[answer]\nstyle = "short"\n[retrieve]\ntop_k = 2\n[pipeline]\nnodes = ["retrieve", "generate"]\n')
    spec = PipelineSpec.parse(file, defaults={"retrieve": {"top_k": 5, "rerank": True, "mode": "bm25"},
                                              "answer": {"style": "prose", "max_tokens": 48}})
    assert (spec.retrieve.top_k, spec.retrieve.mode, spec.retrieve.rerank) == (2, "bm25", False)
    assert (spec.answer.style, spec.answer.max_tokens, spec.nodes) == ("short", 48, ("retrieve", "generate"))
    implied = PipelineSpec.parse("basic", defaults={"retrieve": {"rerank": True}})
    # basic links tables and entities (a knowledge base without tables or a graph skips them) and abstains after
    # generation
    assert implied.nodes == ("link_tables", "link_entities", "graph_paths", "retrieve", "rerank", "sql",
                             "table_evidence", "graph_evidence", "generate", "verify")


def test_ask_chat_eval_and_pipelines_show_all_build_through_build(text_kb: Callable[..., KnowledgeBase],
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    kb = text_kb(kansas_txt=KANSAS)
    built: list[tuple[str, tuple[str, ...]]] = []
    real = pilotfish.answer.build

    def spy(spec: Any, kb: Any = None, **options: Any) -> AnswerPipeline:
        parsed = PipelineSpec.parse(spec, llm=options.pop("llm", None))
        options["llms"] = {n: FakeLLM(respond=lambda m: '{"answer": "Lawrence", "sources": [1]}', name=n)
                           for n in parsed.llm_names}
        built.append((parsed.name, parsed.nodes))
        return real(parsed, kb, **options)

    monkeypatch.setattr(pilotfish.answer, "build", spy)
    runner = CliRunner()
    where = ["--kb", str(kb.directory)]
    ask = runner.invoke(app, ["ask", "Where is the campus?", *where, "--llm", "fake", "--mode", "bm25", "--json"])
    assert ask.exit_code == 0, ask.output
    chat = runner.invoke(app, ["chat", *where, "--llm", "fake", "--mode", "bm25", "--pipeline", "verified"],
                         input="/exit\n")
    assert chat.exit_code == 0, chat.output
    show = runner.invoke(app, ["pipelines", "show", "multihop"])
    assert show.exit_code == 0 and "decompose" in show.output
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "Where is the main campus of the University of Kansas?", "answer": "Lawrence"}\n')
    run = runner.invoke(app, ["eval", "run", "--dataset", str(data), *where, "--pipeline", "basic", "--llm", "fake",
                              "--out", str(tmp_path / "eval"), "--no-cache"])
    assert run.exit_code == 0, run.output
    assert [name for name, _ in built] == ["basic", "verified", "multihop", "basic"]
    assert built[1][1] == ("link_tables", "link_entities", "graph_paths", "retrieve", "sql", "table_evidence",
                           "graph_evidence", "generate", "verify")
