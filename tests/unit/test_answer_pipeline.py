"""The answer graph with a scripted LLM: prompts, citations, abstention, trace, batch and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotfish.errors import ConfigError, LLMError, OutputParseError, QueryError
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms import resolve_llm
from pilotfish.llms.base import Usage, parse_json
from pilotfish.llms.fake import FakeLLM
from pilotfish.llms.openai_compat import OpenAICompatLLM
from pilotfish.prompts.builder import ABSTAIN_TEXT, PromptBuilder, parse_citations
from pilotfish.types import Passage
from tests.unit.pipelines import pipeline as make_pipeline


@pytest.fixture()
def kb(tmp_path: Path) -> KnowledgeBase:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kansas.txt").write_text("The University of Kansas has its main campus in Lawrence. "
                                     "Its fight song is the Kansas Song.")
    (docs / "bread.md").write_text("# Bread\n\nSourdough bread rises with a starter of wild yeast.")
    base = KnowledgeBase.open(tmp_path / "kb", create=True, settings={"tokenizer": "words", "dense": False})
    base.ingest([docs])
    return base


def test_pipeline_builds_numbered_prompt_and_maps_citations(kb: KnowledgeBase) -> None:
    llm = FakeLLM(replies=["The Kansas Song [1]. Also [9]."])
    answer = make_pipeline(kb, llm, mode="bm25", top_k=2).run("What is the Kansas fight song?")
    prompt = llm.calls[0]["messages"][1]["content"]
    assert "[1]" in prompt and "Kansas Song" in prompt and "Question: What is the Kansas fight song?" in prompt
    assert answer.answered and answer.text.startswith("The Kansas Song")
    assert answer.citations[0].doc_id == "docs/kansas.txt" and answer.citations[0].known
    assert answer.citations[1].marker == 9 and not answer.citations[1].known  # no 9th passage: marked unknown
    assert [s.node for s in answer.trace] == ["retrieve", "gate", "build_prompt", "generate", "cite"]
    assert answer.trace[3].inputs["messages"] == llm.calls[0]["messages"]  # the final prompt is in the trace
    assert answer.usage.calls == 1 and answer.usage.prompt_tokens > 0


def test_pipeline_lists_evidence_in_the_models_preferred_order(kb: KnowledgeBase) -> None:
    llm = FakeLLM(replies=["Kansas Song [1]"])
    llm.passage_order = "best_last"  # as a registry model that reads best with the best passage last
    question = "What is the fight song of Kansas sourdough bread?"
    answer = make_pipeline(kb, llm, mode="bm25", top_k=2).run(question)
    prompt = llm.calls[0]["messages"][1]["content"]
    assert prompt.index("[2]") < prompt.index("[1]")  # the best passage sits next to the question
    assert answer.citations[0].doc_id == answer.evidence[0].doc_id  # [1] still means the best passage
    plain = FakeLLM(replies=["Kansas Song [1]"])
    make_pipeline(kb, plain, mode="bm25", top_k=2, passage_order="best_first").run(question)
    assert plain.calls[0]["messages"][1]["content"].index("[1]") < plain.calls[0]["messages"][1]["content"].index("[2]")
    with pytest.raises(ConfigError, match="passage order"):
        make_pipeline(kb, plain, passage_order="shuffled")


def test_no_evidence_abstains_without_calling_the_llm(kb: KnowledgeBase) -> None:
    llm = FakeLLM(replies=["should not be called"])
    answer = make_pipeline(kb, llm, mode="bm25").run("zeppelin quasar xylophone")
    assert answer.text == ABSTAIN_TEXT and not answer.answered and llm.calls == []
    assert [s.node for s in answer.trace] == ["retrieve", "gate", "abstain"]


def test_model_that_ignores_citation_format_still_answers(kb: KnowledgeBase) -> None:
    answer = make_pipeline(kb, FakeLLM(replies=["Lawrence, I think."]), mode="bm25").run("Where is Kansas?")
    assert answer.text == "Lawrence, I think." and answer.citations == [] and answer.answered


def test_stream_yields_text_then_answer(kb: KnowledgeBase) -> None:
    items = list(make_pipeline(kb, FakeLLM(replies=["Wild yeast [1]."]), mode="bm25").stream("sourdough?"))
    assert "".join(i for i in items if isinstance(i, str)) == "Wild yeast [1]."
    assert items[-1].citations[0].doc_id == "docs/bread.md"
    assert items[-1].usage.calls == 1 and items[-1].usage.prompt_tokens > 0  # the backend's own count


COPIED = ("Wild yeast raises it [1]. The starter is kept warm. It is fed daily. Bakers share it. "
          "Some starters are a hundred years old.")


def test_prose_answer_is_cut_after_three_sentences_streamed_or_not(kb: KnowledgeBase) -> None:
    three = "Wild yeast raises it [1]. The starter is kept warm. It is fed daily."
    assert make_pipeline(kb, FakeLLM(replies=[COPIED]), mode="bm25").run("sourdough?").answer == three
    items = list(make_pipeline(kb, FakeLLM(replies=[COPIED]), mode="bm25").stream("sourdough?"))
    shown = "".join(i for i in items if isinstance(i, str))
    assert shown.strip() == three and items[-1].answer == three
    assert items[-1].usage.completion_tokens == len(COPIED.split())  # the rest was drained, so usage is whole


def test_short_style_asks_for_json_and_renders_citations(kb: KnowledgeBase) -> None:
    llm = FakeLLM(replies=['{"answer": "Kansas Song", "sources": [1, 1, 7]}'])
    answer = make_pipeline(kb, llm, mode="bm25", top_k=2, style="short").run("Kansas fight song?")
    schema = llm.calls[0]["json_schema"]
    assert schema["required"] == ["answer", "sources"]
    assert schema["properties"]["sources"]["items"]["maximum"] == len(answer.evidence)
    assert "JSON" in llm.calls[0]["messages"][0]["content"]
    assert answer.text == "Kansas Song [1][7]" and answer.answered
    assert answer.citations[0].doc_id == "docs/kansas.txt" and not answer.citations[1].known


def test_short_style_keeps_a_reply_that_breaks_the_schema(kb: KnowledgeBase) -> None:
    # A backend that ignores the schema: the raw reply is the answer, its usage is still counted.
    answer = make_pipeline(kb, FakeLLM(replies=["Lawrence [1]"]), mode="bm25", style="short").run("Kansas?")
    assert answer.text == "Lawrence [1]" and answer.citations[0].doc_id == "docs/kansas.txt"
    assert answer.usage.calls == 1 and answer.usage.completion_tokens == 2
    for reply in ('{"answer": "", "sources": [1]}', '{"answer": "I cannot answer this from the documents.", '
                                                   '"sources": [2]}'):
        answer = make_pipeline(kb, FakeLLM(replies=[reply]), mode="bm25", style="short").run("Kansas?")
        assert answer.text == ABSTAIN_TEXT and not answer.answered and answer.citations == []
    wrong_type = make_pipeline(kb, FakeLLM(replies=['{"answer": 3, "sources": "x"}']), mode="bm25",
                                style="short").run("Kansas?")
    assert wrong_type.text == '{"answer": 3, "sources": "x"}' and wrong_type.answered


def test_short_style_streams_the_whole_answer_at_once(kb: KnowledgeBase) -> None:
    pipeline = make_pipeline(kb, FakeLLM(replies=['{"answer": "wild yeast", "sources": [1]}']), mode="bm25",
                              style="short")
    items = list(pipeline.stream("What makes sourdough rise?"))
    assert items[0] == "wild yeast [1]" and items[-1].citations[0].doc_id == "docs/bread.md"
    assert [s.node for s in items[-1].trace] == ["retrieve", "gate", "build_prompt", "generate", "cite"]


def test_quoted_style_asks_for_the_sentence_first_and_finds_it_in_the_evidence(kb: KnowledgeBase) -> None:
    reply = '{"quote": "Its fight  song is the Kansas Song", "answer": "Kansas Song", "sources": [1]}'
    llm = FakeLLM(replies=[reply])
    answer = make_pipeline(kb, llm, mode="bm25", top_k=2, style="quoted").run("Kansas fight song?")
    schema = llm.calls[0]["json_schema"]
    assert list(schema["properties"])[0] == "quote" and schema["required"] == ["quote", "answer", "sources"]
    assert '"quote"' in llm.calls[0]["messages"][0]["content"]
    assert answer.text == "Kansas Song [1]" and answer.citations[0].doc_id == "docs/kansas.txt"
    assert answer.quote == {"text": "Its fight song is the Kansas Song", "passage": 1, "found": True}
    assert answer.to_dict()["quote"]["found"]


def test_quoted_style_flags_a_made_up_quote_and_keeps_broken_replies(kb: KnowledgeBase) -> None:
    made_up = '{"quote": "Kansas plays its song at every match.", "answer": "Kansas Song", "sources": [1]}'
    answer = make_pipeline(kb, FakeLLM(replies=[made_up]), mode="bm25", style="quoted").run("Kansas song?")
    assert answer.quote == {"text": "Kansas plays its song at every match.", "passage": None, "found": False}
    broken = make_pipeline(kb, FakeLLM(replies=["Lawrence [1]"]), mode="bm25", style="quoted").run("Kansas?")
    assert broken.text == "Lawrence [1]" and broken.quote is None
    abstained = '{"quote": "", "answer": "I cannot answer this from the documents.", "sources": []}'
    none = make_pipeline(kb, FakeLLM(replies=[abstained]), mode="bm25", style="quoted").run("Kansas?")
    assert not none.answered and none.quote is None
    with pytest.raises(ConfigError, match="max_tokens >= 128"):
        make_pipeline(kb, FakeLLM(replies=["x"]), style="quoted", max_tokens=64)


def test_empty_question_and_bad_config(kb: KnowledgeBase) -> None:
    with pytest.raises(QueryError):
        make_pipeline(kb, FakeLLM(replies=["x"])).run("  ")
    with pytest.raises(ConfigError):
        make_pipeline(kb, FakeLLM(replies=["x"]), top_k=0)
    with pytest.raises(ConfigError, match="unknown answer style 'fancy'"):
        make_pipeline(kb, FakeLLM(replies=["x"]), style="fancy")


def test_parse_citations_variants() -> None:
    ps = [Passage(str(i), f"d{i}", "t", 1.0) for i in range(3)]
    cites = parse_citations("A [2]. B [1, 3]; C [2][4].", ps)
    assert [(c.marker, c.doc_id, c.known) for c in cites] == [(2, "d1", True), (1, "d0", True), (3, "d2", True),
                                                              (4, "", False)]


def test_prompt_builder_truncates_long_passages() -> None:
    text = "word " * 1000
    msgs = PromptBuilder(max_chars_per_passage=200).build("q", [Passage("c", "d", text, 1.0)])
    assert len(msgs[1]["content"]) < 400 and msgs[1]["content"].count("...") == 1


def test_prompt_builder_best_last_keeps_rank_numbers() -> None:
    from pilotfish.prompts.builder import parse_evidence

    ps = [Passage("a", "d1", "Best.", 3.0), Passage("b", "d2", "Middle.", 2.0), Passage("c", "d3", "Weakest.", 1.0)]
    lines = PromptBuilder(order="best_last").build("q", ps)[1]["content"].splitlines()
    assert lines[2:5] == ["[3] Weakest.", "[2] Middle.", "[1] Best."]
    # a reader of the prompt gets the evidence back in number order, so [n] still means passage n
    assert parse_evidence(PromptBuilder(order="best_last").build("q", ps))[1] == ["Best.", "Middle.", "Weakest."]
    with pytest.raises(ConfigError, match="passage order"):
        PromptBuilder(order="random")


def test_parse_json_and_schema_errors() -> None:
    assert parse_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json("{\"a\": \"x\ny\"}") == {"a": "x\ny"}  # a raw newline inside a string, as small models write
    with pytest.raises(OutputParseError) as err:
        parse_json("no json here")
    assert err.value.raw == "no json here"
    with pytest.raises(OutputParseError):
        parse_json('{"a": 1}', {"type": "object", "required": ["b"]})
    with pytest.raises(OutputParseError):
        FakeLLM(replies=["not json"]).generate([{"role": "user", "content": "x"}], json_schema={"type": "object"})


def test_usage_adds_up() -> None:
    total = Usage(1, 2, 0.5, 0.01, 1) + Usage(3, 4, 0.25, 0.02, 1)
    assert (total.prompt_tokens, total.completion_tokens, total.calls, total.total_tokens) == (4, 6, 2, 10)
    assert total.cost == pytest.approx(0.03)


def test_resolve_llm_specs_and_errors() -> None:
    assert resolve_llm("qwen2.5-0.5b", settings={}).name == "qwen2.5-0.5b"
    assert resolve_llm("openai:gpt-4o-mini", settings={}).name == "gpt-4o-mini"
    named = resolve_llm("mine", settings={"llms": {"mine": {"type": "openai", "model": "m",
                                                           "base_url": "http://127.0.0.1:9/v1"}}})
    assert named.name == "m"
    with pytest.raises(ConfigError, match="unknown LLM"):
        resolve_llm("gpt-17", settings={})
    with pytest.raises(ConfigError, match="not a chat LLM"):
        resolve_llm("minilm-l6", settings={})


def test_openai_compat_missing_key_and_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PF_TEST_KEY", raising=False)
    llm = OpenAICompatLLM(model="m", api_key_env="PF_TEST_KEY")
    with pytest.raises(LLMError, match="PF_TEST_KEY is not set"):
        llm.generate([{"role": "user", "content": "hi"}])
    down = OpenAICompatLLM(model="m", base_url="http://127.0.0.1:9/v1", api_key_env=None, timeout=2, max_retries=0)
    with pytest.raises(LLMError, match="cannot reach"):
        down.generate([{"role": "user", "content": "hi"}])


def test_uncited_answer_is_attributed_by_similarity(kb: KnowledgeBase) -> None:
    class Similar:  # a knowledge base whose embedding model finds sentence 1 close to passage 2
        def __init__(self, base: KnowledgeBase) -> None:
            self.base = base

        def search(self, *args: object, **kwargs: object) -> list[Passage]:
            return [Passage("a", "A", "alpha text", 1.0), Passage("b", "B", "beta text", 0.9)]

        def similarity(self, *args: object) -> list[float]:
            return [0.9, 0.8]

        def similarities(self, sentences: list[str], passages: list[Passage]) -> list[list[float]]:
            return [[0.1, 0.8], [0.2, 0.3]][: len(sentences)]

    answer = make_pipeline(Similar(kb), FakeLLM(replies=["Beta is the answer here. Nothing else matters now."])
                            ).run("which?")
    assert [(c.doc_id, c.attributed) for c in answer.citations] == [("B", True)]  # 0.3 < 0.5: no second link


def test_price_table_sets_cost_per_model() -> None:
    settings = {"prices": {"gpt-4o-mini": {"in": 0.15, "out": 0.6}},
                "llms": {"mini": {"type": "openai", "model": "gpt-4o-mini", "api_key_env": None}}}
    for spec in ("openai:gpt-4o-mini", "mini"):
        llm = resolve_llm(spec, settings=settings)
        init = llm.to_config()["init"]
        assert (init["price_per_mtok_in"], init["price_per_mtok_out"]) == (0.15, 0.6)
    with pytest.raises(ConfigError, match="give numbers"):
        resolve_llm("openai:gpt-4o-mini", settings={"prices": {"gpt-4o-mini": {"in": "cheap"}}})


def test_openai_compat_cost_from_usage() -> None:
    from types import SimpleNamespace

    llm = OpenAICompatLLM(model="m", api_key_env=None, price_per_mtok_in=2.0, price_per_mtok_out=8.0)
    reply = SimpleNamespace(usage=SimpleNamespace(prompt_tokens=1000, completion_tokens=500),
                            choices=[SimpleNamespace(message=SimpleNamespace(content="hi"), finish_reason="stop")])
    gen = llm._generations(reply, 0.1, None)[0]
    assert gen.usage.cost == pytest.approx((1000 * 2.0 + 500 * 8.0) / 1e6)


def test_a_cancelled_stream_stops_generating_and_stores_nothing(kb: KnowledgeBase) -> None:
    import threading

    from pilotfish.errors import GenerationCancelled

    cancel = threading.Event()
    pipeline = make_pipeline(kb, FakeLLM(replies=["Wild yeast raises it [1] and the starter is fed daily."]),
                             mode="bm25")
    stream = pipeline.stream("sourdough?", cancel=cancel)
    assert isinstance(next(stream), str)
    cancel.set()
    with pytest.raises(GenerationCancelled):
        list(stream)
    cancel_first = threading.Event()
    cancel_first.set()
    with pytest.raises(GenerationCancelled, match="before"):  # no node runs at all
        list(pipeline.stream("sourdough?", cancel=cancel_first))
