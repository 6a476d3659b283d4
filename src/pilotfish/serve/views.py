"""What the server sends about an answer: the `pilotfish` field of a chat completion, and SSE framing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import PurePath
from typing import Any

from fastapi.responses import StreamingResponse

from pilotfish.serve.metrics import escalations
from pilotfish.types import Answer

SNIPPET_CHARS = 1500


def evidence(answer: Answer) -> list[dict[str, Any]]:
    """The numbered evidence the answer was given, as the page shows it (table rows are passages too)."""
    flagged = {f["marker"]: f["signs"] for f in answer.flagged}
    return [{"n": n, "doc_id": p.doc_id, "chunk_id": p.chunk_id, "title": p.title, "source": p.source,
             "collection": (p.metadata or {}).get("collection"), "text": p.text[:SNIPPET_CHARS],
             "score": round(float(p.score), 4), "flagged": flagged.get(n, [])}
            for n, p in enumerate(answer.evidence, 1)]


def route(answer: Answer) -> dict[str, Any] | None:
    for step in answer.trace:
        found = step.outputs.get("route") if isinstance(step.outputs, dict) else None
        if found:
            return found
    return None


def pilotfish_field(answer: Answer, pipeline: str, **extra: Any) -> dict[str, Any]:
    """Everything a standard OpenAI client ignores: citations, evidence, verdicts, route, SQL, graph paths, cost
    and latency."""
    usage = answer.usage
    return hide_paths({"pipeline": pipeline, "answered": answer.answered, "model": answer.model,
            "citations": [c.to_dict() for c in answer.citations], "evidence": evidence(answer),
            "verification": answer.verification, "route": route(answer), "escalations": escalations(answer),
            "flagged": answer.flagged, "sql": answer.sql, "rows": answer.rows, "graph": answer.graph,
            "seconds": round(answer.seconds, 3), "cost": usage.cost if usage is not None else 0.0, **extra})


def usage(answer: Answer) -> dict[str, int]:
    u = answer.usage
    prompt, completion = (u.prompt_tokens, u.completion_tokens) if u is not None else (0, 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def event_response(events: AsyncIterator[str]) -> StreamingResponse:
    """A server-sent event stream that proxies neither cache nor buffer."""
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def sse(data: Any, event: str | None = None) -> str:
    """One server-sent event (`data: [DONE]` when data is that string)."""
    body = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, default=str)
    return (f"event: {event}\n" if event else "") + f"data: {body}\n\n"


def hide_paths(data: Any) -> Any:
    """`data` with every `source` that is a path of the server's disk cut to its file name: clients learn which
    document, never where the server keeps it (`doc_id` already names it relative to what was ingested)."""
    if isinstance(data, dict):
        return {k: (_file_name(v) if k == "source" and isinstance(v, str) else hide_paths(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [hide_paths(v) for v in data]
    return data


def _file_name(source: str) -> str:
    if "://" in source or not (source.startswith(("/", "~")) or (len(source) > 2 and source[1] == ":")):
        return source
    return PurePath(source.replace("\\", "/")).name


def error_body(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, used by every route."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
