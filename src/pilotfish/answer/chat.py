"""ChatSession: a conversation over a knowledge base, stored in SQL and resumable by name.

Follow-up questions ("and when was it founded?") are rewritten into standalone questions by the
small LLM before retrieval, so search sees what the user means.

A small LLM may condense "when was it released?" after "what changed in gzip 1.12?" into "when was the last
release of gzip?", and search then finds another release. So a deterministic check follows the rewrite
(`restore_values`): the *named values* (numbers, versions, dates, quoted text, capitalised names; see
`named_values`) of the follow-up, and of the previous question when the follow-up refers to it, must be in
the rewrite. Dropped values are appended to it, unless they are the previous question's and the rewrite did
not resolve "it" to a name from the answer: then it lost what "it" means, and the follow-up is asked with
that part of the previous question instead. The values put back, and the rule, are in the trace's
`rewrite` step; the values also in the stored user turn.

>>> restore_values("What changed in release 1.12 of gzip?", "When was it released?",
...                "When was the last release of gzip?").question
'When was it released? (release 1.12 of gzip)'
>>> restore_values("What changed in release 1.12 of gzip?", "And 1.13?", "What changed in gzip 1.13?").values
[]

>>> from pilotfish.knowledge.base import KnowledgeBase                         # doctest: +SKIP
>>> chat = ChatSession.open(pipeline, name="demo")                             # doctest: +SKIP
>>> chat.ask("Which university is in Lawrence?").text                          # doctest: +SKIP
>>> chat.ask("When was it founded?").question                                  # doctest: +SKIP
'When was the University of Kansas founded?'
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select

from pilotfish.answer.graph import AnswerPipeline
from pilotfish.errors import QueryError
from pilotfish.knowledge.store import ChatMessageRow, ChatSessionRow
from pilotfish.llms.base import Usage
from pilotfish.prompts.rewrite import QueryRewriter
from pilotfish.types import Answer, TraceStep

HISTORY_TURNS = 6

_MONTHS = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
           r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_VALUE = re.compile(
    r'"(?P<q1>[^"\n]{1,80})"|\u201c(?P<q2>[^\u201d\n]{1,80})\u201d|`(?P<q3>[^`\n]{1,80})`'
    r"|(?<!\w)'(?P<q4>[^'\n]{1,80})'(?!\w)"
    rf"|(?P<date>\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b{_DAY}\s+{_MONTHS}\.?(?:,?\s+\d{{4}})?\b"
    rf"|\b{_MONTHS}\.?\s+(?:{_DAY}(?:,?\s+\d{{4}})?|\d{{4}})\b)"
    r"|(?P<version>\b[vV]?\d+(?:\.\d+)+\b)"
    r"|(?P<number>\b\d+(?:,\d{3})*\b)"
    r"|(?P<name>\b[A-Z][\w'-]*(?:\s+(?:(?:of|the|de|la|von|van|and|for|del|du)\s+)*[A-Z][\w'-]*)*)")
_KIND = {"q1": "quoted", "q2": "quoted", "q3": "quoted", "q4": "quoted", "date": "number", "version": "version",
         "number": "number", "name": "name"}  # a date and a number are one kind: "and in 2023?" replaces either
# Capitalised because they start a sentence, not because they name something.
_STARTERS = frozenset("""a about after also an and any are as at be but by can compare could describe did do
does explain for from give had has have he hello her hey hi his how i if in is it it's its just let let's list
may maybe me might must my no now of ok okay on or our please shall she show should so summarise summarize
tell thanks thank that the their then there these they this those to was we were what what's when where
which who who's whom whose why will with would yes you your""".split())
_CONNECTORS = frozenset({"of", "the", "de", "la", "von", "van", "and", "for", "del", "du"})
# Words by which a follow-up points back at the previous question.
_ANAPHORS = frozenset("it its itself that this these those they them their then he she him his her same former "
                      "latter".split())  # not "there": "is there a faster tool?" starts a new question
_TOKEN = re.compile(r"\w+(?:[.,]\d+)*")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class NamedValue:
    """A value a rewrite must not lose: its text as written and its kind (quoted, number, version, name)."""

    text: str
    kind: str

    def shown(self) -> str:
        return f'"{self.text}"' if self.kind == "quoted" else self.text


def named_values(text: str) -> list[NamedValue]:
    """The named values of `text`, in order, each once: quoted text, dates, versions, numbers (years
    included), and names (runs of capitalised words, less the words that are capitalised only because
    they start a sentence, such as "When" or "The").

    >>> [v.text for v in named_values('When did the University of Kansas ship "gzip" v1.12 on 12 March 2024?')]
    ['University of Kansas', 'gzip', 'v1.12', '12 March 2024']
    >>> [(v.text, v.kind) for v in named_values("Which release of gzip came out in 2022? Tell me, Ada.")]
    [('2022', 'number'), ('Ada', 'name')]
    """
    found: dict[frozenset[str], NamedValue] = {}
    for m in _VALUE.finditer(text):
        group = m.lastgroup or ""
        value = m.group(group).strip()
        if group == "name":
            value = _name(value, _sentence_start(text, m.start()))
        if value and _tokens(value):
            found.setdefault(_tokens(value), NamedValue(value, _KIND[group]))
    return list(found.values())


def _sentence_start(text: str, at: int) -> bool:
    before = text[:at].rstrip()
    return not before or before[-1] in ".?!:;\n\"'(\u201c"


def _name(run: str, initial: bool) -> str:
    """A run of capitalised words as a name: leading sentence starters dropped; a lone capitalised word
    that starts a sentence is no name ("Summarise", "Gzip" alike: the rule cannot tell them apart)."""
    words = run.split()
    while words and (words[0].lower() in _STARTERS or words[0] in _CONNECTORS):
        words.pop(0)
        initial = False
    if len(words) == 1 and (initial or len(words[0]) == 1):
        return ""
    return " ".join(words)


def _tokens(text: str) -> frozenset[str]:
    """The words that identify a value: lower-cased, "v1.12" as "1.12", "12th" as "12", "1,000" as "1000",
    "March" as "mar"; connectors ("of", "the") left out."""
    out = set()
    for t in _TOKEN.findall(text.lower()):
        t = re.sub(r"^v(?=\d)", "", t)
        t = re.sub(r"^(\d+)(?:st|nd|rd|th)$", r"\1", t)
        t = t.replace(",", "") if t[:1].isdigit() else t
        t = t[:3] if re.fullmatch(_MONTHS.lower(), t) else t
        if t not in _CONNECTORS:
            out.add(t)
    return frozenset(out)


@dataclass(frozen=True)
class Restored:
    """A rewrite after the check: the question to ask, the values put back (as shown) and the rule that
    put them back (None when the rewrite kept every value)."""

    question: str
    values: list[str] = field(default_factory=list)
    rule: str | None = None


def restore_values(previous: str | None, follow_up: str, rewrite: str, answer: str = "") -> Restored:
    """Check the LLM's `rewrite` of `follow_up` for named values it dropped. `previous`: the user's previous
    question as it was understood (its standalone form); `answer`: the reply to it.

    A value counts as kept when all its words are in the rewrite ("v1.12" keeps "1.12", "3 March 2021"
    keeps "March 3rd, 2021"). The follow-up's own values are always needed. The previous question's are
    needed when the follow-up refers to it (the rewrite borrowed its words, or the follow-up says "it",
    "that", ...), less those of a kind the follow-up brings itself ("and 1.13?" replaces 1.12) and, when the
    rewrite names something from the answer ("it" resolved to "the University of Kansas"), its names.

    Rules: values of the previous question dropped -> the rewrite lost the referent and is not used: the
    follow-up is asked with, in parentheses, the stretch of the previous question from the first to the last
    of its needed values and of the words the rewrite borrowed from it (its values alone when it borrowed
    none). Else the dropped values are appended to the rewrite in parentheses (the follow-up's own, and the
    previous question's when the rewrite resolved the referent to a name from the answer).

    >>> restore_values("What changed in release 1.12 of gzip?", "Why?", "Why did gzip 1.12 change?")
    Restored(question='Why did gzip 1.12 change?', values=[], rule=None)
    >>> restore_values(None, "Did Ada Lovelace write it in 1843?", "Did she write it?").question
    'Did she write it? (Ada Lovelace, 1843)'
    """
    have, own = _tokens(rewrite), named_values(follow_up)
    earlier: list[NamedValue] = []
    resolved = False  # the rewrite names something from the answer that the previous question does not
    if previous and _refers_to(previous, follow_up, rewrite):
        resolved = any(v.kind == "name" and _tokens(v.text) <= _tokens(answer)
                       and not _tokens(v.text) <= _tokens(previous) for v in named_values(rewrite))
        replaced = {v.kind for v in own} | ({"name"} if resolved else set())
        earlier = [v for v in named_values(previous) if v.kind not in replaced]
    lost = [v for v in earlier if not _tokens(v.text) <= have]
    if previous and lost and not resolved:
        context = _stretch(previous, earlier, (_tokens(previous) & have) - _tokens(follow_up))
        return Restored(f"{follow_up.rstrip()} ({context})", [v.shown() for v in lost],
                        "the rewrite lost the previous question's values: the follow-up with them instead")
    dropped = lost + [v for v in own if not _tokens(v.text) <= have]
    if not dropped:
        return Restored(rewrite)
    shown = [v.shown() for v in dropped]
    return Restored(f"{rewrite.rstrip()} ({', '.join(shown)})", shown, "the dropped values appended")


def _refers_to(previous: str, follow_up: str, rewrite: str) -> bool:
    """Whether the follow-up continues the previous question: its rewrite borrowed a word (three letters
    or more, no sentence starter) that the previous question has and the follow-up has not, or the
    follow-up points back with a pronoun."""
    asked = _tokens(follow_up)
    if _borrowed((_tokens(previous) & _tokens(rewrite)) - asked):
        return True
    return bool(asked & _ANAPHORS)


def _borrowed(words: frozenset[str]) -> set[str]:
    return {t for t in words if len(t) >= 3 and t not in _STARTERS}


def _stretch(previous: str, values: list[NamedValue], words: frozenset[str]) -> str:
    """The part of `previous` from the first to the last of `values` and `words`, or `values` alone when
    the rewrite borrowed no word: the referent the rewrite lost, in the user's own words."""
    spans = [m.span() for m in _VALUE.finditer(previous)
             if any(_tokens(v.text) <= _tokens(m.group()) for v in values)]
    borrowed = _borrowed(words)
    if not borrowed:
        return ", ".join(v.shown() for v in values)
    spans += [m.span() for m in _TOKEN.finditer(previous) if _tokens(m.group()) & borrowed]
    return previous[min(a for a, _ in spans):max(b for _, b in spans)].strip(" ?!.,;:[]()")


@dataclass
class Condensed:
    """A follow-up made standalone: the question to search, what the LLM wrote, the named values put back
    (see `restore_values`), what the rewrite cost and why the LLM's reply was not used, if it was not."""

    question: str
    rewritten: str
    restored: list[str] = field(default_factory=list)
    rule: str | None = None
    usage: Usage = field(default_factory=Usage)
    fallback: str | None = None

    def trace(self) -> dict[str, Any]:
        out: dict[str, Any] = {"standalone": self.question, "usage": self.usage.to_dict()}
        if self.rewritten != self.question:
            out["rewritten"] = self.rewritten
        if self.restored:
            out["restored"], out["rule"] = self.restored, self.rule
        if self.fallback:
            out["fallback"] = self.fallback
        return out


class ChatSession:
    """Turns are appended to the knowledge base's database as they happen; a session made directly with
    `session_id=None` (a served request that brings its own history) stores nothing."""

    def __init__(self, pipeline: AnswerPipeline, session_id: int | None, name: str,
                 history: list[tuple[str, str]], usage: Usage | None = None,
                 understood: list[str] | None = None) -> None:
        self.pipeline, self.session_id, self.name = pipeline, session_id, name
        self.history = history  # (role, content), oldest first
        self.usage = usage or Usage()  # the whole conversation's tokens, seconds and cost, resumed ones included
        # The standalone form of each user turn, oldest first: what a follow-up's "it" refers to.
        self.understood = understood if understood is not None else [c for r, c in history if r == "user"]
        self.last_message_id: int | None = None  # the stored assistant turn of the last answer

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
            understood = [str((m.meta or {}).get("standalone") or m.content) for m in messages if m.role == "user"]
            return cls(pipeline, row.id, name, [(m.role, m.content) for m in messages], usage, understood)

    def standalone(self, question: str) -> tuple[str, Usage]:
        """The question rewritten to stand alone (unchanged when there is no history), and what that cost."""
        condensed = self.condense(question)
        return condensed.question, condensed.usage

    def condense(self, question: str) -> Condensed:
        """The question rewritten by the LLM to stand alone, with the named values the rewrite dropped put
        back (see `restore_values`); unchanged when there is no history."""
        if not self.history:
            return Condensed(question, question)
        turns = [("User" if r == "user" else "Assistant", c) for r, c in self.history[-HISTORY_TURNS:]]
        rewrite = QueryRewriter(self.pipeline.helper_llm, mode="standalone").rewrite(question, turns)
        rewritten = rewrite.queries[0]
        previous = self.understood[-1] if self.understood else None
        answer = next((c for r, c in reversed(self.history) if r == "assistant"), "")
        checked = restore_values(previous, question, rewritten, answer)
        return Condensed(checked.question, rewritten, checked.values, checked.rule, rewrite.usage, rewrite.fallback)

    def ask(self, question: str, *, filters: dict[str, Any] | None = None) -> Answer:
        *_, answer = self.stream(question, filters=filters)  # the stream ends with the finished Answer
        assert isinstance(answer, Answer)
        return answer

    def stream(self, question: str, *, filters: dict[str, Any] | None = None,
               cancel: threading.Event | None = None) -> Iterator[str | Answer]:
        """Answer pieces, then the Answer, whose usage and trace include the rewrite of the question.
        `filters` and `cancel` go to `AnswerPipeline.stream`; a cancelled answer is not stored."""
        if not question.strip():
            raise QueryError("empty question: ask something")
        start = time.perf_counter()
        condensed = self.condense(question)
        rewrite = TraceStep("rewrite", time.perf_counter() - start, {"question": question}, condensed.trace())
        answer: Answer | None = None
        for item in self.pipeline.stream(condensed.question, filters=filters, cancel=cancel):
            if isinstance(item, Answer):
                answer = replace(item, usage=item.usage + condensed.usage, trace=[rewrite, *item.trace],
                                 seconds=item.seconds + rewrite.seconds)
            else:
                yield item
        assert answer is not None
        self._save(question, condensed, answer)  # before the Answer is handed out: its message id is known
        self.usage = self.usage + answer.usage
        yield answer

    def _save(self, question: str, condensed: Condensed, answer: Answer) -> None:
        meta: dict[str, Any] = {"cited": [c.doc_id for c in answer.citations if c.known], "answered": answer.answered,
                                "usage": answer.usage.to_dict(), "model": answer.model,
                                "evidence": [p.chunk_id for p in answer.evidence], "pipeline": self.pipeline.spec.name}
        asked: dict[str, Any] = {"standalone": condensed.question}
        if condensed.restored:
            asked["restored"] = condensed.restored
        if self.session_id is not None:
            with self.pipeline.kb.store.transaction() as session:
                session.add(ChatMessageRow(session_id=self.session_id, role="user", content=question,
                                           meta=asked, created_at=_now()))
                reply = ChatMessageRow(session_id=self.session_id, role="assistant", content=answer.text,
                                       meta=meta, created_at=_now())
                session.add(reply)
                session.flush()
                self.last_message_id = reply.id
        self.history += [("user", question), ("assistant", answer.text)]
        self.understood.append(condensed.question)


def _stored_usage(meta: dict[str, Any] | None) -> Usage:
    u = (meta or {}).get("usage") or {}
    return Usage(prompt_tokens=int(u.get("prompt_tokens", 0)), completion_tokens=int(u.get("completion_tokens", 0)),
                 seconds=float(u.get("seconds", 0.0)), cost=float(u.get("cost", 0.0)), calls=int(u.get("calls", 0)))
