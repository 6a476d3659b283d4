"""`pilotfish log`: what the answer log recorded (LLM calls, answers, feedback), exported as JSONL.

    pilotfish ask "..." --kb .pilotfish --log            # or [log] enabled = true in a pipeline file, serve --log
    pilotfish log export --kb .pilotfish --kind answers --since 7d --out answers.jsonl
    pilotfish log stats --kb .pilotfish
    pilotfish log prune --kb .pilotfish --older-than 30
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pilotfish.cli.common import DbOpt, KbOpt, err, fail, out, print_table
from pilotfish.errors import ConfigError, PilotfishError

log_app = typer.Typer(help=escape("Export and prune the answer log (off unless a pipeline's [log] table turns it on)."),
                      no_args_is_help=True)

KINDS = {"calls": "LLM calls", "answers": "answers", "feedback": "feedback items", "all": "records"}
NO_LOG = ("{kb} holds no answer log: nothing was logged yet. Turn it on with [log] enabled = true in a pipeline file, "
          "or --log on `pilotfish ask`, `chat` or `serve`")


def _store(kb: Path, db: str | None) -> Any:
    from pilotfish.knowledge.base import KnowledgeBase

    return KnowledgeBase.open(kb, db=db).store


@log_app.command("export")
def export(
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    kind: Annotated[str, typer.Option(help="calls, answers, feedback or all (merged by time).")] = "all",
    since: Annotated[str | None, typer.Option(help="Only records from this UTC date or time (2025-05-01, "
                                                   "2025-05-01T12:30) or age (7d, 12h) on.")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline's records (its name).")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="JSONL file to write (default stdout).")] = None,
) -> None:
    """Write the log as JSONL, oldest first: one object a line, each with kind (answer, llm_call or feedback), id
    and created_at (ISO 8601, UTC). Calls and feedback carry the answer_id of their answer."""
    from pilotfish.knowledge.answer_log import has_log, iter_log, parse_since

    try:
        if kind not in KINDS:
            raise ConfigError(f"unknown --kind {kind!r}: use {', '.join(KINDS)}")
        cutoff = parse_since(since) if since is not None else None
        store = _store(kb, db)
        if kind != "feedback" and not has_log(store):
            raise ConfigError(NO_LOG.format(kb=kb) + (" (feedback of served answers: --kind feedback)"
                                                      if kind == "all" else ""))
        count = _write(iter_log(store, kind=kind, since=cutoff, pipeline=pipeline), output)
    except PilotfishError as e:
        fail(str(e))
    if count == 0:
        err.print(escape(f"no {KINDS[kind]}" + (f" of pipeline {pipeline!r}" if pipeline else "")
                         + (f" since {since}" if since else "") + f" in the answer log of {kb}"),
                  highlight=False, soft_wrap=True)
    elif output is not None:
        err.print(escape(f"wrote {count} {KINDS[kind]} to {output}"), highlight=False, soft_wrap=True)


def _write(records: Any, output: Path | None) -> int:
    """JSON lines to `output` (written whole, then renamed into place) or stdout; the number written."""
    if output is None:
        return _lines(records, sys.stdout)
    temporary = output.with_name(output.name + ".partial")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            count = _lines(records, handle)
        os.replace(temporary, output)
    except OSError as e:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {output}: {e.strerror}; choose a writable --out path") from e
    return count


def _lines(records: Any, handle: IO[str]) -> int:
    count = 0
    for record in records:
        handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        count += 1
    return count


@log_app.command("prune")
def prune(
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    older_than: Annotated[float, typer.Option(help="Delete records older than this many days (0: all).")] = 30.0,
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline's records.")] = None,
    feedback: Annotated[bool, typer.Option("--feedback", help="Delete old feedback of served answers too (kept by "
                                                              "default: users gave it on purpose).")] = False,
) -> None:
    """Delete answers and LLM calls older than --older-than days (a logging pipeline also deletes its own rows as it
    writes, once they are older than its retention_days)."""
    from pilotfish.knowledge.answer_log import has_log, prune_log

    try:
        if older_than < 0:
            raise ConfigError(f"--older-than must be 0 or more days, got {older_than:g}")
        store = _store(kb, db)
        if not has_log(store) and not feedback:
            out.print(escape(NO_LOG.format(kb=kb)) + "; nothing to prune", highlight=False, soft_wrap=True)
            return
        gone = prune_log(store, older_than_days=older_than, pipeline=pipeline, feedback=feedback)
    except PilotfishError as e:
        fail(str(e))
    out.print(f"deleted {gone['answers']} answers, {gone['calls']} LLM calls"
              + (f" and {gone['feedback']} feedback items" if feedback else "")
              + f" older than {older_than:g} days", highlight=False, soft_wrap=True)


@log_app.command("stats")
def stats(
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """How much the log holds: answers, LLM calls and feedback, their time span, and calls, tokens, seconds and
    cost per model."""
    from pilotfish.knowledge.answer_log import log_stats

    try:
        found = log_stats(_store(kb, db))
    except PilotfishError as e:
        fail(str(e))
    if as_json:
        out.print_json(json.dumps(found))
        return
    if not found["logged"]:
        out.print(escape(NO_LOG.format(kb=kb)) + f"; feedback items: {found['feedback']['count']}",
                  highlight=False, soft_wrap=True)
        return
    table = Table("kind", "records", "first (UTC)", "last (UTC)")
    for name in ("answers", "calls", "feedback"):
        part = found[name]
        shown = f"{part['count']} ({part['answered']} answered)" if name == "answers" else str(part["count"])
        table.add_row(name, shown, part["first"] or "", part["last"] or "")
    print_table(table)
    if found["models"]:
        table = Table("model", "calls", "tokens in", "tokens out", "seconds", "cost")
        for m in found["models"]:
            table.add_row(escape(m["model"]), str(m["calls"]), str(m["prompt_tokens"]), str(m["completion_tokens"]),
                          f"{m['seconds']:.1f}", f"${m['cost']:.4f}")
        print_table(table)
