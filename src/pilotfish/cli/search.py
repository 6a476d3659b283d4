"""`pilotfish search`: ranked passages for a query, or a batch of queries written as JSON lines.

A single QUERY prints passages (chunks), several of which may come from one document. Batch mode
(`--queries`) writes documents by default, each once at its best chunk's rank and score, so that the file
can be scored against document-level relevance judgements (BEIR qrels); `--chunks` writes passages instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pilotfish.cli.common import DbOpt, KbOpt, _quiet_libraries, err, fail, out
from pilotfish.errors import PilotfishError, QueryError
from pilotfish.jsonl import read_jsonl


def search(
    query: Annotated[str | None, typer.Argument(help="What to search for.")] = None,
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    mode: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "hybrid",
    rerank: Annotated[bool, typer.Option("--rerank", help="Rerank with the cross-encoder.")] = False,
    rerank_depth: Annotated[int, typer.Option(help="Candidates the reranker sees.")] = 30,
    k: Annotated[int, typer.Option("-k", "--top-k", help="How many passages (batch mode: documents).")] = 10,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="key=value metadata filter.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    queries: Annotated[Path | None, typer.Option(help='JSONL of {"id", "text"}: batch mode.')] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Batch results file (default stdout).")] = None,
    chunks: Annotated[bool, typer.Option("--chunks", help="Batch mode: write passages, not documents.")] = False,
) -> None:
    """Search the knowledge base and print ranked passages with scores and sources.

    With --queries, write one JSON line per query: its top -k documents, each once, with the best
    chunk's score and chunk_id (--chunks: its top -k passages, as a single query prints them)."""
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.retrievers.corpus import parse_filters

    _quiet_libraries()
    try:
        if (query is None) == (queries is None):
            raise QueryError("give either a QUERY or --queries FILE.jsonl")
        parsed = parse_filters(filters or [])
        base = KnowledgeBase.open(kb, db=db)
        options = {"mode": mode, "top_k": k, "filters": parsed, "rerank": rerank, "rerank_depth": rerank_depth}
        if queries is not None:
            _search_batch(base, queries, output, options, documents=not chunks)
            return
        assert query is not None
        passages = base.search(query, **options)
    except PilotfishError as e:
        fail(str(e))
    if as_json:
        out.print_json(json.dumps([p.to_dict() for p in passages]))
        return
    if not passages:
        out.print("no passages match")
    for rank, p in enumerate(passages, 1):
        out.print(f"[bold]{rank}.[/] [cyan]{p.score:.4f}[/] {p.doc_id} [dim]({p.source})[/]", highlight=False,
                  soft_wrap=True)
        text = " ".join(p.text.split())
        out.print(f"   {text[:300]}{'...' if len(text) > 300 else ''}", highlight=False, soft_wrap=True)


def _search_batch(base: Any, path: Path, output: Path | None, options: dict[str, Any], *, documents: bool) -> None:
    records = _read_queries(path)
    search = base.search_documents_batch if documents else base.search_batch
    results = search([r["text"] for r in records], **options)
    lines = [json.dumps({"id": r["id"], "results": [{"doc_id": p.doc_id, "score": p.score, "chunk_id": p.chunk_id}
                                                   for p in ps]}) for r, ps in zip(records, results)]
    _write_lines(lines, output)


def _write_lines(lines: list[str], output: Path | None) -> None:
    text = "\n".join(lines) + "\n"
    if output:
        try:
            output.write_text(text)
        except OSError as e:
            raise QueryError(f"cannot write {output}: {e.strerror}; choose a writable --out path") from e
        err.print(f"wrote {len(lines)} lines to {output}")
    else:
        sys.stdout.write(text)


def _read_queries(path: Path) -> list[dict[str, str]]:
    return [{"id": r["id"], "text": r["text"]} for r in _read_jsonl_records(path, "text")]


def _read_jsonl_records(path: Path, field: str, optional: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Lines {"id": ..., FIELD: "..."} with a non-empty FIELD (and the `optional` string fields a line has);
    errors name the line."""
    records = []
    for n, record in read_jsonl(path, error=QueryError):
        if not isinstance(record, dict) or field not in record or "id" not in record:
            raise QueryError(f'{path} line {n}: expected an object with "id" and "{field}", '
                             f'e.g. {{"id": "q1", "{field}": "..."}}')
        if not isinstance(record[field], str):
            raise QueryError(f'{path} line {n}: "{field}" must be a string, got {type(record[field]).__name__}')
        if not record[field].strip():
            raise QueryError(f'{path} line {n}: empty "{field}"; give it some words')
        for name in optional:
            if name in record and not (isinstance(record[name], str) and record[name].strip()):
                raise QueryError(f'{path} line {n}: "{name}" must be a non-empty string, got {record[name]!r}')
        records.append({"id": str(record["id"]), field: record[field],
                        **{name: record[name] for name in optional if name in record}})
    if not records:
        raise QueryError(f'{path} holds no records; write one {{"id": ..., "{field}": ...}} object per line')
    return records
