"""`pilotfish search`: ranked passages for a query, or a batch of queries written as JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pilotfish.cli.common import DbOpt, KbOpt, _quiet_libraries, err, fail, jsonl_lines, out
from pilotfish.errors import PilotfishError, QueryError

def search(
    query: Annotated[str | None, typer.Argument(help="What to search for.")] = None,
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    mode: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "hybrid",
    rerank: Annotated[bool, typer.Option("--rerank", help="Rerank with the cross-encoder.")] = False,
    rerank_depth: Annotated[int, typer.Option(help="Candidates the reranker sees.")] = 30,
    k: Annotated[int, typer.Option("-k", "--top-k", help="How many passages.")] = 10,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="key=value metadata filter.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    queries: Annotated[Path | None, typer.Option(help='JSONL of {"id", "text"}: batch mode.')] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Batch results file (default stdout).")] = None,
) -> None:
    """Search the knowledge base and print ranked passages with scores and sources."""
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
            _search_batch(base, queries, output, options)
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


def _search_batch(base: Any, path: Path, output: Path | None, options: dict[str, Any]) -> None:
    records = _read_queries(path)
    results = base.search_batch([r["text"] for r in records], **options)
    lines = [json.dumps({"id": r["id"], "results": [{"doc_id": p.doc_id, "chunk_id": p.chunk_id, "score": p.score}
                                                   for p in ps]}) for r, ps in zip(records, results)]
    _write_lines(lines, output)


def _write_lines(lines: list[str], output: Path | None) -> None:
    text = "\n".join(lines) + "\n"
    if output:
        output.write_text(text)
        err.print(f"wrote {len(lines)} lines to {output}")
    else:
        sys.stdout.write(text)


def _read_queries(path: Path) -> list[dict[str, str]]:
    return [{"id": r["id"], "text": r["text"]} for r in _read_jsonl_records(path, "text")]


def _read_jsonl_records(path: Path, field: str) -> list[dict[str, str]]:
    """Lines {"id": ..., FIELD: "..."} with a non-empty FIELD; errors name the line."""
    records = []
    for n, record in jsonl_lines(path):
        if not isinstance(record, dict) or field not in record or "id" not in record:
            raise QueryError(f'{path} line {n}: expected an object with "id" and "{field}"')
        if not isinstance(record[field], str) or not record[field].strip():
            raise QueryError(f'{path} line {n}: empty "{field}"')
        records.append({"id": str(record["id"]), field: record[field]})
    if not records:
        raise QueryError(f"{path} holds no records")
    return records
