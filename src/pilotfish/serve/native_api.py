"""The native routes: /api/ask (the whole Answer with its trace), /api/search, /api/sessions, /api/feedback
and /api/documents (upload and ingest, admin keys only)."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from pilotfish.answer.chat import ChatSession
from pilotfish.serve.conversations import Conversations, SessionNotFound
from pilotfish.serve.feedback import FeedbackStore
from pilotfish.serve.service import RequestError, Service
from pilotfish.serve.views import event_response, hide_paths, pilotfish_field, sse
from pilotfish.types import Answer

router = APIRouter()
MODES = ("hybrid", "bm25", "dense")


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1)
    pipeline: str | None = None
    session_id: int | None = None
    stream: bool = False
    filters: dict[str, Any] | None = None
    trace: bool = True


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1)
    k: int = Field(default=10, ge=1, le=100)
    mode: str = "hybrid"
    filters: dict[str, Any] | None = None
    chunks: bool = False  # chunk-level results; by default one result per document, at its best chunk


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(default="", max_length=200)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: int | None = None
    question: str | None = None
    answer: str | None = None
    evidence: list[str] | None = None
    pipeline: str | None = None
    rating: int = 0
    correction: str | None = None
    comment: str | None = None


def _service(request: Request) -> Service:
    return request.app.state.service


@router.post("/api/ask", response_model=None)
async def ask(body: AskRequest, request: Request) -> JSONResponse | StreamingResponse:
    key = request.app.state.access.caller(request)
    service = _service(request)
    service.check_question(body.question)
    pipeline = service.pipeline(body.pipeline, key)
    filters = service.filters(key, body.filters)
    conversations = Conversations(service.kb.store)
    if body.session_id is not None:
        try:
            found = conversations.get(key, body.session_id)
        except SessionNotFound as err:
            raise RequestError(404, str(err), code="session_not_found") from None
        chat = ChatSession.open(pipeline, name=found["name"])
    else:
        chat = ChatSession(pipeline, None, "api", [])

    def make(cancel: threading.Event) -> Iterator[str | Answer]:
        return chat.stream(body.question, filters=filters, cancel=cancel)

    name = pipeline.spec.name

    def finished(answer: Answer) -> dict[str, Any]:
        service.metrics.answer(name, answer)
        data = answer.to_dict()
        if not body.trace:
            data.pop("trace", None)
        return hide_paths(data) | {"pipeline": name, "session_id": body.session_id,
                                   "message_id": chat.last_message_id, "pilotfish": pilotfish_field(answer, name)}

    if not body.stream:
        return JSONResponse(finished(await service.answer(pipeline, make)))
    return event_response(await service.events(pipeline, make, piece=lambda text: sse({"text": text}, "token"),
                                               done=lambda answer: sse(finished(answer), "answer"),
                                               error_event="error"))


@router.post("/api/search")
async def search(body: SearchRequest, request: Request) -> dict[str, Any]:
    key = request.app.state.access.caller(request)
    service = _service(request)
    if body.mode not in MODES:
        raise RequestError(400, f"unknown mode {body.mode!r}: use one of {', '.join(MODES)}", code="bad_mode")
    if not body.query.strip():
        raise RequestError(400, "empty query: search for something", code="empty_query")
    filters = service.filters(key, body.filters)
    passages = await service.searches.search(body.query, mode=body.mode, top_k=body.k, filters=filters,
                                             chunks=body.chunks)
    return {"query": body.query, "results": hide_paths([p.to_dict() for p in passages])}


@router.get("/api/sessions")
async def list_sessions(request: Request) -> dict[str, Any]:
    key = request.app.state.access.caller(request)
    return {"sessions": await run_in_threadpool(Conversations(_service(request).kb.store).list, key)}


@router.post("/api/sessions")
async def create_session(body: SessionRequest, request: Request) -> dict[str, Any]:
    key = request.app.state.access.caller(request)
    return await run_in_threadpool(Conversations(_service(request).kb.store).create, key, body.title)


@router.get("/api/sessions/{session_id}")
async def get_session(session_id: int, request: Request) -> dict[str, Any]:
    key = request.app.state.access.caller(request)
    try:
        return await run_in_threadpool(Conversations(_service(request).kb.store).get, key, session_id)
    except SessionNotFound as err:
        raise RequestError(404, str(err), code="session_not_found") from None


@router.post("/api/feedback")
async def feedback(body: FeedbackRequest, request: Request) -> dict[str, Any]:
    key = request.app.state.access.caller(request)
    try:
        return await run_in_threadpool(FeedbackStore(_service(request).kb.store).add, key,
                                       body.model_dump(exclude_none=True))
    except SessionNotFound as err:
        raise RequestError(404, str(err), code="message_not_found") from None
    except ValueError as err:
        raise RequestError(400, str(err), code="bad_feedback") from None


_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@router.post("/api/documents")
async def documents(request: Request, files: Annotated[list[UploadFile], File()],
                    collection: Annotated[str, Form()] = "default") -> dict[str, Any]:
    """Files are kept under the knowledge base's uploads/COLLECTION folder and ingested incrementally, so
    uploading a file again replaces it (by content hash) instead of adding a copy."""
    key = request.app.state.access.caller(request, admin=True)
    service = _service(request)
    if not _SAFE_NAME.fullmatch(collection) or collection.startswith("."):
        raise RequestError(400, f"bad collection name {collection!r}: use letters, digits, '.', '_' and '-'",
                           code="bad_collection")
    if key is not None and key.collections is not None and collection not in key.collections:
        raise RequestError(403, f"this key may write only to the collections {', '.join(key.collections)}",
                           kind="permission_error", code="collection_forbidden")
    folder = Path(service.kb.directory) / "uploads" / collection
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for upload in files:
        name = _UNSAFE.sub("_", Path(upload.filename or "upload").name).lstrip(".") or "upload"
        target = folder / name
        partial = target.with_name(target.name + ".part")
        with partial.open("wb") as out:
            shutil.copyfileobj(upload.file, out)
        partial.replace(target)
        saved.append(target)
    async with service.ingest_lock:  # one ingest at a time in this worker; the store keeps workers consistent
        report = await run_in_threadpool(service.kb.ingest, saved, collection=collection)
    return {"collection": collection, "files": [p.name for p in saved], "report": asdict(report)}
