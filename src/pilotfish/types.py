"""Plain, frozen data types shared by every component."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One document loaded from a source file (a file may hold many, e.g. JSONL or CSV rows)."""

    doc_id: str
    text: str
    title: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: the unit that is indexed and retrieved."""

    chunk_id: str
    doc_id: str
    text: str
    index: int = 0
    start_char: int = 0
    end_char: int = 0
    n_tokens: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk with its score and where it came from."""

    chunk_id: str
    doc_id: str
    text: str
    score: float
    source: str = ""
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    retriever: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "score": self.score,
            "source": self.source,
            "title": self.title,
            "text": self.text,
            "metadata": self.metadata,
            "retriever": self.retriever,
        }


@dataclass(frozen=True)
class Citation:
    """A reference from an answer to its evidence. `known` is False when the model cited a number that
    matches no evidence; `attributed` is True when the embedding model, not the LLM, made the link."""

    marker: int
    chunk_id: str = ""
    doc_id: str = ""
    source: str = ""
    known: bool = True
    attributed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"marker": self.marker, "doc_id": self.doc_id, "chunk_id": self.chunk_id, "source": self.source,
                "known": self.known, "attributed": self.attributed}


@dataclass(frozen=True)
class TraceStep:
    """One node of the answer graph: what went in, what came out, how long it took."""

    node: str
    seconds: float
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """What `ask` returns: the text, its citations and evidence, and what it cost."""

    question: str
    answer: str  # named as in the JSON output; `text` reads the same value
    citations: list[Citation] = field(default_factory=list)
    evidence: list[Passage] = field(default_factory=list)
    answered: bool = True
    model: str = ""
    usage: Any = None  # pilotfish.llms.base.Usage
    seconds: float = 0.0
    trace: list[TraceStep] = field(default_factory=list)
    verification: dict[str, Any] | None = None  # the NLI check of a verified pipeline: per-claim verdicts
    quote: dict[str, Any] | None = None  # quoted style: {"text", "passage" (1-based or None), "found"}
    sql: str | None = None  # the table path's SQL, when it ran
    rows: list[list[Any]] | None = None  # and the rows it returned
    flagged: list[dict[str, Any]] = field(default_factory=list)  # evidence that reads like instructions to the model
    graph: dict[str, Any] | None = None  # the graph path, when it ran: answers, paths, entities, route, direct

    @property
    def text(self) -> str:
        """The answer text (the same as `answer`)."""
        return self.answer

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer, "answered": self.answered, "model": self.model,
                "verification": self.verification, "quote": self.quote,
                "citations": [c.to_dict() for c in self.citations],
                "evidence": [p.to_dict() for p in self.evidence],
                "usage": self.usage.to_dict() if self.usage is not None else None, "seconds": round(self.seconds, 4),
                "trace": [{"node": s.node, "seconds": round(s.seconds, 4), "inputs": s.inputs, "outputs": s.outputs}
                          for s in self.trace]} \
            | ({"sql": self.sql, "rows": self.rows} if self.sql is not None else {}) \
            | ({"flagged": self.flagged} if self.flagged else {}) \
            | ({"graph": self.graph} if self.graph is not None else {})
