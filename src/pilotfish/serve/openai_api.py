"""The OpenAI-compatible routes: /v1/models, /v1/chat/completions (streaming or not) and /v1/embeddings.

`model` names a served pipeline; the conversation's earlier user and assistant turns are the chat history
(a follow-up is rewritten to stand alone, as `pilotfish chat` does); system messages are ignored, because
the pipeline writes its own grounded prompt. Nothing is stored: use /api/sessions for stored conversations.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from pilotfish.answer.chat import ChatSession
from pilotfish.serve.service import RequestError, Service
from pilotfish.serve.views import event_response, pilotfish_field, sse, usage
from pilotfish.types import Answer

router = APIRouter()


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, top_p, ... are accepted and left to the pipeline
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    input: str | list[str]
    model: str | None = None


def _service(request: Request) -> Service:
    return request.app.state.service


@router.get("/v1/models")
async def models(request: Request) -> dict[str, Any]:
    request.app.state.access.caller(request)
    service = _service(request)
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "pilotfish", "description": p.spec.description}
        for name, p in service.pipelines.items()]}


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatRequest, request: Request) -> JSONResponse | StreamingResponse:
    key = request.app.state.access.caller(request)
    service = _service(request)
    if len(body.messages) > service.config.max_messages:
        raise RequestError(413, f"{len(body.messages)} messages in one request; the limit is "
                                f"{service.config.max_messages}: send fewer turns of history", code="too_many_messages")
    pipeline = service.pipeline(body.model, key)
    turns = [(m.role, m.text()) for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
        raise RequestError(400, "the last message must be the user's question, with text", code="no_question")
    question = turns[-1][1]
    service.check_question(question)
    filters = service.filters(key, None)
    chat = ChatSession(pipeline, None, "api", turns[:-1])

    def make(cancel: threading.Event) -> Iterator[str | Answer]:
        return chat.stream(question, filters=filters, cancel=cancel)

    reply_id, created, name = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), pipeline.spec.name
    if not body.stream:
        answer = await service.answer(pipeline, make)
        service.metrics.answer(name, answer)
        return JSONResponse({"id": reply_id, "object": "chat.completion", "created": created, "model": body.model,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                                          "finish_reason": "stop", "logprobs": None}],
                             "usage": usage(answer), "pilotfish": pilotfish_field(answer, name)})

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return sse({"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": body.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra})

    def done(answer: Answer) -> str:
        service.metrics.answer(name, answer)
        return chunk({}, "stop", usage=usage(answer), pilotfish=pilotfish_field(answer, name))

    return event_response(await service.events(pipeline, make, piece=lambda text: chunk({"content": text}),
                                               done=done, head=chunk({"role": "assistant", "content": ""}),
                                               tail=sse("[DONE]")))


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> dict[str, Any]:
    request.app.state.access.caller(request)
    service = _service(request)
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > 256 or any(not isinstance(t, str) or not t for t in texts):
        raise RequestError(400, "input must be a non-empty string or a list of 1 to 256 non-empty strings",
                           code="bad_input")
    served = service.kb.settings["embedding_model"]
    if body.model not in (None, "", served):
        raise RequestError(404, f"the embedding model served here is {served!r}; ask for that one",
                           code="model_not_found")
    from starlette.concurrency import run_in_threadpool

    dense = service.kb.current_dense() or service.kb.new_dense()
    vectors = await run_in_threadpool(dense.embedder.encode_documents, texts)
    tokens = sum(len(t.split()) for t in texts)
    return {"object": "list", "model": served,
            "data": [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
                     for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
