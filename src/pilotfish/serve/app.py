"""create_app: the FastAPI application of `pilotfish serve`.

>>> from pilotfish.serve.config import ServeConfig
>>> app = create_app(ServeConfig(kb="docs-kb"), service=None)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pilotfish.errors import ConfigError, GenerationCancelled, LLMError, PilotfishError, QueryError
from pilotfish.serve.access import Access
from pilotfish.serve.config import ServeConfig
from pilotfish.serve.native_api import router as native_router
from pilotfish.serve.openai_api import router as openai_router
from pilotfish.serve.queue import QueueFull
from pilotfish.serve.service import RequestError, Service
from pilotfish.serve.views import error_body

log = logging.getLogger("pilotfish.serve")
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}


class BodyLimit:
    """Refuses request bodies over the limit with 413 before the route reads them (uploads get their own limit),
    whether or not the client sent Content-Length."""

    def __init__(self, app: ASGIApp, *, limit: int, upload_limit: int) -> None:
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"] == "/api/documents" else self.limit
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        seen = 0
        refused = False

        async def counted() -> Any:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            if refused:
                await _too_large(send, limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Any, limit: int) -> None:
    body = json.dumps(error_body(f"the request body is larger than {limit} bytes: send less "
                                 "(for documents, upload fewer or smaller files)", code="body_too_large")).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(config: ServeConfig, *, service: Service | None = None) -> FastAPI:
    """The app for one worker; `service` may be given ready (tests hand in one with a scripted LLM)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = service if service is not None else await asyncio.to_thread(Service, config)
        app.state.access = Access(app.state.service)
        app.state.ready = False
        warm = asyncio.create_task(asyncio.to_thread(_warm, app.state.service))
        warm.add_done_callback(lambda _: setattr(app.state, "ready", True))
        yield
        app.state.service.close()

    app = FastAPI(title="pilotfish", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.include_router(openai_router)
    app.include_router(native_router)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", None) or "other"
        if hasattr(request.app.state, "service"):
            request.app.state.service.metrics.request(path, response.status_code, time.perf_counter() - start)
        return response

    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-API-Key"])
    app.add_middleware(BodyLimit, limit=config.max_body_bytes, upload_limit=config.max_upload_bytes)
    _errors(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "worker": os.getpid()}  # which worker process answered

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        ready = getattr(request.app.state, "ready", False)
        return JSONResponse({"status": "ready" if ready else "warming up"}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        service: Service = request.app.state.service
        body, content_type = service.metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(_asset("index.html"))

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in _STATIC:
            return JSONResponse(error_body(f"no file {name!r}", code="not_found"), status_code=404)
        return Response(_asset(name), media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})

    return app


def _asset(name: str) -> str:
    return (resources.files("pilotfish.serve") / "page" / name).read_text(encoding="utf-8")


def _warm(service: Service) -> None:
    """Load the search models before the first question, so /readyz turns ready when answers are fast."""
    try:
        if service.kb.has_text():
            service.kb.search("warm up", top_k=1)
    except Exception as err:  # a warm-up failure must not stop the server; the first request reports it
        log.warning("warm-up search failed: %s", err)


def _errors(app: FastAPI) -> None:
    def reply(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
              headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(error_body(message, kind, code), status_code=status, headers=headers)

    @app.exception_handler(RequestError)
    async def refused(_: Request, err: RequestError) -> JSONResponse:
        return reply(err.status, err.message, err.kind, err.code, err.headers)

    @app.exception_handler(QueueFull)
    async def busy(request: Request, err: QueueFull) -> JSONResponse:
        request.app.state.service.metrics.rejected.labels("queue").inc()
        return reply(429, str(err), "rate_limit_error", "queue_full", {"Retry-After": str(err.retry_after)})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
                             for e in err.errors()[:5])
        return reply(400, f"bad request: {problems}", code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return reply(err.status_code, str(err.detail), code="not_found" if err.status_code == 404 else None)

    @app.exception_handler(QueryError)
    @app.exception_handler(ConfigError)
    async def bad_query(_: Request, err: PilotfishError) -> JSONResponse:
        return reply(400, str(err), code="invalid_request")

    @app.exception_handler(LLMError)
    async def model_failed(_: Request, err: LLMError) -> JSONResponse:
        return reply(502, f"the language model failed: {err}", "server_error", "llm_failed")

    @app.exception_handler(GenerationCancelled)
    async def cancelled(_: Request, err: GenerationCancelled) -> JSONResponse:
        return reply(499, str(err), "server_error", "cancelled")

    @app.exception_handler(Exception)
    async def crashed(_: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return reply(500, f"internal error: {type(err).__name__}: {err}", "server_error", "internal_error")
