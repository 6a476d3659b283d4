"""Errors raised by pilotfish. Every message says what was wrong and what to do about it."""

from __future__ import annotations

from typing import Any


class PilotfishError(Exception):
    """Base class of every error pilotfish raises on purpose."""


class ConfigError(PilotfishError, ValueError):
    """A setting, argument or configuration file holds a bad value."""


class MissingModelError(PilotfishError):
    """A registry model is not in the model cache; the message names the command that fetches it."""

    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"model '{name}' is not in the model cache{extra}; fetch it with: pilotfish models pull {name}"
        )


class ModelIntegrityError(PilotfishError):
    """A downloaded model package or assembled file does not match its pinned sha256."""


class IngestError(PilotfishError):
    """A file could not be loaded or ingested."""


class KnowledgeBaseError(PilotfishError):
    """A knowledge base is missing, unreadable or inconsistent."""


class IndexStateError(PilotfishError):
    """An index is missing, stale or does not match the knowledge base."""


class BackendUnavailableError(IndexStateError):
    """A vector store (a Milvus server or Milvus Lite folder) does not answer; the message names its URL."""


class QueryError(PilotfishError, ValueError):
    """A search query or its options are invalid (empty query, unknown mode, bad filter)."""


class OutputParseError(PilotfishError):
    """An LLM reply did not match the JSON schema it was asked for; `raw` holds the reply and `usage`
    (when the backend knows it) what the failed call cost."""

    def __init__(self, message: str, raw: str, usage: Any = None) -> None:
        self.raw, self.usage = raw, usage
        super().__init__(f"{message}; raw reply: {raw[:500]!r}")


class LLMError(PilotfishError):
    """An LLM call failed: unreachable endpoint, timeout, missing key, context overflow."""


class TableError(PilotfishError):
    """A table file or database cannot be read, registered or found (empty, ragged, unreachable, gone)."""


class SQLRefusedError(PilotfishError):
    """The SQL sandbox refused a statement before running it; the message says which rule it broke."""


class SQLExecutionError(PilotfishError):
    """An allowed statement failed while running (an error from the database, the time limit)."""


class GenerationCancelled(PilotfishError):
    """The caller cancelled an answer while it ran (a served client disconnected); nothing was stored."""


class GraphError(PilotfishError):
    """A triples file cannot be read, or a knowledge graph lacks what was asked of it (an unknown entity)."""
