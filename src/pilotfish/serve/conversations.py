"""Conversations: the served chat sessions, each owned by the API key that opened it.

They are the same SQL sessions as `pilotfish chat --session NAME` (so a worker or the terminal can resume
them); `chat_session_owners` records the key, and a key lists, reads and continues only its own.
Without auth (key None) every session is visible.

>>> from pilotfish.knowledge.store import KnowledgeStore
>>> store = KnowledgeStore("sqlite://"); store.create()
>>> c = Conversations(store)
>>> made = c.create(None, "First question")
>>> [s["title"] for s in c.list(None)]
['First question']
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import func, select

from pilotfish.knowledge.store import ChatMessageRow, ChatSessionOwnerRow, ChatSessionRow, KnowledgeStore
from pilotfish.serve.keys import ApiKey


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class SessionNotFound(LookupError):
    pass


class Conversations:
    def __init__(self, store: KnowledgeStore) -> None:
        self.store = store

    def create(self, key: ApiKey | None, title: str = "") -> dict[str, Any]:
        name = f"web-{uuid.uuid4().hex[:16]}"
        with self.store.transaction() as session:
            row = ChatSessionRow(name=name, created_at=_now())
            session.add(row)
            session.flush()
            session.add(ChatSessionOwnerRow(session_id=row.id, key_id=key.id if key else None,
                                            title=title.strip()[:200]))
            return {"id": row.id, "name": name, "title": title.strip()[:200],
                    "created_at": row.created_at.isoformat(timespec="seconds"), "turns": 0}

    def _visible(self, key: ApiKey | None) -> Any:
        query = select(ChatSessionRow, ChatSessionOwnerRow).outerjoin(
            ChatSessionOwnerRow, ChatSessionOwnerRow.session_id == ChatSessionRow.id)
        if key is not None:
            query = query.where(ChatSessionOwnerRow.key_id == key.id)
        return query

    def list(self, key: ApiKey | None, *, limit: int = 100) -> list[dict[str, Any]]:
        """The key's sessions, newest first."""
        with self.store.reading() as session:
            rows = session.execute(self._visible(key).order_by(ChatSessionRow.id.desc()).limit(limit)).all()
            ids = [r.id for r, _ in rows]
            turns = dict(session.execute(
                select(ChatMessageRow.session_id, func.count()).where(ChatMessageRow.session_id.in_(ids),
                                                                     ChatMessageRow.role == "user")
                .group_by(ChatMessageRow.session_id)).all()) if ids else {}
            return [{"id": r.id, "name": r.name, "title": (owner.title if owner else "") or r.name,
                     "created_at": r.created_at.isoformat(timespec="seconds"), "turns": int(turns.get(r.id, 0))}
                    for r, owner in rows]

    def get(self, key: ApiKey | None, session_id: int) -> dict[str, Any]:
        """A session the key may see, with its messages; `SessionNotFound` otherwise (also for another key's)."""
        with self.store.reading() as session:
            found = session.execute(self._visible(key).where(ChatSessionRow.id == session_id)).first()
            if found is None:
                raise SessionNotFound(f"no session {session_id} for this key: GET /api/sessions lists yours")
            row, owner = found
            messages = session.scalars(select(ChatMessageRow).where(ChatMessageRow.session_id == row.id)
                                       .order_by(ChatMessageRow.id)).all()
            return {"id": row.id, "name": row.name, "title": (owner.title if owner else "") or row.name,
                    "created_at": row.created_at.isoformat(timespec="seconds"),
                    "messages": [{"id": m.id, "role": m.role, "content": m.content, "meta": m.meta or {},
                                  "created_at": m.created_at.isoformat(timespec="seconds")} for m in messages]}

    def message(self, key: ApiKey | None, message_id: int) -> tuple[dict[str, Any], str]:
        """An assistant message the key may see and the user question before it (for feedback)."""
        with self.store.reading() as session:
            reply = session.get(ChatMessageRow, message_id)
            if reply is None or reply.role != "assistant":
                raise SessionNotFound(f"no answer with message id {message_id}")
            self.get(key, reply.session_id)  # raises for another key's session
            question = session.scalar(select(ChatMessageRow.content).where(
                ChatMessageRow.session_id == reply.session_id, ChatMessageRow.role == "user",
                ChatMessageRow.id < reply.id).order_by(ChatMessageRow.id.desc()).limit(1)) or ""
            return {"id": reply.id, "session_id": reply.session_id, "content": reply.content,
                    "meta": reply.meta or {}}, question
