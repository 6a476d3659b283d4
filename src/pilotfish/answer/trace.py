"""Node tracing for the answer graph: every node's input, output and seconds, so a user sees the final
prompt that reached the LLM, the rewritten queries, the decomposer's steps and the verifier's verdicts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pilotfish.errors import GenerationCancelled
from pilotfish.types import TraceStep

_SHOWN = ("relevant", "text", "route", "verification", "rewrite", "plan", "steps", "notes", "tables", "flagged",
          "graph")


def traced(name: str, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`fn` as a graph node that adds its `TraceStep` to the trace (the state's reducer appends it)."""
    def node(state: Any) -> Any:
        cancel = state.get("cancel")
        if cancel is not None and cancel.is_set():  # the caller went away: run no further node
            raise GenerationCancelled(f"the answer was cancelled before {name}")
        start = time.perf_counter()
        update = fn(state)
        step = TraceStep(node=name, seconds=time.perf_counter() - start, inputs=trace_summary(name, state, True),
                         outputs=trace_summary(name, update, False))
        return {**update, "trace": [step]}

    return node


def trace_summary(node: str, data: Any, inputs: bool) -> dict[str, Any]:
    """What the trace keeps of a node's input or output: enough to debug, never whole corpora."""
    out: dict[str, Any] = {}
    if inputs and node in ("retrieve", "rerank", "gate", "rewrite", "decompose", "link_tables", "link_entities"):
        out["question"] = data.get("question")
    if inputs:
        if "messages" in data and node == "generate":
            out["messages"] = data["messages"]
        return out
    if "passages" in data:
        out["passages"] = [{"doc_id": p.doc_id, "chunk_id": p.chunk_id, "score": p.score} for p in data["passages"]]
    if "messages" in data:
        out["messages"] = data["messages"]
    for key in _SHOWN:  # a cascade's route, the verifier's verdicts, rewrites, plans, step answers
        if key in data and (data[key] or key == "relevant"):
            out[key] = data[key]
    if data.get("demos"):
        out["demos"] = [d.to_dict() for d in data["demos"]]
    if "citations" in data:
        out["citations"] = [c.to_dict() for c in data["citations"]]
    return out
