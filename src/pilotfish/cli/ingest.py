"""`pilotfish ingest`: load, chunk and index files into a knowledge base.

Exit codes: 0 when everything given was ingested (or was unchanged), 3 when some files or some lines or
rows of a csv/jsonl file failed and were skipped while the rest was ingested, 1 when nothing could be
ingested or on an error (and 2, as for every command, for a usage error such as an unknown option).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pilotfish.cli.common import DbOpt, KbOpt, _quiet_libraries, err, fail, out
from pilotfish.errors import ConfigError, PilotfishError
from pilotfish.retrievers.index import KINDS as INDEX_KINDS

EXIT_FAILED = 1  # nothing could be ingested, or an error stopped the command
EXIT_PARTLY_FAILED = 3  # some files or records failed and were skipped; the rest was ingested (2 is a usage error)
RAY_HELP = ("auto (a local Ray runtime, started if none runs) or a cluster's address (ray://HOST:10001 or HOST:6379); "
            "each worker loads the models once. Needs Ray: install pilotfish with its ray extra.")
RAY_WORKERS_HELP = "Ray workers (actors, one CPU each) with --ray; default one per CPU of the cluster."


class _RichProgress:
    """Draws ingest's stages (`knowledge.ingest.Progress`) as rich progress rows; a stage without a known
    total (loading a model, saving) gets a spinner and a pulsing bar, so the screen never stands still."""

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
    paths: Annotated[list[Path] | None, typer.Argument(help="Files and folders to ingest.")] = None,
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    collection: Annotated[str, typer.Option(help="Collection the documents join.")] = "default",
    prune: Annotated[bool, typer.Option("--prune", help="Remove documents whose files are gone.")] = False,
    id_field: Annotated[str | None, typer.Option(help="JSONL/CSV field holding the document id.")] = None,
    text_field: Annotated[str | None, typer.Option(help="JSONL/CSV field holding the text (a CSV then becomes one "
                                                        "document per row instead of a table).")] = None,
    database: Annotated[list[str] | None, typer.Option(help="SQLAlchemy URL of a database whose tables to register "
                                                            "(described, not copied; ${VAR} in it is read from the "
                                                            "environment).")] = None,
    chunk_tokens: Annotated[int | None, typer.Option(help="Chunk size in tokens (new KB only).")] = None,
    overlap_tokens: Annotated[int | None, typer.Option(help="Overlap between chunks (new KB only).")] = None,
    embedding_model: Annotated[str | None, typer.Option(
        "--embedder", "--embedding-model", help="Embedding model (new KB only): minilm-l6, bge-small, a name "
                                                "registered by `pilotfish train embedder --name`, or a model "
                                                "folder. Change it later with `pilotfish kb reembed`.")] = None,
    dense: Annotated[bool, typer.Option(help="Build the dense index (new KB only).")] = True,
    dense_index: Annotated[str | None, typer.Option(
        help="FAISS index kind (new KB only): auto (flat below 50k chunks, HNSW below 1M, IVF above), flat, hnsw, "
             "ivf, ivfpq, or ivfsq8 (8 bits a dimension: about a quarter of flat's memory).")] = None,
    vectors: Annotated[str | None, typer.Option(
        "--vectors", metavar="URL", help="Where dense vectors live (new KB only; stored with it, so search and ask "
                                         "need no flag): faiss (the default, files beside the KB), "
                                         "milvus:///relative/path.db or milvus:////absolute/path.db (Milvus Lite "
                                         "in this process), or milvus://HOST:PORT/COLLECTION (a Milvus "
                                         "server; the collection may be left out).")] = None,
    kind: Annotated[str, typer.Option(help="auto (documents and tables; N-Triples and Turtle files as triples), "
                                           "documents, or triples (subject|relation|object lines, TSV/CSV with "
                                           "three columns, RDF) for the knowledge graph.")] = "auto",
    batch_chunks: Annotated[int, typer.Option(
        min=1, help="Chunks read, embedded and staged on disk together. A killed or failed ingest, run again with "
                    "the same files, resumes after its last staged batch.")] = 1024,
    ray: Annotated[str | None, typer.Option("--ray", metavar="auto|ADDRESS", help="Chunk and embed on Ray "
                                                                                  f"workers: {RAY_HELP}")] = None,
    ray_workers: Annotated[int | None, typer.Option(min=1, help=RAY_WORKERS_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Load, chunk and index files; unchanged files are skipped, changed ones replaced. Table files (CSV, TSV,
    XLSX, Parquet) become SQL tables with searchable schema cards; --database registers a database's tables;
    --kind triples reads knowledge-graph triples (subject|relation|object lines, TSV, CSV, N-Triples, Turtle).

    A file, or a line or row of a csv or jsonl file, that cannot be read is reported and skipped, and
    the rest is ingested. Exit code: 0 when nothing failed; 3 when something failed and the rest was
    ingested; 1 when nothing could be ingested, or on an error.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pilotfish.knowledge.base import KnowledgeBase

    _quiet_libraries()
    if not paths and not database:
        fail("give files or folders to ingest, or --database URL")
    settings: dict[str, Any] = {}
    for key, value in (("chunk_tokens", chunk_tokens), ("overlap_tokens", overlap_tokens),
                       ("embedding_model", embedding_model), ("vectors", vectors), ("dense_index", dense_index)):
        if value is not None:
            settings[key] = value
    if not dense:
        settings["dense"] = False
    if kind not in KINDS:
        fail(f"unknown --kind {kind!r}: use {', '.join(KINDS)}")
    if dense_index is not None and dense_index not in INDEX_KINDS:
        fail(f"unknown --dense-index {dense_index!r}: use {', '.join(INDEX_KINDS)}")
    triples, documents = _split_kinds(paths or [], kind)
    if triples and (database or text_field or id_field):
        fail("--database, --text-field and --id-field do not apply to triples files; ingest those on their own")
    try:
        check_ray(ray, ray_workers)  # before anything is opened: without Ray installed, say how to install it
        base = KnowledgeBase.open(kb, db=db, create=True, settings=settings or None)
        columns = (SpinnerColumn(finished_text="[green]✓[/]"), TextColumn("{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            graph = (base.ingest_triples(triples, collection=collection, progress=_RichProgress(progress))
                     if triples else None)
            report = (base.ingest(documents, collection=collection, prune=prune, id_field=id_field,
                                  text_field=text_field, databases=database or [], progress=_RichProgress(progress),
                                  batch_chunks=batch_chunks, ray=ray, ray_workers=ray_workers)
                      if documents or database or prune or graph is None else None)
    except PilotfishError as e:
        fail(str(e))
    report = _combined(report, graph)
    failed = len(report.failed)
    nothing = failed and not (report.documents or report.files_skipped or report.files_pruned or report.tables
                              or report.triples)
    if as_json:
        out.print_json(json.dumps(report.__dict__))
    else:
        outcome = "" if not failed else f" ([bold red]exit code {EXIT_FAILED if nothing else EXIT_PARTLY_FAILED}[/])"
        out.print(f"[bold]ingested[/] {report.files_new} new and {report.files_changed} changed files "
                  f"({report.documents} documents, {report.chunks} chunks, {report.embedded} embedded); "
                  f"{report.files_skipped} unchanged skipped, {report.files_pruned} pruned, "
                  f"{failed} failed{outcome}, in {report.seconds:.1f}s", soft_wrap=True)
        tables = f", {report.total_tables} tables" if report.total_tables else ""
        triples_note = (f", {report.total_triples} triples about {report.total_entities} entities"
                        if report.total_triples else "")
        added = f" ({report.triples} triples added)" if report.triples else ""
        out.print(f"knowledge base {kb}: {report.total_documents} documents, {report.total_chunks} chunks{tables}"
                  f"{triples_note}{added}", soft_wrap=True)
        if report.resumed_batches:
            out.print(f"resumed: {report.resumed_batches} batches ({report.resumed_records} records) staged by an "
                      "interrupted ingest were taken up, not read and embedded again", soft_wrap=True)
        for path, note in report.notes:
            err.print(f"[dim]note[/] {escape(path)}: {escape(note)}", highlight=False, soft_wrap=True)
        for path, reason in report.failed:
            err.print(f"[yellow]failed[/] {escape(path)}: {escape(reason)}", highlight=False, soft_wrap=True)
    reasons = "reasons in the JSON" if as_json else "reasons above"
    if nothing:
        fail(f"nothing was ingested: {failed} file(s) or record(s) failed ({reasons}); fix them and ingest again",
             EXIT_FAILED)
    if failed:
        fail(f"{failed} file(s) or record(s) failed and were skipped ({reasons}); the rest was ingested",
             EXIT_PARTLY_FAILED)


KINDS = ("auto", "documents", "triples")


def check_ray(ray: str | None, workers: int | None) -> None:
    """ConfigError when --ray-workers comes without --ray, or --ray without Ray installed (with the install hint)."""
    if ray is None:
        if workers is not None:
            raise ConfigError("--ray-workers needs --ray auto or --ray ADDRESS")
        return
    from pilotfish.knowledge.ray_batches import import_ray

    import_ray()


def _split_kinds(paths: list[Path], kind: str) -> tuple[list[Path], list[Path]]:
    """(triples files, everything else): all of them with --kind triples, none with documents, and with auto the
    files named directly whose suffix is an RDF syntax (N-Triples, Turtle, ...)."""
    from pilotfish.graphs.triples import RDF_SUFFIXES, suffix_of

    if kind == "triples":
        return list(paths), []
    if kind == "documents":
        return [], list(paths)
    rdf = [p for p in paths if p.is_file() and suffix_of(p) in RDF_SUFFIXES]
    return rdf, [p for p in paths if p not in rdf]


def _combined(report: Any, graph: Any) -> Any:
    """One report for a run that ingested documents, triples or both."""
    import dataclasses

    if graph is None:
        return report
    if report is None:
        return graph
    return dataclasses.replace(report, files_new=report.files_new + graph.files_new,
                               files_changed=report.files_changed + graph.files_changed,
                               files_skipped=report.files_skipped + graph.files_skipped,
                               failed=graph.failed + report.failed, triples=graph.triples,
                               total_triples=graph.total_triples, total_entities=graph.total_entities,
                               seconds=report.seconds + graph.seconds)
