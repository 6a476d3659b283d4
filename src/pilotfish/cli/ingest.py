"""`pilotfish ingest`: load, chunk and index files into a knowledge base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from pilotfish.cli.common import DbOpt, KbOpt, _quiet_libraries, err, fail, out
from pilotfish.errors import PilotfishError


class _RichProgress:
    def __init__(self, progress: Any) -> None:
        self.progress, self.task = progress, None

    def stage(self, name: str, total: int | None) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total or 1,
                                 total=self.progress.tasks[-1].total or 1)
        self.task = self.progress.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    collection: Annotated[str, typer.Option(help="Collection the documents join.")] = "default",
    prune: Annotated[bool, typer.Option("--prune", help="Remove documents whose files are gone.")] = False,
    id_field: Annotated[str | None, typer.Option(help="JSONL/CSV field holding the document id.")] = None,
    text_field: Annotated[str | None, typer.Option(help="JSONL/CSV field holding the text.")] = None,
    chunk_tokens: Annotated[int | None, typer.Option(help="Chunk size in tokens (new KB only).")] = None,
    overlap_tokens: Annotated[int | None, typer.Option(help="Overlap between chunks (new KB only).")] = None,
    embedding_model: Annotated[str | None, typer.Option(help="minilm-l6 or bge-small (new KB only).")] = None,
    dense: Annotated[bool, typer.Option(help="Build the dense index (new KB only).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Load, chunk and index files; unchanged files are skipped, changed ones replaced."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pilotfish.knowledge.base import KnowledgeBase

    _quiet_libraries()
    settings: dict[str, Any] = {}
    for key, value in (("chunk_tokens", chunk_tokens), ("overlap_tokens", overlap_tokens),
                       ("embedding_model", embedding_model)):
        if value is not None:
            settings[key] = value
    if not dense:
        settings["dense"] = False
    try:
        base = KnowledgeBase.open(kb, db=db, create=True, settings=settings or None)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            report = base.ingest(paths, collection=collection, prune=prune, id_field=id_field,
                                 text_field=text_field, progress=_RichProgress(progress))
    except PilotfishError as e:
        fail(str(e))
    if as_json:
        out.print_json(json.dumps(report.__dict__))
    else:
        out.print(f"[bold]ingested[/] {report.files_new} new and {report.files_changed} changed files "
                  f"({report.documents} documents, {report.chunks} chunks, {report.embedded} embedded); "
                  f"{report.files_skipped} unchanged skipped, {report.files_pruned} pruned, "
                  f"{len(report.failed)} failed, in {report.seconds:.1f}s", soft_wrap=True)
        out.print(f"knowledge base {kb}: {report.total_documents} documents, {report.total_chunks} chunks",
                  soft_wrap=True)
        for path, reason in report.failed:
            err.print(f"[yellow]failed[/] {path}: {reason}", highlight=False, soft_wrap=True)
    if report.failed and not report.documents and not report.files_skipped and not report.total_documents:
        fail(f"nothing was ingested: {len(report.failed)} path(s) failed (reasons above)")
