"""ChatSession with a scripted LLM: follow-up rewriting, stored turns, usage per turn and per session."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from pilotfish.answer.chat import ChatSession
from pilotfish.errors import QueryError
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.fake import FakeLLM
from tests.unit.pipelines import pipeline as make_pipeline


def respond(messages: Sequence[dict[str, str]]) -> str:
    text = messages[-1]["content"]
    if "standalone" in text.lower():  # the rewrite prompt
        return "When was the University of Kansas founded?"
    return "In 1865 [1]." if "Question: When" in text else "The University of Kansas [1]."


def test_follow_up_is_rewritten_counted_and_resumed(text_kb: Callable[..., KnowledgeBase]) -> None:
    kb = text_kb(ku_txt="The University of Kansas is in Lawrence. It was founded in 1865.")
    pipeline = make_pipeline(kb, FakeLLM(respond=respond), mode="bm25")
    chat = ChatSession.open(pipeline, name="t")
    first = chat.ask("Which university is in Lawrence?")
    assert first.trace[0].node == "rewrite" and first.trace[0].outputs["usage"]["calls"] == 0
    second = chat.ask("and when was it founded?")
    assert second.question == "When was the University of Kansas founded?" and "1865" in second.text
    assert second.trace[0].outputs["standalone"] == second.question
    assert second.usage.calls == 2  # the rewrite and the answer
    assert chat.usage.calls == 3 and chat.usage.total_tokens == first.usage.total_tokens + second.usage.total_tokens
    resumed = ChatSession.open(pipeline, name="t")
    assert len(resumed.history) == 4 and resumed.history[1] == ("assistant", "The University of Kansas [1].")
    assert (resumed.usage.calls, resumed.usage.total_tokens) == (chat.usage.calls, chat.usage.total_tokens)
    with pytest.raises(QueryError):
        resumed.ask("  ")
