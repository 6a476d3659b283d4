"""The answer log with the fake LLM: off by default, answers and their LLM calls recorded when `[log]` turns it
on, retention, spec errors, a failing write that costs no answer, and the JSONL records `iter_log` reads."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from pilotfish.answer import PipelineSpec, build
from pilotfish.errors import ConfigError, LLMError, OutputParseError
from pilotfish.knowledge.answer_log import (
    AnswerLog,
    LogAnswerRow,
    LogCallRow,
    has_log,
    iter_log,
    log_stats,
    parse_since,
    prune_log,
)
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.base import Message, Usage
from pilotfish.llms.fake import FakeLLM
from pilotfish.llms.logged import LoggingLLM

KANSAS = "The University of Kansas has its main campus in Lawrence, on Mount Oread."
QUESTION = "Where is the main campus of Kansas?"
REPLY = "The main campus is in Lawrence [1]."
SPEC: dict[str, Any] = {"pipeline": {"name": "kansas"}, "answer": {"llm": "fake"}, "retrieve": {"mode": "bm25"}}
LOGGED: dict[str, Any] = {**SPEC, "log": {"enabled": True}}


@pytest.fixture()
def kb(text_kb: Callable[..., KnowledgeBase]) -> KnowledgeBase:
    return text_kb(kansas_txt=KANSAS)


def _pipeline(kb: KnowledgeBase, spec: dict[str, Any], **options: Any) -> Any:
    return build(spec, kb, llms={"fake": FakeLLM(replies=[REPLY])}, **options)


def test_the_log_is_off_by_default(kb: KnowledgeBase) -> None:
    assert not PipelineSpec.parse("basic").log.enabled and not PipelineSpec.parse(SPEC).log.enabled
    pipeline = _pipeline(kb, SPEC)
    assert pipeline.log is None and pipeline.run(QUESTION).text == REPLY
    assert not has_log(kb.store)  # not even the tables exist
    assert list(iter_log(kb.store)) == []
    assert "log" not in PipelineSpec.parse(SPEC).to_dict()  # the default is not written out


def test_an_enabled_log_records_the_answer_and_its_llm_calls(kb: KnowledgeBase) -> None:
    pipeline = _pipeline(kb, LOGGED)
    answer = pipeline.run(QUESTION)
    streamed = list(pipeline.stream(QUESTION))[-1]
    assert answer.text == streamed.text == REPLY
    records = list(iter_log(kb.store))
    assert [r["kind"] for r in records] == ["answer", "llm_call", "answer", "llm_call"]
    first, call = records[0], records[1]
    assert first["pipeline"] == "kansas" and first["question"] == QUESTION and first["answer"] == REPLY
    assert first["answered"] is True and first["model"] == "fake" and first["route"] == {"model": "fake"}
    assert [e["doc_id"] for e in first["evidence"]] == [answer.evidence[0].doc_id]
    assert first["citations"][0]["chunk_id"] == answer.evidence[0].chunk_id
    assert first["usage"]["prompt_tokens"] == answer.usage.prompt_tokens > 0 and first["seconds"] > 0
    assert call["answer_id"] == first["id"] and call["method"] == "generate" and call["model"] == "fake"
    assert call["outputs"] == [REPLY] and "Mount Oread" in call["messages"][-1]["content"]
    assert call["prompt_tokens"] == answer.usage.prompt_tokens and call["completion_tokens"] > 0
    assert call["seconds"] >= 0 and call["cost"] == 0.0 and call["error"] is None
    assert records[3]["method"] == "stream" and records[3]["answer_id"] == records[2]["id"]
    assert records[0]["created_at"].endswith("+00:00")
    stats = log_stats(kb.store)
    assert stats["answers"]["count"] == 2 and stats["models"][0]["calls"] == 2


def test_flags_override_the_spec_and_what_is_kept_can_be_chosen(kb: KnowledgeBase) -> None:
    assert _pipeline(kb, LOGGED, log=False).log is None
    on = _pipeline(kb, SPEC, log=True)
    assert on.spec.log.enabled and PipelineSpec.parse(on.spec.to_dict()) == on.spec
    answers_only = _pipeline(kb, {**SPEC, "log": {"enabled": True, "llm_calls": False}})
    assert not isinstance(answers_only.parts.llm, LoggingLLM)  # calls are not logged: the LLM is not wrapped
    answers_only.run(QUESTION)
    assert [r["kind"] for r in iter_log(kb.store)] == ["answer"]
    with pytest.raises(ConfigError, match="no knowledge base"):
        build(SPEC, None, llms={"fake": FakeLLM(replies=["x"])}, log=True)


def test_texts_are_cut_at_max_chars(kb: KnowledgeBase) -> None:
    _pipeline(kb, {**SPEC, "log": {"enabled": True, "max_chars": 10}}).run(QUESTION)
    answer, call = list(iter_log(kb.store))
    assert answer["answer"] == REPLY[:10] + f" [... {len(REPLY) - 10} characters cut]"
    assert all(m["content"].startswith(m["content"][:10]) and "characters cut" in m["content"]
               for m in call["messages"])


@pytest.mark.parametrize(("table", "message"), [
    ({"enabled": True, "days": 3}, "unknown key days in [log]; known: answers, enabled, llm_calls, max_chars"),
    ({"enabled": "yes"}, "[log] enabled must be true or false, got 'yes'"),
    ({"retention_days": -1}, "[log] retention_days must be 0 (keep forever) or more"),
    ({"max_chars": 1.5}, "[log] max_chars must be a whole number"),
])
def test_a_bad_log_table_says_what_is_wrong(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PipelineSpec.parse({**SPEC, "log": table})
    assert message in str(caught.value)


def test_retention_deletes_old_rows_of_its_own_pipeline(kb: KnowledgeBase) -> None:
    _pipeline(kb, LOGGED).run(QUESTION)  # creates the tables
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=40)
    with kb.store.transaction() as session:
        for pipeline in ("kansas", "other"):
            row = LogAnswerRow(created_at=old, pipeline=pipeline, question="q", answer="a", answer_digest="",
                               answered=True)
            session.add(row)
            session.flush()
            session.add(LogCallRow(created_at=old, answer_id=row.id, pipeline=pipeline, model="m", method="generate"))
            session.add(LogCallRow(created_at=old, answer_id=None, pipeline=pipeline, model="m", method="generate"))
    assert log_stats(kb.store)["answers"]["count"] == 3
    _pipeline(kb, {**SPEC, "log": {"enabled": True, "retention_days": 0}}).run(QUESTION)  # 0: keeps everything
    assert log_stats(kb.store)["calls"]["count"] == 6
    _pipeline(kb, {**SPEC, "log": {"enabled": True, "retention_days": 30}}).run(QUESTION)  # prunes on its write
    assert sorted(r["pipeline"] for r in iter_log(kb.store, kind="answers")) == ["kansas"] * 3 + ["other"]
    assert prune_log(kb.store, older_than_days=30) == {"answers": 1, "calls": 2, "feedback": 0}  # the other's
    assert prune_log(kb.store, older_than_days=0) == {"answers": 3, "calls": 3, "feedback": 0}
    assert list(iter_log(kb.store)) == []


def test_a_failing_log_write_does_not_break_the_answer(kb: KnowledgeBase, caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = _pipeline(kb, LOGGED)

    def broken(self: AnswerLog) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(AnswerLog, "_ensure_schema", broken)
    with caplog.at_level(logging.WARNING, logger="pilotfish.knowledge.answer_log"):
        assert pipeline.run(QUESTION).text == REPLY
        assert list(pipeline.stream(QUESTION))[-1].text == REPLY
    assert "could not write" in caplog.text and "disk full" in caplog.text and pipeline.log.failures == 2
    # a sink that raises is as harmless to a bare wrapped LLM
    llm = LoggingLLM(FakeLLM(replies=["x"]), lambda record: 1 / 0)
    assert llm.generate([{"role": "user", "content": "hi"}])[0].text == "x"


def test_the_calls_of_an_answer_that_failed_are_logged_on_their_own(kb: KnowledgeBase) -> None:
    def fail(messages: Sequence[Message]) -> str:
        raise LLMError("the endpoint is down")

    pipeline = build(LOGGED, kb, llms={"fake": FakeLLM(respond=fail)})
    with pytest.raises(LLMError):
        pipeline.run(QUESTION)
    [call] = iter_log(kb.store)
    assert call["kind"] == "llm_call" and call["answer_id"] is None
    assert call["error"] == "LLMError: the endpoint is down" and call["outputs"] == []


class _Judge(FakeLLM):
    """A fake with a scoring call, as llama.cpp has."""

    def option_probs(self, messages: Sequence[Message], options: Sequence[str]) -> tuple[dict[str, float], Usage]:
        return {o: 1.0 / len(options) for o in options}, Usage(prompt_tokens=4, calls=1)


def test_the_wrapper_passes_everything_through_and_records_scoring_and_failures() -> None:
    calls: list[dict[str, Any]] = []
    plain = LoggingLLM(FakeLLM(replies=["not json"]), calls.append)
    assert not hasattr(plain, "option_probs") and not hasattr(plain, "score_completion")
    assert getattr(plain, "passage_order", "best_first") == "best_first" and plain.name == "fake"
    with pytest.raises(OutputParseError):
        plain.generate([{"role": "user", "content": "hi"}], json_schema={"type": "object"})
    assert calls[-1]["error"].startswith("OutputParseError") and calls[-1]["outputs"] == ["not json"]
    judge = LoggingLLM(_Judge(replies=["x"], name="judge"), calls.append)
    probs, usage = judge.option_probs([{"role": "user", "content": "Supported?"}], ["Yes", "No"])
    assert probs == {"Yes": 0.5, "No": 0.5} and usage.prompt_tokens == 4
    assert calls[-1]["method"] == "option_probs" and calls[-1]["outputs"] == [probs]
    assert calls[-1]["params"] == {"options": ["Yes", "No"]} and calls[-1]["model"] == "judge"
    pieces = judge.stream([{"role": "user", "content": "hi"}])
    next(pieces)
    pieces.close()  # a consumer that stops early: recorded with what was said
    assert calls[-1]["method"] == "stream" and calls[-1]["error"] == "stopped"


def test_export_records_round_trip_through_json_and_feedback_links_to_its_answer(kb: KnowledgeBase) -> None:
    from pilotfish.serve.feedback import FeedbackStore

    _pipeline(kb, LOGGED).run(QUESTION)
    FeedbackStore(kb.store).add(None, {"question": QUESTION, "answer": REPLY, "rating": 1, "pipeline": "kansas"})
    FeedbackStore(kb.store).add(None, {"question": "other?", "answer": "never said", "rating": -1})
    records = list(iter_log(kb.store))
    lines = "".join(json.dumps(r) + "\n" for r in records)
    assert [json.loads(line) for line in lines.splitlines()] == records
    assert [r["kind"] for r in records] == ["answer", "llm_call", "feedback", "feedback"]
    assert records[2]["answer_id"] == records[0]["id"] and records[2]["rating"] == 1
    assert records[3]["answer_id"] is None
    assert [r["kind"] for r in iter_log(kb.store, kind="feedback")] == ["feedback", "feedback"]
    assert list(iter_log(kb.store, since="2999-01-01")) == []
    assert len(list(iter_log(kb.store, kind="calls", since="1d"))) == 1
    assert list(iter_log(kb.store, kind="answers", pipeline="nope")) == []
    with pytest.raises(ConfigError, match="unknown log kind"):
        list(iter_log(kb.store, kind="verdicts"))


def test_parse_since_reads_dates_times_and_ages() -> None:
    now = dt.datetime(2025, 5, 3, 12, 0)
    assert parse_since("2025-05-01T10:00+02:00") == dt.datetime(2025, 5, 1, 8, 0)
    assert parse_since("12h", now=now) == dt.datetime(2025, 5, 3, 0, 0)
    with pytest.raises(ConfigError, match=r"give a date \(2025-05-01\).*or an age \(7d, 12h\)"):
        parse_since("last week")
