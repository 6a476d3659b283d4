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



GZIP = {"gzip-1_12_txt": "gzip 1.12 was released on 2022-04-07. It fixed the zgrep bug.",
        "gzip-1_13_txt": "gzip 1.13 was released on 2023-08-19, the last release of gzip.",
        "xz-1_12_txt": "xz 1.12 was released on 2010-01-01, a bug fix release."}


def gzip_llm(rewrite: str) -> FakeLLM:
    """The rewrite prompt gets `rewrite`; an answer gives the date of the first passage, citing it."""
    import re

    def respond(messages: Sequence[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        if "standalone" in text.lower():
            return rewrite
        if "Question: What changed" in text:
            return "It fixed the zgrep bug [1]."
        found = re.search(r"\d{4}-\d{2}-\d{2}", text.split("[1]", 1)[-1])
        return f"On {found.group()} [1]." if found else "I cannot answer this from the documents."

    return FakeLLM(respond=respond)


def test_a_rewrite_that_drops_the_version_is_replaced(text_kb: Callable[..., KnowledgeBase]) -> None:
    """Defect 10: "the last release of gzip" instead of "release 1.12", then a date from the wrong passage."""
    from sqlalchemy import select

    from pilotfish.knowledge.store import ChatMessageRow

    kb = text_kb(**GZIP)
    lossy = "When was the last release of gzip?"
    assert kb.search(lossy, mode="bm25", top_k=1)[0].doc_id.endswith("gzip-1.13.txt")  # what went wrong
    chat = ChatSession.open(make_pipeline(kb, gzip_llm(lossy), mode="bm25"), name="gzip")
    chat.ask("What changed in release 1.12 of gzip?")
    second = chat.ask("When was it released?")
    assert second.question == "When was it released? (release 1.12 of gzip)"
    step = second.trace[0].outputs
    assert step["restored"] == ["1.12"] and step["rewritten"] == lossy and "previous question" in step["rule"]
    assert second.text == "On 2022-04-07 [1]." and second.citations[0].doc_id.endswith("gzip-1.12.txt")
    with kb.store.reading() as session:
        asked = session.scalars(select(ChatMessageRow).where(ChatMessageRow.role == "user")
                                .order_by(ChatMessageRow.id)).all()
    assert asked[1].meta == {"standalone": second.question, "restored": ["1.12"]}
    resumed = ChatSession.open(chat.pipeline, name="gzip")  # resumed: "it" still means gzip 1.12
    assert resumed.understood == ["What changed in release 1.12 of gzip?", second.question]


def test_a_rewrite_that_keeps_the_values_is_left_alone(text_kb: Callable[..., KnowledgeBase]) -> None:
    kb = text_kb(**GZIP)
    chat = ChatSession.open(make_pipeline(kb, gzip_llm("When was gzip v1.12 released?"), mode="bm25"),
                            name="kept")
    chat.ask("What changed in release 1.12 of gzip?")
    second = chat.ask("When was it released?")
    assert second.question == "When was gzip v1.12 released?" and second.text == "On 2022-04-07 [1]."
    assert set(second.trace[0].outputs) == {"standalone", "usage"}  # nothing rewritten back, nothing restored


LOST = "the rewrite lost the previous question's values: the follow-up with them instead"


@pytest.mark.parametrize(("previous", "follow_up", "rewrite", "answer", "expected", "rule"), [
    # the previous question's value dropped by a rewrite that borrowed its words: the follow-up and that stretch
    ("What changed in release 1.12 of gzip?", "When was it released?", "When was the last release of gzip?", "",
     "When was it released? (release 1.12 of gzip)", LOST),
    ("Where is the main campus of the University of Kansas?", "What mountain is it on?",
     "What mountain is the main campus on?", "", "What mountain is it on? (main campus of the University of Kansas)",
     LOST),
    # ... and by a rewrite that changed nothing: the values alone
    ("What changed in release 1.12 of gzip?", "When was it released?", "When was it released?", "",
     "When was it released? (1.12)", LOST),
    # kept, written another way: v1.12, a date in another order
    ("What changed in release 1.12 of gzip?", "When was it released?", "When was gzip v1.12 released?", "", None,
     None),
    ("What happened on March 3rd, 2021?", "Who said it?", "Who said what happened on 3 March 2021?", "", None, None),
    # the follow-up's own value replaces the previous one of its kind; its own values are appended
    ("What changed in release 1.12 of gzip?", "And in 1.13?", "What changed in release 1.13 of gzip?", "", None,
     None),
    ("How many releases did gzip have in March 2022?", "and in 2023?", "How many releases did gzip have?", "",
     "How many releases did gzip have? (2023)", "the dropped values appended"),
    # "it" resolved to a name from the answer: the previous question's names are not needed; its numbers are,
    # appended to the rewrite
    ("Which university is in Lawrence?", "and when was it founded?", "When was the University of Kansas founded?",
     "The University of Kansas [1].", None, None),
    ("Which university opened in Lawrence in 1865?", "Who founded it?", "Who founded the University of Kansas?",
     "The University of Kansas [1].", "Who founded the University of Kansas? (1865)", "the dropped values appended"),
    # quoted text, kept with its quotes
    ('What does the "--rsyncable" option do?', "Is it slower?", "Is the option slower?", "",
     'Is it slower? ("--rsyncable" option)', LOST),
    # a new question owes the previous one nothing
    ("What changed in release 1.12 of gzip?", "What is zstd?", "What is zstd?", "", None, None),
    ("What changed in release 1.12 of gzip?", "Is there a faster compressor?", "Is there a faster compressor?", "",
     None, None),
    # no previous question: the follow-up's own values still count
    (None, "What did Ada Lovelace write in 1843?", "What did she write?", "",
     "What did she write? (Ada Lovelace, 1843)", "the dropped values appended"),
])
def test_restore_values(previous: str | None, follow_up: str, rewrite: str, answer: str, expected: str | None,
                        rule: str | None) -> None:
    from pilotfish.answer.chat import restore_values

    restored = restore_values(previous, follow_up, rewrite, answer)
    assert (restored.question, restored.rule) == (expected or rewrite, rule)
    assert bool(restored.values) == (expected is not None)


def test_named_values() -> None:
    from pilotfish.answer.chat import named_values

    def found(text: str) -> list[tuple[str, str]]:
        return [(v.text, v.kind) for v in named_values(text)]

    assert found("What changed in release 1.12 of gzip?") == [("1.12", "version")]
    assert found("Is v2.3.4 newer than 2.3?") == [("v2.3.4", "version"), ("2.3", "version")]
    assert found("How many users on March 3rd, 2021 and on 2022-01-05, 1,000 or 12?") == [
        ("March 3rd, 2021", "number"), ("2022-01-05", "number"), ("1,000", "number"), ("12", "number")]
    assert found("What's the 'fast' mode of \"zstd -19\"?") == [("fast", "quoted"), ("zstd -19", "quoted")]
    assert found("When was the University of Kansas founded? The New York Times says so.") == [
        ("University of Kansas", "name"), ("New York Times", "name")]
    # capitalised only because they start a sentence: no names; a pronoun, python3 and gpt-4o: no values
    assert found("Summarise it. Which tool? May I use python3 or gpt-4o?") == []
    assert found("When did I ask about Debian in May 2020?") == [("Debian", "name"), ("May 2020", "number")]
