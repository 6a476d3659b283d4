"""ChatSession: a conversation over a knowledge base, stored in SQL and resumable by name.

Follow-up questions ("and when was it founded?") are rewritten into standalone questions by the
small LLM before retrieval, so search sees what the user means.

>>> from pilotfish.knowledge.base import KnowledgeBase                         # doctest: +SKIP
>>> chat = ChatSession.open(pipeline, name="demo")                             # doctest: +SKIP
>>> chat.ask("Which university is in Lawrence?").text                          # doctest: +SKIP
>>> chat.ask("When was it founded?").question                                  # doctest: +SKIP
'When was the University of Kansas founded?'
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from pilotfish.answer.graph import AnswerPipeline
from pilotfish.errors import QueryError
from pilotfish.knowledge.store import ChatMessageRow, ChatSessionRow
from pilotfish.llms.base import Usage
from pilotfish.prompts.rewrite import QueryRewriter
from pilotfish.types import Answer, TraceStep

HISTORY_TURNS = 6


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class ChatSession:
    """Turns are appended to the knowledge base's database as they happen."""

    def __init__(self, pipeline: AnswerPipeline, session_id: int, name: str,
                 history: list[tuple[str, str]], usage: Usage | None = None) -> None:
        self.pipeline, self.session_id, self.name = pipeline, session_id, name
        self.history = history  # (role, content), oldest first
        self.usage = usage or Usage()  # the whole conversation's tokens, seconds and cost, resumed ones included

    @classmethod
    def open(cls, pipeline: AnswerPipeline, *, name: str) -> ChatSession:
        if not name or not name.strip():
            raise QueryError("empty session name: give --session a name such as 'support'")
        store = pipeline.kb.store
        with store.transaction() as session:
            row = session.scalar(select(ChatSessionRow).where(ChatSessionRow.name == name))
            if row is None:
                row = ChatSessionRow(name=name, created_at=_now())
                session.add(row)
                session.flush()
            messages = list(session.scalars(
                select(ChatMessageRow).where(ChatMessageRow.session_id == row.id).order_by(ChatMessageRow.id)))
            usage = sum((_stored_usage(m.meta) for m in messages if m.role == "assistant"), Usage())
            return cls(pipeline, row.id, name, [(m.role, m.content) for m in messages], usage)

    def standalone(self, question: str) -> tuple[str, Usage]:
        """The question rewritten to stand alone (unchanged when there is no history), and what that cost."""
        turns = [("User" if r == "user" else "Assistant", c) for r, c in self.history[-HISTORY_TURNS:]]
        rewrite = QueryRewriter(self.pipeline.helper_llm, mode="standalone").rewrite(question, turns)
        return rewrite.queries[0], rewrite.usage

    def ask(self, question: str) -> Answer:
        *_, answer = self.stream(question)  # the stream ends with the finished Answer
        assert isinstance(answer, Answer)
        return answer

    def stream(self, question: str) -> Iterator[str | Answer]:
        """Answer pieces, then the Answer, whose usage and trace include the rewrite of the question."""
        if not question.strip():
            raise QueryError("empty question: ask something")
        start = time.perf_counter()
        standalone, rewrite_usage = self.standalone(question)
        rewrite = TraceStep("rewrite", time.perf_counter() - start, {"question": question},
                            {"standalone": standalone, "usage": rewrite_usage.to_dict()})
        answer: Answer | None = None
        for item in self.pipeline.stream(standalone):
            if isinstance(item, Answer):
                item = answer = replace(item, usage=item.usage + rewrite_usage, trace=[rewrite, *item.trace],
                                        seconds=item.seconds + rewrite.seconds)
            yield item
        assert answer is not None
        self._save(question, standalone, answer)
        self.usage = self.usage + answer.usage

    def _save(self, question: str, standalone: str, answer: Answer) -> None:
        meta: dict[str, Any] = {"cited": [c.doc_id for c in answer.citations if c.known], "answered": answer.answered,
                                "usage": answer.usage.to_dict(), "model": answer.model}
        with self.pipeline.kb.store.transaction() as session:
            session.add(ChatMessageRow(session_id=self.session_id, role="user", content=question,
                                       meta={"standalone": standalone}, created_at=_now()))
            session.add(ChatMessageRow(session_id=self.session_id, role="assistant", content=answer.text,
                                       meta=meta, created_at=_now()))
        self.history += [("user", question), ("assistant", answer.text)]


def _stored_usage(meta: dict[str, Any] | None) -> Usage:
    u = (meta or {}).get("usage") or {}
    return Usage(prompt_tokens=int(u.get("prompt_tokens", 0)), completion_tokens=int(u.get("completion_tokens", 0)),
                 seconds=float(u.get("seconds", 0.0)), cost=float(u.get("cost", 0.0)), calls=int(u.get("calls", 0)))
