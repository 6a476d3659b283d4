"""The graph path of the answer graph with the fake LLM: a knowledge base of triples, direct answers from the
graph, triples as the LLM's evidence, questions that link to nothing, the [graph] spec, and `ask --questions`.

No model loads here: `no_models` scores paths from a table and links without spaCy and MiniLM, and fails the
test if anything loads an embedding model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from pilotfish.answer import AnswerPipeline, PipelineSpec, build
from pilotfish.errors import ConfigError
from pilotfish.graphs.linker import EntityLinker
from pilotfish.graphs.paths import FixedPathScorer
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.knowledge.triples import ingest_triples
from pilotfish.llms.fake import FakeLLM

# triple ids are the order of the edges in the file: Forrest Gump|directed_by|Robert Zemeckis is kb:1
FILMS = """\
Forrest Gump|directed_by|Robert Zemeckis
Forrest Gump|starred_actors|Tom Hanks
Forrest Gump|release_year|1994
Cast Away|directed_by|Robert Zemeckis
Cast Away|starred_actors|Tom Hanks
Big|directed_by|Penny Marshall
Big|starred_actors|Tom Hanks
Heat|directed_by|Michael Mann
Heat|starred_actors|Al Pacino
Robert Zemeckis|alias|Bob Zemeckis
Big|directed_by
"""
BAD_LINE = 11
# what a path scorer would say for the questions below (the question does not change a fixed table)
SCORES = {("~starred_actors", "directed_by"): 0.9, ("directed_by",): 0.8, ("~directed_by",): 0.7,
          ("~starred_actors",): 0.5}
TWO_HOPS = "who directed the films that Tom Hanks starred in"
UNLINKED = "what is the weather like today"


class _PlainLinker(EntityLinker):
    """The linker as built, without spaCy NER and the MiniLM context signal."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**{**options, "ner": False, "context": False})


def _no_model(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a unit test of the graph path loaded an embedding model")


@pytest.fixture()
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """`build` (and the CLI through it) makes graph parts that need no model: the path scorer named by
    [graph] scorer is the SCORES table and the entity linker matches names only."""
    monkeypatch.setattr("pilotfish.graphs.scorers.load_scorer", lambda name: FixedPathScorer(SCORES))
    monkeypatch.setattr("pilotfish.graphs.linker.EntityLinker", _PlainLinker)
    monkeypatch.setattr("pilotfish.models.embedding.Embedder._load", _no_model)


def _films(folder: Path) -> KnowledgeBase:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "films.txt").write_text(FILMS)
    kb = KnowledgeBase.open(folder / "kb", create=True, settings={"dense": False})
    report = ingest_triples(kb, [folder / "films.txt"])
    assert (report.triples, report.total_triples, report.total_entities) == (9, 9, 10)
    assert [reason.split(":")[0] for _, reason in report.failed] == [f"line {BAD_LINE}"]
    return kb


@pytest.fixture()
def films(tmp_path: Path, no_models: None) -> KnowledgeBase:
    return _films(tmp_path)


def graph_pipeline(kb: KnowledgeBase, llm: FakeLLM, **graph: Any) -> AnswerPipeline:
    """`build` over `kb` with the fake as the [answer] model and `graph` as the [graph] table."""
    return build({"answer": {"llm": "fake"}, "graph": graph}, kb, llms={"fake": llm})


def _triples(kb: KnowledgeBase, chunk_ids: Sequence[str]) -> list[tuple[str, str, str]]:
    """The stored triples that `kb:<id>` chunk ids name, as (subject, relation, object)."""
    graph = kb.graph()
    assert graph is not None
    found = [graph.triple(graph.row_of(int(c.removeprefix("kb:")))) for c in chunk_ids]
    return [(t["subject"], t["relation"], t["object"]) for t in found]


def _outputs(answer: Any, node: str) -> dict[str, Any]:
    return next(s.outputs for s in answer.trace if s.node == node)


def test_direct_answer_names_the_best_paths_ends_and_cites_their_triples_without_the_llm(
        films: KnowledgeBase) -> None:
    llm = FakeLLM(replies=["never asked"])
    answer = graph_pipeline(films, llm, direct=True).run(TWO_HOPS)
    assert llm.calls == [] and answer.model == "graph" and answer.answered
    assert answer.text.startswith("Robert Zemeckis [1][2]") and "Penny Marshall [3][4]" in answer.text
    assert [s.node for s in answer.trace] == ["link_entities", "graph_paths"]  # done: no search, no generation
    cited = [c.chunk_id for c in answer.citations]
    assert all(c.startswith("kb:") for c in cited) and cited == [p.chunk_id for p in answer.evidence]
    assert _triples(films, cited) == [("Cast Away", "starred_actors", "Tom Hanks"),
                                      ("Cast Away", "directed_by", "Robert Zemeckis"),
                                      ("Big", "starred_actors", "Tom Hanks"),
                                      ("Big", "directed_by", "Penny Marshall")]
    assert answer.evidence[1].text == "Cast Away — directed_by — Robert Zemeckis"
    graph = answer.graph
    assert graph is not None and graph["direct"] is True and graph["route"] == "graph"
    assert graph["answers"] == ["Robert Zemeckis", "Penny Marshall"]
    assert graph["paths"][0]["path"] == ["~starred_actors", "directed_by"]
    assert [f"kb:{t}" for t in graph["paths"][0]["triples"]] == cited
    assert [(e["mention"], e["entity"]) for e in graph["entities"]] == [("Tom Hanks", "Tom Hanks")]
    assert "links to Tom Hanks" in graph["reason"] and answer.to_dict()["graph"] == graph


def test_an_alias_links_to_its_entity(films: KnowledgeBase) -> None:
    answer = graph_pipeline(films, FakeLLM(replies=["never asked"]), direct=True).run(
        "which films did Bob Zemeckis direct")
    assert answer.graph is not None and answer.graph["answers"] == ["Cast Away", "Forrest Gump"]
    assert [(e["mention"], e["entity"]) for e in answer.graph["entities"]] == [("Bob Zemeckis", "Robert Zemeckis")]
    assert answer.text == "Cast Away [1] and Forrest Gump [2]."


@pytest.mark.parametrize("direct", [False, "auto"])  # auto: only a trained scorer answers directly
def test_the_llm_reads_the_triples_as_numbered_evidence_and_cites_kb_ids(films: KnowledgeBase,
                                                                       direct: bool | str) -> None:
    llm = FakeLLM(replies=["Robert Zemeckis directed Cast Away [2], and Penny Marshall directed Big [4]."])
    answer = graph_pipeline(films, llm, direct=direct).run(TWO_HOPS)
    assert len(llm.calls) == 1 and answer.model == "fake" and answer.answered
    prompt = llm.calls[0]["messages"][-1]["content"]
    assert "[1] Cast Away — starred_actors — Tom Hanks" in prompt
    assert "[4] Big — directed_by — Penny Marshall" in prompt and "Heat" not in prompt
    assert [(c.marker, c.chunk_id) for c in answer.citations] == [(2, answer.evidence[1].chunk_id),
                                                                   (4, answer.evidence[3].chunk_id)]
    assert _triples(films, [c.chunk_id for c in answer.citations]) == [
        ("Cast Away", "directed_by", "Robert Zemeckis"), ("Big", "directed_by", "Penny Marshall")]
    assert all(p.chunk_id.startswith("kb:") and p.retriever == "graph" for p in answer.evidence)
    assert _outputs(answer, "graph_evidence")["graph"]["evidence"] == [p.chunk_id for p in answer.evidence]
    assert answer.graph is not None and answer.graph["direct"] is False
    assert answer.graph["paths"][0]["path"] == ["~starred_actors", "directed_by"]


def test_a_question_that_links_to_nothing_abstains_on_a_graph_only_kb(films: KnowledgeBase) -> None:
    llm = FakeLLM(replies=["never asked"])
    answer = graph_pipeline(films, llm, direct=True).run(UNLINKED)
    assert not answer.answered and answer.graph is None and answer.citations == [] and llm.calls == []
    route = _outputs(answer, "link_entities")["graph"]
    assert route["route"] == "none" and "links to no entity" in route["reason"]
    assert "no text" in route["reason"]
    assert [s.node for s in answer.trace][-2:] == ["gate", "abstain"]


def test_with_text_too_triples_and_passages_meet_and_an_unlinked_question_searches_the_text(
        text_kb: Callable[..., KnowledgeBase], tmp_path: Path, no_models: None) -> None:
    kb = text_kb(zemeckis_txt="Robert Zemeckis also directed Back to the Future, in 1985.")
    (tmp_path / "films.txt").write_text(FILMS)
    kb.ingest_triples([tmp_path / "films.txt"])
    llm = FakeLLM(replies=["Robert Zemeckis [2]."])
    pipeline = graph_pipeline(kb, llm, direct=False)
    both = pipeline.run(TWO_HOPS)
    assert _outputs(both, "link_entities")["graph"]["route"] == "both"
    kinds = [p.retriever for p in both.evidence]
    assert kinds[:4] == ["graph"] * 4 and any(p.doc_id.endswith("zemeckis.txt") for p in both.evidence[4:])
    text = pipeline.run("When was Back to the Future directed?")
    route = _outputs(text, "link_entities")["graph"]
    assert route["route"] == "text" and "the text search answers" in route["reason"]
    assert text.graph is None and text.evidence and text.evidence[0].doc_id.endswith("zemeckis.txt")


@pytest.mark.parametrize(("tables", "message"), [
    ({"graph": {"hops": 4}}, "[graph] hops must be 1, 2 or 3, got 4"),
    ({"graph": {"direct": "maybe"}}, "[graph] direct must be true, false or \"auto\", got 'maybe'"),
    ({"graph": {"depth": 2}}, "unknown key depth in [graph]; known: beam, direct, direct_min, evidence, hops"),
    ({"graph": {"beam": 0}}, "[graph] beam, evidence and max_fanout must be positive"),
    ({"pipeline": {"nodes": ["graph_paths", "retrieve", "generate"]}}, "node 'graph_paths' needs a [graph] table"),
    ({"graph": {}, "pipeline": {"nodes": ["graph_paths", "retrieve", "generate"]}},
     "[graph] needs 'link_entities' and 'graph_paths' in [pipeline] nodes"),
    ({"graph": {}, "pipeline": {"nodes": ["link_entities", "retrieve", "generate"]}},
     "[graph] needs 'link_entities' and 'graph_paths' in [pipeline] nodes"),
])
def test_graph_spec_errors_say_what_is_wrong(tables: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PipelineSpec.parse({"answer": {"llm": "fake"}, **tables})
    assert message in str(caught.value)


def test_a_pipeline_file_names_itself_in_errors_and_reads_a_scorer_folder_beside_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[answer]\nllm = "fake"\n\n[graph]\nhops = 0\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: \[graph\] hops must be 1, 2 or 3, got 0"):
        PipelineSpec.parse(bad)
    good = tmp_path / "good.toml"
    good.write_text('[answer]\nllm = "fake"\n\n[graph]\nscorer = "scorer"\n')
    spec = PipelineSpec.parse(good)
    assert spec.graph is not None and spec.graph.scorer == str(tmp_path / "scorer")
    plain = PipelineSpec.parse({"answer": {"llm": "fake"}, "graph": {}}).graph
    assert plain is not None and plain.scorer == "embedding"


def test_to_config_round_trip_keeps_the_graph_table(films: KnowledgeBase) -> None:
    pipeline = graph_pipeline(films, FakeLLM(replies=["x"]), hops=2, beam=4, direct=True, min_link=1.0)
    config = pipeline.to_config()
    assert config["graph"] == {"hops": 2, "beam": 4, "scorer": "embedding", "direct": True, "direct_min": 0.5,
                               "evidence": 20, "max_fanout": 500, "min_link": 1.0}
    assert config["pipeline"]["nodes"] == ["link_entities", "graph_paths", "retrieve", "graph_evidence", "generate"]
    assert PipelineSpec.parse(config) == pipeline.spec
    again = build(config, films, llms={"fake": FakeLLM(replies=["x"])})
    assert again.parts.path_retriever.hops == 2 and again.parts.entity_linker.min_score == 1.0
    assert again.run(TWO_HOPS).model == "graph"


def test_basic_over_a_kb_without_a_graph_keeps_answering_from_text(text_kb: Callable[..., KnowledgeBase],
                                                                   no_models: None) -> None:
    kb = text_kb(kansas_txt="The University of Kansas has its main campus in Lawrence, on Mount Oread.")
    llm = FakeLLM(replies=["The main campus is in Lawrence [1]."])
    answer = build("basic", kb, llm="fake", llms={"fake": llm}).run("Where is the main campus of Kansas?")
    assert answer.answered and answer.text.startswith("The main campus is in Lawrence") and len(llm.calls) == 1
    assert answer.citations[0].doc_id.endswith("kansas.txt") and answer.graph is None
    assert _outputs(answer, "link_entities")["graph"] == {"route": "text", "reason": "no knowledge graph here"}
    assert _outputs(answer, "graph_paths") == {} and _outputs(answer, "graph_evidence") == {}


def test_ask_batch_lines_carry_the_graph_when_the_graph_path_ran(tmp_path: Path, no_models: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from pilotfish.cli import app

    _films(tmp_path)
    llm = FakeLLM(replies=["Robert Zemeckis [2]."])
    monkeypatch.setattr("pilotfish.llms.resolve_llm", lambda spec, **_: llm)
    monkeypatch.delenv("PILOTFISH_DB", raising=False)
    monkeypatch.setenv("PILOTFISH_HOME", str(tmp_path / "home"))
    (tmp_path / "graph.toml").write_text("[answer]\n\n[graph]\ndirect = false\n")
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"id": "two-hops", "question": TWO_HOPS}) + "\n"
                         + json.dumps({"id": "weather", "question": UNLINKED}) + "\n")
    result = CliRunner().invoke(app, ["ask", "--questions", str(questions), "--kb", str(tmp_path / "kb"),
                                      "--llm", "fake", "--pipeline", str(tmp_path / "graph.toml"), "--json"])
    assert result.exit_code == 0, result.output
    lines = {r["id"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(lines) == {"two-hops", "weather"}
    linked = lines["two-hops"]
    assert linked["answered"] and linked["answer"] == "Robert Zemeckis [2]." and len(llm.calls) == 1
    assert linked["graph"]["paths"][0]["path"] == ["~starred_actors", "directed_by"]
    assert linked["graph"]["answers"] == ["Robert Zemeckis", "Penny Marshall"]
    assert [c["chunk_id"] for c in linked["citations"]] == [f"kb:{linked['graph']['paths'][0]['triples'][1]}"]
    assert "graph" not in lines["weather"] and not lines["weather"]["answered"]
