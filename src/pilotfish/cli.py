"""The `pilotfish` command line: ingest, search, ask, chat (`models`, `check`, `route`, `train`, `eval` and
`pipelines` live in the cli_*.py modules).

    pilotfish models pull
    pilotfish ingest docs/ --kb .pilotfish
    pilotfish search "how do I reset my password?" --kb .pilotfish --mode hybrid -k 5
    pilotfish ask "Who founded the university?" --kb .pilotfish
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pilotfish.cli_common import DbOpt, KbOpt, _quiet_libraries, err, fail, jsonl_lines, out
from pilotfish.cli_models import models_app
from pilotfish.errors import PilotfishError, QueryError

app = typer.Typer(help="Small models steer large ones: ingest documents, search them, answer from them.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.add_typer(models_app, name="models")


# -- ingest -------------------------------------------------------------------------------------
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


@app.command()
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


# -- search -------------------------------------------------------------------------------------
@app.command()
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


# -- ask ----------------------------------------------------------------------------------------
@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="The question.")] = None,
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    llm: Annotated[str | None, typer.Option(help="Registry model, openai:MODEL, .gguf path or pilotfish.toml name "
                                                 "(default qwen2.5-0.5b).", envvar="PILOTFISH_LLM")] = None,
    pipeline_name: Annotated[str, typer.Option("--pipeline", help="basic, cascade, verified, or a pipeline .toml "
                                                                   "file ([cascade], [router] or [answer], and "
                                                                   "[verify]).")] = "basic",
    mode: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "hybrid",
    k: Annotated[int, typer.Option("-k", "--top-k", help="Evidence passages in the prompt.")] = 5,
    rerank: Annotated[bool, typer.Option("--rerank", help="Rerank evidence with the cross-encoder.")] = False,
    style: Annotated[str, typer.Option(help="prose (cited sentences), short (a few words, JSON-enforced) or "
                                            "quoted (short, with the evidence sentence it comes from).")] = "prose",
    filters: Annotated[list[str] | None, typer.Option("--filter", help="key=value metadata filter.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 256,
    stream: Annotated[bool, typer.Option("--stream", help="Print the answer as it is written.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole Answer as JSON.")] = False,
    questions: Annotated[Path | None, typer.Option(help='JSONL of {"id", "question"}: batch mode.')] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Batch answers file (default stdout).")] = None,
) -> None:
    """Answer a question from the knowledge base, with citations, or say it cannot."""
    from pilotfish.retrievers.corpus import parse_filters

    _quiet_libraries()
    try:
        if (question is None) == (questions is None):
            raise QueryError("give either a QUESTION or --questions FILE.jsonl")
        if question is not None and not question.strip():
            raise QueryError("empty question: ask something")
        parsed = parse_filters(filters or [])
        pipeline = _open_pipeline(kb, db, llm, pipeline_name, mode=mode, top_k=k, rerank=rerank, style=style,
                                  max_tokens=max_tokens)
        if questions is not None:
            _ask_batch(pipeline, questions, output, parsed)
            return
        assert question is not None
        if stream and not as_json:
            answer = _print_stream(pipeline.stream(question, filters=parsed))
        else:
            answer = pipeline.run(question, filters=parsed)
    except PilotfishError as e:
        fail(str(e))
    assert answer is not None
    if as_json:
        out.print_json(json.dumps(answer.to_dict()))
        return
    if not stream:
        out.print(answer.text, highlight=False, soft_wrap=True)
    _print_sources(answer)


@app.command()
def chat(
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    session: Annotated[str, typer.Option(help="Conversation name; the same name resumes it.")] = "default",
    llm: Annotated[str, typer.Option(help="Registry model, openai:MODEL, .gguf path or pilotfish.toml name.",
                                     envvar="PILOTFISH_LLM")] = "qwen2.5-0.5b",
    mode: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "hybrid",
    k: Annotated[int, typer.Option("-k", "--top-k", help="Evidence passages in the prompt.")] = 5,
    max_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 256,
) -> None:
    """A terminal chatbot over the knowledge base; type /exit (or Ctrl-D) to leave."""
    from pilotfish.agents.chat import ChatSession

    _quiet_libraries()
    try:
        pipeline = _open_pipeline(kb, db, llm, "basic", mode=mode, top_k=k, max_tokens=max_tokens)
        conversation = ChatSession.open(pipeline, name=session)
    except PilotfishError as e:
        fail(str(e))
    turns = len(conversation.history) // 2
    out.print(f"[bold]pilotfish chat[/] - session '{session}'"
              + (f", resuming after {turns} turns" if turns else "") + ". /exit to leave.", soft_wrap=True)
    while True:
        try:
            question = input("you> ").strip()
        except EOFError:
            break
        if question in ("/exit", "/quit"):
            break
        if not question:
            continue
        try:
            out.print("pilotfish> ", end="")
            _print_sources(_print_stream(conversation.stream(question)))
            total = conversation.usage
            out.print(f"[dim]session so far: {total.calls} LLM calls, {total.total_tokens} tokens, "
                      f"{total.seconds:.1f}s in the LLM, cost ${total.cost:.4f}[/]", soft_wrap=True)
        except PilotfishError as e:
            err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)


def _open_pipeline(kb: Path, db: str | None, llm: str | None, pipeline: str, **options: Any) -> Any:
    """The answer pipeline over a knowledge base that holds documents, answering with `pipeline`'s LLM(s)."""
    from pilotfish.agents.graph import AnswerPipeline
    from pilotfish.agents.pipelines import pipeline_options
    from pilotfish.knowledge.base import KnowledgeBase

    base = KnowledgeBase.open(kb, db=db)
    if base.store.counts()["documents"] == 0:
        raise QueryError(f"{kb} holds no documents yet: add some with `pilotfish ingest PATH --kb {kb}`")
    return AnswerPipeline(kb=base, **(options | pipeline_options(pipeline, llm)))  # a pipeline file's settings win


def _print_stream(items: Any) -> Any:
    """Print streamed answer text as it comes; return the finished Answer that ends the stream."""
    answer = None
    for item in items:
        if isinstance(item, str):
            out.print(item, end="", highlight=False, soft_wrap=True)
        else:
            answer = item
    out.print()
    return answer


def _print_sources(answer: Any) -> None:
    if answer.quote:
        where = (f"from [{answer.quote['passage']}]" if answer.quote["found"]
                 else "[yellow]not found word for word in the evidence[/]")
        out.print(f'[bold]Quote[/] {where}: "{answer.quote["text"]}"', highlight=False, soft_wrap=True)
    if answer.citations:
        out.print("[bold]Sources[/]")
        for c in answer.citations:
            where = f"{c.doc_id} [dim]({c.source})[/]" if c.known else "[yellow]unknown: no such evidence[/]"
            if c.attributed:
                where += " [dim](matched by the embedding model; the LLM gave no citation)[/]"
            out.print(f"  [{c.marker}] {where}", highlight=False, soft_wrap=True)
    elif answer.answered:
        out.print("[yellow]The model cited no sources.[/]")
    u = answer.usage
    out.print(f"[dim]{answer.model}: {u.prompt_tokens} tokens in, {u.completion_tokens} out, "
              f"{answer.seconds:.1f}s, cost ${u.cost:.4f}[/]", soft_wrap=True)
    if answer.verification is not None:
        _print_verification(answer.verification)
    print_steering(answer)
    route = next((s.outputs["route"] for s in answer.trace if s.outputs.get("route")), None)
    if route and "steps" not in route:  # a router chose the model before generation
        out.print(f"[dim]router ({route['router']}): sent to {route['model']}: {route['reason']}[/]",
                  soft_wrap=True, highlight=False)
    elif route:
        reasons = "; ".join(f"{s['model']}: {s['reason']}" for s in route["steps"])
        saved = route["largest_model_cost_estimate"] - route["cost"]
        out.print(f"[dim]cascade: answered by {route['answered_by']} after {route['escalations']} escalation(s) "
                  f"({reasons}); cost ${route['cost']:.4f} against ~${route['largest_model_cost_estimate']:.4f} "
                  f"for the largest model alone (saved ${saved:.4f})[/]", soft_wrap=True, highlight=False)


def _print_verification(verification: dict[str, Any]) -> None:
    from pilotfish.cli_check import LABEL_STYLE

    out.print(f"[bold]Checked against the evidence:[/] {verification['label']} ({verification.get('did', '')})",
              highlight=False, soft_wrap=True)
    for claim in verification["claims"]:
        style = LABEL_STYLE.get(claim["label"], "white")
        out.print(f"  [{style}]{claim['label']:>12}[/] {claim['supported']:.2f}  {claim['claim']}", highlight=False,
                  soft_wrap=True)


def _ask_batch(pipeline: Any, path: Path, output: Path | None, filters: dict[str, list[str]]) -> None:
    records = _read_jsonl_records(path, "question")
    lines = []
    for record in records:
        a = pipeline.run(record["question"], filters=filters)
        lines.append(json.dumps({"id": record["id"], "answer": a.text, "answered": a.answered,
                                 "citations": [{"doc_id": c.doc_id, "chunk_id": c.chunk_id} for c in a.citations
                                               if c.known],
                                 "usage": a.usage.to_dict(), "seconds": round(a.seconds, 4)}
                                | ({"verification": a.verification} if a.verification is not None else {})
                                | ({"quote": a.quote} if a.quote is not None else {})))
    _write_lines(lines, output)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except PilotfishError as e:  # anything a command did not catch itself
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted", 130)


from pilotfish.cli_check import check  # noqa: E402  (its commands use the helpers above)
from pilotfish.cli_eval import eval_app  # noqa: E402
from pilotfish.cli_pipelines import pipelines_app, print_steering  # noqa: E402
from pilotfish.cli_route import route_app  # noqa: E402
from pilotfish.cli_train import train_app  # noqa: E402

app.command()(check)

app.add_typer(route_app, name="route")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.add_typer(pipelines_app, name="pipelines")

if __name__ == "__main__":
    main()
