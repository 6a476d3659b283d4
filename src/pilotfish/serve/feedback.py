"""FeedbackStore: thumbs, corrections and comments on served answers, stored in SQL for later training.

Feedback on a stored answer (`message_id`) takes the question, answer, evidence ids and pipeline from the
session itself, so a client cannot attach a verdict to words the server never said; feedback without a
message id (an answer from /v1/chat/completions, which stores nothing) keeps what the client sent.

>>> from pilotfish.knowledge.store import KnowledgeStore
>>> store = KnowledgeStore("sqlite://"); store.create()
>>> fb = FeedbackStore(store)
>>> fb.add(None, {"question": "q?", "answer": "a", "rating": 1})["rating"]
1
>>> fb.add(None, {"question": "q?", "answer": "a", "rating": 5})
Traceback (most recent call last):
...
ValueError: rating must be 1 (thumbs up), -1 (thumbs down) or 0 (none), got 5
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from pilotfish.knowledge.store import FeedbackRow, KnowledgeStore
from pilotfish.serve.conversations import Conversations
from pilotfish.serve.keys import ApiKey

MAX_TEXT = 20_000


class FeedbackStore:
    def __init__(self, store: KnowledgeStore) -> None:
        self.store = store

    def add(self, key: ApiKey | None, body: dict[str, Any]) -> dict[str, Any]:
        rating = body.get("rating", 0)
        if rating not in (-1, 0, 1) or isinstance(rating, bool):
            raise ValueError(f"rating must be 1 (thumbs up), -1 (thumbs down) or 0 (none), got {rating!r}")
        correction, comment = str(body.get("correction") or ""), str(body.get("comment") or "")
        if rating == 0 and not correction.strip() and not comment.strip():
            raise ValueError("empty feedback: give a rating (1 or -1), a correction or a comment")
        row = FeedbackRow(created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None), key_id=key.id if key else None,
                          rating=rating, correction=correction[:MAX_TEXT], comment=comment[:MAX_TEXT])
        if body.get("message_id") is not None:
            message, question = Conversations(self.store).message(key, int(body["message_id"]))
            meta = message["meta"]
            row.message_id, row.session_id = message["id"], message["session_id"]
            row.question, row.answer = question, message["content"]
            row.evidence, row.pipeline = list(meta.get("evidence") or []), str(meta.get("pipeline") or "")
        else:
            question, answer = str(body.get("question") or ""), str(body.get("answer") or "")
            if not question.strip() or not answer.strip():
                raise ValueError("feedback needs the message_id of a stored answer, or its question and answer")
            evidence = body.get("evidence") or []
            if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
                raise ValueError("evidence must be a list of chunk ids (strings)")
            row.question, row.answer = question[:MAX_TEXT], answer[:MAX_TEXT]
            row.evidence, row.pipeline = evidence[:100], str(body.get("pipeline") or "")[:200]
        with self.store.transaction() as session:
            session.add(row)
            session.flush()
            return to_dict(row)

    def list(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        with self.store.reading() as session:
            return [to_dict(r) for r in session.scalars(select(FeedbackRow).order_by(FeedbackRow.id).limit(limit))]


def to_dict(row: FeedbackRow) -> dict[str, Any]:
    return {"id": row.id, "created_at": row.created_at.isoformat(timespec="seconds"), "message_id": row.message_id,
            "session_id": row.session_id, "pipeline": row.pipeline, "question": row.question, "answer": row.answer,
            "evidence": row.evidence, "rating": row.rating, "correction": row.correction, "comment": row.comment}
