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
