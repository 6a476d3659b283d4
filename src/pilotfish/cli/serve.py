"""`pilotfish serve` and `pilotfish keys`: the chatbot server and its API keys.

    pilotfish keys create --name support --collections manuals,faq --kb .pilotfish
    pilotfish serve --kb .pilotfish --pipeline basic --pipeline verified --port 8000
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pilotfish.cli.common import DbOpt, KbOpt, err, fail, out, print_table
from pilotfish.errors import PilotfishError

keys_app = typer.Typer(help="API keys of `pilotfish serve`: create (shown once), list, revoke.", no_args_is_help=True)


def serve(
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    pipeline: Annotated[list[str] | None, typer.Option(
        "--pipeline", help="A pipeline to serve (built-in name or .toml file); repeat for several. The first is "
                           "the default; clients choose one with the `model` field.")] = None,
    llm: Annotated[str | None, typer.Option(help="Answer with this LLM in every served pipeline (not cascades).",
                                            envvar="PILOTFISH_LLM")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs an API key.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (each loads its own models).")] = 1,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without API keys, even on an open address.")]
    = False,
    rate: Annotated[int, typer.Option(help="Requests a minute per key (per worker).")] = 120,
    queue_size: Annotated[int, typer.Option(help="Answers that may wait for a local model; more get 429.")] = 8,
    cors: Annotated[list[str] | None, typer.Option("--cors", help="An origin allowed by CORS (off by default).")]
    = None,
    drain: Annotated[float, typer.Option(help="Seconds in-flight requests get to finish on SIGTERM.")] = 30.0,
    log: Annotated[bool | None, typer.Option(
        "--log/--no-log", help=escape("Record every served answer and LLM call in the knowledge base's answer log "
                                      "(or nothing), whatever each pipeline's [log] table says; see `pilotfish "
                                      "log`."))] = None,
) -> None:
    """Serve a chatbot: an OpenAI-compatible API, a native API and a web chat page at http://HOST:PORT/."""
    from pilotfish.serve.config import ServeConfig
    from pilotfish.serve.runner import check_serving, run_server

    try:
        config = ServeConfig(kb=str(kb), db=db, pipelines=tuple(pipeline or ("basic",)), llm=llm, host=host,
                             port=port, workers=workers, auth=not no_auth, rate_per_minute=rate,
                             queue_size=queue_size, cors_origins=tuple(cors or ()), drain_seconds=drain, log=log)
        for warning in check_serving(config):
            err.print(f"[bold red]WARNING[/]: {warning}", soft_wrap=True)
    except PilotfishError as e:
        fail(str(e))
    shown = "localhost" if config.loopback else host
    err.print(f"pilotfish serves {', '.join(config.pipelines)} from {kb} at http://{shown}:{port}/ "
              f"(OpenAI API at /v1, metrics at /metrics)", soft_wrap=True)
    if log:
        err.print(f"the answer log is on: questions, answers and LLM calls are stored in {kb} "
                  "(`pilotfish log export`)", soft_wrap=True)
    run_server(config)


def _keys(kb: Path, db: str | None):  # noqa: ANN202 - the KeyStore type loads lazily
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.serve.keys import KeyStore

    return KeyStore(KnowledgeBase.open(kb, db=db).store)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="A name for the key (who or what uses it).")],
    collections: Annotated[str | None, typer.Option(help="Comma-separated collections the key may read "
                                                         "(default: all).")] = None,
    scope: Annotated[str, typer.Option(help="ask, or admin (may also upload documents).")] = "ask",
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
) -> None:
    """Create a key and print its token once: only its hash is stored."""
    try:
        key, token = _keys(kb, db).create(name, scope=scope,
                                          collections=collections.split(",") if collections is not None else None)
    except PilotfishError as e:
        fail(str(e))
    err.print(f"created key {key.name!r} (scope {key.scope}, collections "
              f"{', '.join(key.collections) if key.collections else 'all'}); the token is shown only now:")
    out.print(token, soft_wrap=True)


@keys_app.command("list")
def keys_list(kb: KbOpt = Path(".pilotfish"), db: DbOpt = None,
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List keys (names, scopes, collections, token prefixes; never tokens)."""
    try:
        found = _keys(kb, db).list()
    except PilotfishError as e:
        fail(str(e))
    if as_json:
        out.print_json(json.dumps([k.to_dict() for k in found]))
        return
    if not found:
        out.print(f"no keys yet: `pilotfish keys create --name NAME --kb {kb}`")
        return
    table = Table("name", "scope", "collections", "prefix", "created", "revoked")
    for k in found:
        d = k.to_dict()
        table.add_row(k.name, k.scope, ", ".join(k.collections) if k.collections else "all", k.prefix + "...",
                      d["created_at"], d["revoked_at"] or "")
    print_table(table)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")], kb: KbOpt = Path(".pilotfish"),
                db: DbOpt = None) -> None:
    """Revoke a key: requests with its token are refused from now on (within 5 seconds on a running server)."""
    try:
        key = _keys(kb, db).revoke(name)
    except PilotfishError as e:
        fail(str(e))
    out.print(f"revoked key {key.name!r}")
