"""`pilotfish ask` and `pilotfish chat`: grounded answers from a knowledge base, with citations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pilotfish.answer.spec import DEFAULT_LLM
from pilotfish.cli.common import PIPELINE_HELP, DbOpt, KbOpt, _quiet_libraries, check_question_or_batch, err, fail, out
from pilotfish.cli.pipelines import print_steering
from pilotfish.cli.search import _read_jsonl_records, _write_lines
from pilotfish.errors import PilotfishError, QueryError

LogOpt = Annotated[bool | None, typer.Option(
    "--log/--no-log", help=escape("Record this run's answers and LLM calls in the knowledge base's answer log (or "
                                  "not), whatever the pipeline's [log] table says; see `pilotfish log`."))]
STYLE_HELP = ("prose (cited sentences), short (a few words, JSON-enforced) or quoted (short, with the evidence "
              "sentence it comes from).")


def ask(
    question: Annotated[str | None, typer.Argument(help="The question.")] = None,
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    llm: Annotated[str | None, typer.Option(help="Registry model, openai:MODEL, .gguf path or pilotfish.toml name "
                                                 f"(default {DEFAULT_LLM}).", envvar="PILOTFISH_LLM")] = None,
    pipeline_name: Annotated[str, typer.Option("--pipeline", help=PIPELINE_HELP)] = "basic",
    mode: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "hybrid",
    k: Annotated[int, typer.Option("-k", "--top-k", help="Evidence passages in the prompt.")] = 5,
    rerank: Annotated[bool, typer.Option("--rerank", help="Rerank evidence with the cross-encoder.")] = False,
    style: Annotated[str, typer.Option(help=STYLE_HELP)] = "prose",
    filters: Annotated[list[str] | None, typer.Option("--filter", help="key=value metadata filter.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 256,
    stream: Annotated[bool, typer.Option("--stream", help="Print the answer as it is written.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole Answer as JSON.")] = False,
    table: Annotated[Path | None, typer.Option(help="Answer over this CSV, TSV, XLSX or Parquet file alone "
                                                    "(no knowledge base needed).")] = None,
    questions: Annotated[Path | None, typer.Option(help='JSONL of {"id", "question"} (optional "table": FILE): '
                                                        'batch mode.')] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Batch answers file (default stdout).")] = None,
    log: LogOpt = None,
) -> None:
    """Answer a question from the knowledge base (its documents and tables), with citations, or say it cannot."""
    from pilotfish.retrievers.corpus import parse_filters

    _quiet_libraries()
    try:
        check_question_or_batch(question, questions)
        parsed = parse_filters(filters or [])
        defaults = {"retrieve": {"mode": mode, "top_k": k, "rerank": rerank},
                    "answer": {"style": style, "max_tokens": max_tokens}}
        if questions is not None:
            _ask_batch(_Pipelines(kb, db, llm, pipeline_name, defaults, table, log), questions, output, parsed)
            return
        pipeline = (open_table_pipeline(table, llm, pipeline_name, defaults, log=log) if table is not None
                    else open_pipeline(kb, db, llm, pipeline_name, defaults, log=log))
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


def chat(
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    session: Annotated[str, typer.Option(help="Conversation name; the same name resumes it.")] = "default",
    llm: Annotated[str | None, typer.Option(help="Registry model, openai:MODEL, .gguf path or pilotfish.toml name "
                                                 f"(default {DEFAULT_LLM}).", envvar="PILOTFISH_LLM")] = None,
    pipeline_name: Annotated[str, typer.Option("--pipeline", help=PIPELINE_HELP)] = "basic",
    mode: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "hybrid",
    k: Annotated[int, typer.Option("-k", "--top-k", help="Evidence passages in the prompt.")] = 5,
    style: Annotated[str, typer.Option(help=STYLE_HELP)] = "prose",
    max_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 256,
    log: LogOpt = None,
) -> None:
    """A terminal chatbot over the knowledge base; type /exit (or Ctrl-D) to leave."""
    from pilotfish.answer.chat import ChatSession

    _quiet_libraries()
    try:
        pipeline = open_pipeline(kb, db, llm, pipeline_name, {"retrieve": {"mode": mode, "top_k": k},
                                                              "answer": {"style": style, "max_tokens": max_tokens}},
                                 log=log)
        conversation = ChatSession.open(pipeline, name=session)
    except PilotfishError as e:
        fail(str(e))
    turns = len(conversation.history) // 2
    out.print(f"[bold]pilotfish chat[/] - session '{session}'"
              + (f", resuming after {turns} turns" if turns else "") + ". /exit to leave.", soft_wrap=True)
    while True:
        try:
            question = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):  # Ctrl-D or Ctrl-C: end the prompt's line, so the shell's starts afresh
            out.print()
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
            err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        except KeyboardInterrupt:  # Ctrl-C while the answer is written: end its line, then leave
            out.print()
            fail("interrupted", 130)


def open_pipeline(kb: Path, db: str | None, llm: str | None, pipeline: str,
                  defaults: dict[str, dict[str, Any]], llms: dict[str, Any] | None = None, *,
                  log: bool | None = None) -> Any:
    """`pipeline` (a name or a .toml file) built over a knowledge base that holds documents or triples; the command's
    options are defaults that a pipeline file's own settings override; `log` (--log/--no-log) overrides [log]."""
    from pilotfish.answer import PipelineSpec, build
    from pilotfish.knowledge.base import KnowledgeBase

    spec = PipelineSpec.parse(pipeline, llm=llm, defaults=defaults)  # a bad spec fails before the KB opens
    base = KnowledgeBase.open(kb, db=db)
    counts = base.store.counts()
    if counts["documents"] == 0 and counts["triples"] == 0:
        raise QueryError(f"{kb} holds no documents yet: add some with `pilotfish ingest PATH --kb {kb}`")
    return build(spec, base, llms=llms, log=log)


def open_table_pipeline(table: Path, llm: str | None, pipeline: str, defaults: dict[str, dict[str, Any]],
                        llms: dict[str, Any] | None = None, *, log: bool | None = None) -> Any:
    """`pipeline` over one table file, without a knowledge base (`ask --table FILE`)."""
    from pilotfish.answer import PipelineSpec, build
    from pilotfish.errors import TableError
    from pilotfish.tables.catalog import TableCatalog

    spec = PipelineSpec.parse(pipeline, llm=llm, defaults=defaults)
    if not table.is_file():
        raise TableError(f"no table file at {table}; give a CSV, TSV, XLSX or Parquet file")
    return build(spec, None, tables=TableCatalog.for_files([table]), llms=llms, log=log)


class _Pipelines:
    """The batch's pipelines: the knowledge base's, and one per table file a line names (one LLM for all)."""

    def __init__(self, kb: Path, db: str | None, llm: str | None, pipeline: str,
                 defaults: dict[str, dict[str, Any]], table: Path | None, log: bool | None = None) -> None:
        from pilotfish.answer import PipelineSpec
        from pilotfish.llms import resolve_llm

        self.args = (llm, pipeline, defaults)
        self.kb, self.db, self.table, self.log = kb, db, table, log
        self.llms = {n: resolve_llm(n) for n in PipelineSpec.parse(pipeline, llm=llm, defaults=defaults).llm_names}
        self.made: dict[str, Any] = {}

    def get(self, table: str | None) -> Any:
        key = table or (str(self.table) if self.table else "")
        if key not in self.made:
            llm, pipeline, defaults = self.args
            if key:
                self.made[key] = open_table_pipeline(Path(key), llm, pipeline, defaults, self.llms, log=self.log)
            else:
                self.made[key] = open_pipeline(self.kb, self.db, llm, pipeline, defaults, self.llms, log=self.log)
        return self.made[key]


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
    if answer.sql is not None:
        out.print(f"[dim]SQL: {escape(answer.sql)}[/]", highlight=False, soft_wrap=True)
    if answer.graph is not None:
        best = answer.graph["paths"][0]
        how = "answered from the graph, no LLM call" if answer.graph.get("direct") else "its triples are evidence"
        out.print(f"[dim]graph: {escape(best['entity'])} -> {' -> '.join(best['path'])} (score {best['score']:.2f}, "
                  f"{best['answer_count']} end entities); {how}[/]", highlight=False, soft_wrap=True)
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
    from pilotfish.cli.check import LABEL_STYLE

    out.print(f"[bold]Checked against the evidence:[/] {verification['label']} ({verification.get('did', '')})",
              highlight=False, soft_wrap=True)
    for claim in verification["claims"]:
        style = LABEL_STYLE.get(claim["label"], "white")
        out.print(f"  [{style}]{claim['label']:>12}[/] {claim['supported']:.2f}  {claim['claim']}", highlight=False,
                  soft_wrap=True)


def _ask_batch(pipelines: _Pipelines, path: Path, output: Path | None, filters: dict[str, list[str]]) -> None:
    records = _read_jsonl_records(path, "question", optional=("table",))
    lines = []
    for record in records:
        a = pipelines.get(record.get("table")).run(record["question"], filters=filters)
        lines.append(json.dumps({"id": record["id"], "answer": a.text, "answered": a.answered,
                                 "citations": [{"doc_id": c.doc_id, "chunk_id": c.chunk_id} for c in a.citations
                                               if c.known],
                                 "usage": a.usage.to_dict(), "seconds": round(a.seconds, 4)}
                                | ({"verification": a.verification} if a.verification is not None else {})
                                | ({"quote": a.quote} if a.quote is not None else {})
                                | ({"sql": a.sql, "rows": a.rows} if a.sql is not None else {})
                                | ({"graph": a.graph} if a.graph is not None else {})))
    _write_lines(lines, output)
