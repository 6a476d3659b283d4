"""The answer log: every LLM call and every answer of a pipeline whose `[log]` table turns it on, in the knowledge
base's database, for audits and for training the small models from what the large one did.

Two tables, created on the first write: `log_answers` (question, answer, evidence and cited chunk ids, the
verifier's verdict, the route, usage) and `log_llm_calls` (model, messages, outputs, tokens, seconds, cost, and
the answer the call belongs to, or none for a call made outside an answer). Feedback is the server's own
`feedback` table; the reader links each item to the logged answer it judged. Times are UTC.

`AnswerLog` writes (`build` makes one when `[log] enabled = true`); `iter_log` reads records as plain dicts,
oldest first, which is also what `pilotfish log export` writes, one JSON object a line:

>>> from pilotfish.knowledge.store import KnowledgeStore
>>> from pilotfish.types import Answer
>>> store = KnowledgeStore("sqlite://"); store.create()
>>> log = AnswerLog(store, pipeline="basic")
>>> with log.answering() as finish:
...     log.record_call({"model": "fake", "method": "generate", "messages": [{"role": "user", "content": "q?"}],
...                      "outputs": ["a [1]"], "prompt_tokens": 1, "completion_tokens": 2, "seconds": 0.1})
...     finish(Answer(question="q?", answer="a [1]"))
>>> [(r["kind"], r["answer_id"] if r["kind"] == "llm_call" else r["answer"]) for r in iter_log(store)]
[('answer', 'a [1]'), ('llm_call', 1)]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    delete,
    func,
    inspect,
    or_,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pilotfish.errors import ConfigError
from pilotfish.knowledge.store import FeedbackRow, KnowledgeStore
from pilotfish.types import Answer

log = logging.getLogger(__name__)

KINDS = ("answers", "calls", "feedback", "all")
PRUNE_EVERY = 3600.0  # seconds between the retention sweeps of a writing pipeline


class LogBase(DeclarativeBase):
    """The log's own metadata: its tables are created when a pipeline first writes, not with every knowledge base."""


class LogAnswerRow(LogBase):
    __tablename__ = "log_answers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)  # when the question came in
    pipeline: Mapped[str] = mapped_column(String(200), index=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    answer_digest: Mapped[str] = mapped_column(String(64), index=True)  # sha256 of the answer: links feedback
    answered: Mapped[bool] = mapped_column(Boolean)
    model: Mapped[str] = mapped_column(String(200), default="")
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # chunk_id, doc_id, score
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    verdict: Mapped[str | None] = mapped_column(String(40), nullable=True)  # the verifier's label
    verification: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # per-claim support
    route: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    usage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class LogCallRow(LogBase):
    __tablename__ = "log_llm_calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    answer_id: Mapped[int | None] = mapped_column(ForeignKey("log_answers.id", ondelete="CASCADE"), index=True,
                                                  nullable=True)
    pipeline: Mapped[str] = mapped_column(String(200), index=True)
    model: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(40))  # generate, agenerate, stream, option_probs, score_completion
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


@dataclass
class _Run:
    """The LLM calls of one answer in progress."""

    log: AnswerLog
    started: dt.datetime
    calls: list[dict[str, Any]] = field(default_factory=list)
    open: bool = True


_RUN: ContextVar[_Run | None] = ContextVar("pilotfish_answer_log_run", default=None)


class AnswerLog:
    """Writes one pipeline's answers and LLM calls. Writing never breaks an answer: a failure is a warning.

    `llm_calls` / `answers` choose what is kept; `retention_days` (0: forever) deletes this pipeline's rows
    older than that on the first write and hourly after; `max_chars` cuts every stored text."""

    def __init__(self, store: KnowledgeStore, *, pipeline: str, llm_calls: bool = True, answers: bool = True,
                 retention_days: int = 30, max_chars: int = 20_000) -> None:
        if retention_days < 0 or max_chars < 1:
            raise ConfigError(f"answer log: retention_days must be 0 or more and max_chars 1 or more, got "
                              f"{retention_days} and {max_chars}")
        self.store, self.pipeline = store, pipeline
        self.llm_calls, self.answers = llm_calls, answers
        self.retention_days, self.max_chars = retention_days, max_chars
        self._lock = threading.Lock()
        self._ready = False
        self._next_prune = 0.0
        self.failures = 0

    @contextmanager
    def answering(self) -> Iterator[Callable[[Answer], None]]:
        """Collect the LLM calls made in this context (threads that copy it included); `finish(answer)` writes
        the answer with them. Calls of an answer that never finished (an error, a cancelled stream) are
        written on their own when the context ends."""
        run = _Run(self, _utcnow())
        token = _RUN.set(run)
        done = False

        def finish(answer: Answer) -> None:
            nonlocal done
            done, run.open = True, False
            self._write(answer, run.started, run.calls)

        try:
            yield finish
        finally:
            run.open = False
            try:
                _RUN.reset(token)
            except ValueError:  # a stream closed from another context: `open` already stops collecting
                pass
            if not done and run.calls:
                self._write(None, run.started, run.calls)

    def record_call(self, record: dict[str, Any]) -> None:
        """The sink of the pipeline's `LoggingLLM`s: kept for the answer in progress, else written now."""
        if not self.llm_calls:
            return
        run = _RUN.get()
        if run is not None and run.open and run.log is self:
            run.calls.append(record)
        else:
            self._write(None, _utcnow(), [record])

    # -- writing --------------------------------------------------------------------------------
    def _write(self, answer: Answer | None, started: dt.datetime, calls: list[dict[str, Any]]) -> None:
        if (answer is None or not self.answers) and not (calls and self.llm_calls):
            return
        try:
            self._ensure_schema()
            with self.store.transaction() as session:
                answer_id = None
                if answer is not None and self.answers:
                    row = self._answer_row(answer, started)
                    session.add(row)
                    session.flush()
                    answer_id = row.id
                if self.llm_calls:
                    session.add_all(self._call_row(c, answer_id) for c in calls)
            if self.retention_days and time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + PRUNE_EVERY
                prune_log(self.store, older_than_days=self.retention_days, pipeline=self.pipeline)
        except Exception as err:  # a full disk or a locked database must not cost the user the answer
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                log.warning("answer log: could not write to %s (%d failures so far): %s", self.store.url,
                            self.failures, err)

    def _ensure_schema(self) -> None:
        if not self._ready:
            with self._lock:
                LogBase.metadata.create_all(self.store.engine)
                self._ready = True

    def _cut(self, text: Any) -> str:
        text = "" if text is None else str(text)
        if len(text) <= self.max_chars:
            return text
        return text[:self.max_chars] + f" [... {len(text) - self.max_chars} characters cut]"

    def _answer_row(self, a: Answer, started: dt.datetime) -> LogAnswerRow:
        usage = a.usage.to_dict() if a.usage is not None else {}
        verification = a.verification
        return LogAnswerRow(
            created_at=started, pipeline=self.pipeline, question=self._cut(a.question), answer=self._cut(a.answer),
            answer_digest=digest(a.answer), answered=a.answered, model=a.model[:200],
            evidence=[{"chunk_id": p.chunk_id, "doc_id": p.doc_id, "score": float(p.score)} for p in a.evidence],
            citations=[{"marker": c.marker, "chunk_id": c.chunk_id, "doc_id": c.doc_id, "known": c.known,
                        "attributed": c.attributed} for c in a.citations],
            verdict=str(verification.get("label"))[:40] if verification and verification.get("label") else None,
            verification=verification, route=answer_route(a), usage=usage, seconds=a.seconds)

    def _call_row(self, c: dict[str, Any], answer_id: int | None) -> LogCallRow:
        created = c.get("created_at") or _utcnow()
        return LogCallRow(
            created_at=_naive_utc(created), answer_id=answer_id, pipeline=self.pipeline,
            model=str(c.get("model", ""))[:200], method=str(c.get("method", "generate"))[:40],
            messages=[{**m, "content": self._cut(m.get("content"))} for m in c.get("messages", [])],
            params=dict(c.get("params") or {}),
            outputs=[self._cut(o) if isinstance(o, str) else o for o in c.get("outputs", [])],
            prompt_tokens=int(c.get("prompt_tokens", 0)), completion_tokens=int(c.get("completion_tokens", 0)),
            seconds=float(c.get("seconds", 0.0)), cost=float(c.get("cost", 0.0)),
            error=self._cut(c["error"]) if c.get("error") else None)


def answer_route(a: Answer) -> dict[str, Any]:
    """Which way the answer went: the model that wrote it, a cascade's or router's record, the table and graph
    paths' choices."""
    route: dict[str, Any] = {"model": a.model}
    for step in a.trace:
        out = step.outputs
        if out.get("route"):
            route["llm"] = out["route"]
        if isinstance(out.get("tables"), dict) and "route" in out["tables"]:
            route["tables"] = out["tables"]["route"]
        if isinstance(out.get("graph"), dict) and "route" in out["graph"]:
            route["graph"] = out["graph"]["route"]
    if a.graph is not None:
        route["graph_direct"] = bool(a.graph.get("direct"))
    return route


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- reading, pruning -------------------------------------------------------------------------------
def has_log(store: KnowledgeStore) -> bool:
    """True once a pipeline has written to the answer log of this database."""
    return bool(inspect(store.engine).has_table(LogAnswerRow.__tablename__))


def parse_since(text: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """A UTC time from a date (`2025-05-01`), a time (`2025-05-01T12:30`, an offset is honoured) or an age
    (`7d`, `12h`).

    >>> parse_since("2025-05-01")
    datetime.datetime(2025, 5, 1, 0, 0)
    >>> parse_since("2d", now=dt.datetime(2025, 5, 3, 12, 0))
    datetime.datetime(2025, 5, 1, 12, 0)
    """
    value = text.strip()
    age = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([dh])", value.lower())
    if age:
        amount = float(age.group(1))
        delta = dt.timedelta(days=amount) if age.group(2) == "d" else dt.timedelta(hours=amount)
        return (now or _utcnow()) - delta
    try:
        return _naive_utc(dt.datetime.fromisoformat(value))
    except ValueError:
        raise ConfigError(f"cannot read {text!r} as a time: give a date (2025-05-01), a UTC time "
                          "(2025-05-01T12:30) or an age (7d, 12h)") from None


def iter_log(store: KnowledgeStore, *, kind: str = "all", since: dt.datetime | str | None = None,
             pipeline: str | None = None) -> Iterator[dict[str, Any]]:
    """The log's records as dicts, oldest first: `kind` "answers", "calls", "feedback" or "all" (merged by time).

    Every record has `kind` ("answer", "llm_call" or "feedback"), `id` and `created_at` (ISO 8601, UTC). Calls
    carry `answer_id` (None for a call outside an answer); feedback carries the `answer_id` of the logged
    answer it judged, when one matches its answer text. `since` is a datetime (UTC) or text for `parse_since`."""
    if kind not in KINDS:
        raise ConfigError(f"unknown log kind {kind!r}: use {', '.join(KINDS)}")
    cutoff = parse_since(since) if isinstance(since, str) else _naive_utc(since) if since is not None else None
    logged = has_log(store)
    with store.reading() as session:
        streams = []
        if kind in ("answers", "all") and logged:
            streams.append(map(answer_record, _rows(session, LogAnswerRow, cutoff, pipeline)))
        if kind in ("calls", "all") and logged:
            streams.append(map(call_record, _rows(session, LogCallRow, cutoff, pipeline)))
        if kind in ("feedback", "all"):
            streams.append(feedback_record(session, row, logged)
                           for row in _rows(session, FeedbackRow, cutoff, pipeline))
        yield from heapq.merge(*streams, key=lambda r: r["created_at"])


def _rows(session: Session, table: Any, cutoff: dt.datetime | None, pipeline: str | None) -> Iterator[Any]:
    query = select(table).order_by(table.created_at, table.id).execution_options(yield_per=500)
    if cutoff is not None:
        query = query.where(table.created_at >= cutoff)
    if pipeline is not None:
        query = query.where(table.pipeline == pipeline)
    yield from session.scalars(query)  # streamed: a long export holds a few hundred rows at a time


def answer_record(r: LogAnswerRow) -> dict[str, Any]:
    return {"kind": "answer", "id": r.id, "created_at": _iso(r.created_at), "pipeline": r.pipeline,
            "question": r.question, "answer": r.answer, "answered": r.answered, "model": r.model,
            "evidence": r.evidence, "citations": r.citations, "verdict": r.verdict, "verification": r.verification,
            "route": r.route, "usage": r.usage, "seconds": r.seconds}


def call_record(r: LogCallRow) -> dict[str, Any]:
    return {"kind": "llm_call", "id": r.id, "created_at": _iso(r.created_at), "answer_id": r.answer_id,
            "pipeline": r.pipeline, "model": r.model, "method": r.method, "messages": r.messages, "params": r.params,
            "outputs": r.outputs, "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
            "seconds": r.seconds, "cost": r.cost, "error": r.error}


def feedback_record(session: Session, r: FeedbackRow, logged: bool = True) -> dict[str, Any]:
    answer_id = None
    if logged:  # the latest logged answer with the same text, preferring one with the same question
        found = session.execute(select(LogAnswerRow.id, LogAnswerRow.question)
                                .where(LogAnswerRow.answer_digest == digest(r.answer),
                                       LogAnswerRow.created_at <= r.created_at)
                                .order_by(LogAnswerRow.id.desc()).limit(20)).all()
        answer_id = next((i for i, q in found if q == r.question), found[0][0] if found else None)
    return {"kind": "feedback", "id": r.id, "created_at": _iso(r.created_at), "answer_id": answer_id,
            "pipeline": r.pipeline, "question": r.question, "answer": r.answer, "evidence": r.evidence,
            "rating": r.rating, "correction": r.correction, "comment": r.comment, "session_id": r.session_id,
            "message_id": r.message_id}


def prune_log(store: KnowledgeStore, *, older_than_days: float, pipeline: str | None = None,
              feedback: bool = False) -> dict[str, int]:
    """Delete log rows older than `older_than_days` (of one pipeline, when given); feedback too when asked.
    Returns how many rows of each kind went."""
    if older_than_days < 0:
        raise ConfigError(f"older_than_days must be 0 or more, got {older_than_days}")
    cutoff = _utcnow() - dt.timedelta(days=older_than_days)
    gone = {"answers": 0, "calls": 0, "feedback": 0}
    tables = [("calls", LogCallRow), ("answers", LogAnswerRow)] if has_log(store) else []
    tables += [("feedback", FeedbackRow)] if feedback else []
    with store.transaction() as session:
        for name, table in tables:
            old = table.created_at < cutoff
            if table is LogCallRow:  # an old answer's calls go with it, even those made in its last seconds
                old_answers = select(LogAnswerRow.id).where(LogAnswerRow.created_at < cutoff)
                old = or_(old, LogCallRow.answer_id.in_(old_answers))
            query = delete(table).where(old)
            if pipeline is not None:
                query = query.where(table.pipeline == pipeline)
            gone[name] = int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]
    if any(gone.values()):
        log.info("answer log: pruned %s older than %s days", gone, older_than_days)
    return gone


def log_stats(store: KnowledgeStore) -> dict[str, Any]:
    """Counts and spans of each kind, and calls, tokens, seconds and cost per model."""
    logged = has_log(store)
    tables = ([("answers", LogAnswerRow), ("calls", LogCallRow)] if logged else []) + [("feedback", FeedbackRow)]
    stats: dict[str, Any] = {"logged": logged}
    with store.reading() as session:
        for name, table in tables:
            count, first, last = session.execute(select(func.count(table.id), func.min(table.created_at),
                                                        func.max(table.created_at))).one()
            stats[name] = {"count": count, "first": _iso(first) if first else None,
                           "last": _iso(last) if last else None}
        if logged:
            stats["answers"]["answered"] = session.scalar(select(func.count(LogAnswerRow.id))
                                                          .where(LogAnswerRow.answered.is_(True))) or 0
            rows = session.execute(select(LogCallRow.model, func.count(LogCallRow.id),
                                          func.sum(LogCallRow.prompt_tokens), func.sum(LogCallRow.completion_tokens),
                                          func.sum(LogCallRow.seconds), func.sum(LogCallRow.cost))
                                   .group_by(LogCallRow.model).order_by(LogCallRow.model))
            stats["models"] = [{"model": m, "calls": n, "prompt_tokens": int(p or 0), "completion_tokens": int(c or 0),
                                "seconds": float(s or 0.0), "cost": float(cost or 0.0)}
                               for m, n, p, c, s, cost in rows]
    return stats


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def _iso(value: dt.datetime) -> str:
    return value.replace(tzinfo=dt.UTC).isoformat(timespec="milliseconds")
