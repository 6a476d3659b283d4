"""`pilotfish eval`: run pipelines over a dataset, list the stored runs, compare two of them.

    pilotfish eval run --dataset hotpot.jsonl.gz --pipeline basic --pipeline verified --limit 50
    pilotfish eval list
    pilotfish eval compare RUN_A RUN_B
    pilotfish eval synth --kb .pilotfish -n 50 --out synth.jsonl     # a test set written from your documents

Runs are stored in OUT/runs.db (`eval run --out OUT`, default ./.pilotfish-eval). Every folder `eval run`
writes to is recorded in one user-level file, PILOTFISH_HOME/eval-folders.txt (default
~/.cache/pilotfish), so `eval list`, `report` and `compare` find its runs from any directory without
--out; folders that no longer hold a runs.db are dropped from it. The environment variable
PILOTFISH_EVAL_REGISTRY names another file to use instead (a test suite, a CI job or a sandbox keeps its
folders out of the user's list this way). A run store given as --db URL is not recorded (the URL may hold
a password): give the same --db to list it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from pilotfish.cli.common import BUILTIN_PIPELINES, DbOpt, _quiet_libraries, err, fail, out, print_table
from pilotfish.cli.ingest import RAY_HELP, RAY_WORKERS_HELP, check_ray
from pilotfish.errors import ConfigError, PilotfishError

eval_app = typer.Typer(help="Evaluate answer pipelines on your data; runs are stored and comparable. `eval list`, "
                            "`report` and `compare` look in ./.pilotfish-eval and in every folder an `eval run "
                            "--out` wrote to.", no_args_is_help=True)
EVAL_DIR = Path(".pilotfish-eval")
REGISTRY = "eval-folders.txt"  # under PILOTFISH_HOME: the folders `eval run --out` wrote to, one a line
REGISTRY_ENV = "PILOTFISH_EVAL_REGISTRY"  # the registry file's path, when not PILOTFISH_HOME/eval-folders.txt
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for the run store (runs.db), the LLM call cache and "
                                                    "built KBs; recorded, so that `eval list`, `report` and "
                                                    "`compare` find its runs without --out.")]
FindOpt = Annotated[Path | None, typer.Option("--out", help="Only the runs in this `eval run --out` folder "
                                                           "(default: ./.pilotfish-eval and every folder an `eval "
                                                           f"run --out` wrote to, as recorded in {REGISTRY} under "
                                                           "PILOTFISH_HOME, default ~/.cache/pilotfish, or in the "
                                                           f"file ${REGISTRY_ENV} names).")]
RunDbOpt = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL of the run store (default: SQLite "
                                                           "runs.db inside --out). Runs stored this way are found "
                                                           "with the same --db only.", envvar="PILOTFISH_DB")]
SHOWN = ("em", "f1", "answer_similarity", "recall@5", "ndcg@5", "mrr@5", "citation_precision", "citation_recall",
         "groundedness", "answered", "errors", "prompt_tokens", "completion_tokens", "cost", "p50_seconds",
         "p95_seconds")
LISTED = ("f1", "em", "recall@5", "ndcg@5", "mrr@5")  # the scores `eval list` shows beside each run


def _store(output: Path, db: str | None) -> Any:
    """The run store: the --db database, else OUT/runs.db (created with its folder)."""
    from pilotfish.evaluation.store import EvalStore

    if db is not None:
        return EvalStore(db)
    output.mkdir(parents=True, exist_ok=True)
    return EvalStore(f"sqlite:///{output / 'runs.db'}")


def _registry() -> Path:
    """The registry file: $PILOTFISH_EVAL_REGISTRY when set, else PILOTFISH_HOME/eval-folders.txt."""
    from pilotfish.models.cache import model_home

    named = os.environ.get(REGISTRY_ENV, "").strip()
    return Path(named).expanduser() if named else model_home() / REGISTRY


def _recorded() -> list[Path]:
    """The folders recorded by earlier `eval run`s, oldest first (missing ones included)."""
    path = _registry()
    try:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    except OSError as e:
        err.print(f"[yellow]warning:[/] cannot read {path} ({e}); give --out to find runs", highlight=False)
        return []
    return [Path(line) for line in lines if line.strip()]


def _remember(folder: Path) -> None:
    """Record `folder` (absolute) in the registry, dropping folders that no longer hold a runs.db."""
    from pilotfish.retrievers.corpus import write_atomic

    folder, path = folder.resolve(), _registry()
    kept = [f for f in dict.fromkeys(_recorded()) if f != folder and (f / "runs.db").exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, "".join(f"{f}\n" for f in (*kept, folder)))
    except OSError as e:  # the run itself is fine: only finding it without --out is lost
        err.print(f"[yellow]warning:[/] cannot record {folder} in {path} ({e}); list its runs with "
                  f"`pilotfish eval list --out {folder}`", highlight=False)


def _stores(output: Path | None, db: str | None) -> list[tuple[str | None, Any]]:
    """(folder, run store) for every store to look in: --db alone, --out alone, or else ./.pilotfish-eval and
    every recorded folder that still holds a runs.db. ConfigError when there is none."""
    if db is not None:
        return [(None, _store(EVAL_DIR, db))]
    if output is not None:
        if not (output / "runs.db").exists():
            raise ConfigError(f"no evaluation runs in {output}: start one with `pilotfish eval run --out {output}`")
        return [(str(output), _store(output, None))]
    folders: dict[Path, Path] = {}  # resolved -> as shown
    for folder in (EVAL_DIR, *_recorded()):
        if (folder / "runs.db").exists():
            folders.setdefault(folder.resolve(), folder)
    if not folders:
        raise ConfigError(f"no evaluation runs in ./{EVAL_DIR} or in any folder an `eval run --out` wrote to: "
                          "start one with `pilotfish eval run`, or give --out DIR or --db URL")
    return [(str(folder), _store(folder, None)) for folder in folders.values()]


def _find_run(stores: list[tuple[str | None, Any]], name: str) -> tuple[Any, dict[str, Any]]:
    """(store, run) of the one run named `name` in `stores`; ConfigError when none or several hold it."""
    if len(stores) == 1:
        store = stores[0][1]
        return store, store.run(name)  # its error lists the runs there
    found = [(folder, store) for folder, store in stores if any(r["name"] == name for r in store.list_runs())]
    if not found:
        raise ConfigError(f"no evaluation run named {name!r} in {', '.join(str(f) for f, _ in stores)}: "
                          "see `pilotfish eval list`")
    if len(found) > 1:
        raise ConfigError(f"runs named {name!r} are in {' and '.join(str(f) for f, _ in found)}: choose the "
                          "folder with --out")
    store = found[0][1]
    return store, store.run(name)


@eval_app.command("run")
def eval_run(
    dataset: Annotated[Path, typer.Option(help="JSONL of questions and answers, a HotpotQA file or a BEIR folder.")],
    pipelines: Annotated[list[str], typer.Option("--pipeline", help=f"{BUILTIN_PIPELINES} or a pipeline .toml "
                                                                     "file; repeat to compare several.")],
    kb: Annotated[Path | None, typer.Option("--kb", help="Knowledge base to answer from (default: one built from "
                                                         "the dataset's corpus).")] = None,
    llm: Annotated[str | None, typer.Option(help="LLM for basic/verified pipelines (default qwen2.5-1.5b).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N items.")] = None,
    name: Annotated[str | None, typer.Option(help="Run name (one pipeline); an unfinished run of this name "
                                                  "resumes.")] = None,
    style: Annotated[str, typer.Option(help="prose, short or quoted answers.")] = "short",
    k: Annotated[int, typer.Option("-k", "--top-k", help="Evidence passages per question.")] = 5,
    rerank: Annotated[bool, typer.Option("--rerank", help="Rerank evidence with the cross-encoder.")] = False,
    groundedness: Annotated[bool, typer.Option("--groundedness", help="Also score NLI groundedness.")] = False,
    similarity: Annotated[bool, typer.Option("--similarity", help="Also score answer similarity to the gold "
                                                                  "answers (MiniLM cosine).")] = False,
    output: OutOpt = Path(".pilotfish-eval"),
    db: RunDbOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not reuse or store LLM calls and searches.")] = False,
    concurrency: Annotated[int, typer.Option(help="Questions answered at once (for API LLMs).")] = 1,
    ray: Annotated[str | None, typer.Option("--ray", metavar="auto|ADDRESS", help=RAY_HELP)] = None,
    ray_workers: Annotated[int | None, typer.Option(min=1, help=RAY_WORKERS_HELP)] = None,
) -> None:
    """Answer every question with each pipeline, score and store the answers, print a summary."""
    from rich.progress import Progress

    from pilotfish.answer import PipelineSpec, build
    from pilotfish.evaluation.datasets import load_dataset
    from pilotfish.evaluation.runner import DEFAULT_METRICS, evaluate

    _quiet_libraries()
    try:
        if name is not None and len(pipelines) > 1:
            raise ConfigError("--name names one run: give one --pipeline with it")
        check_ray(ray, ray_workers)  # before anything is built: without Ray installed, say how to install it
        data = load_dataset(dataset)
        output.mkdir(parents=True, exist_ok=True)  # the caches and built KBs live here even with --db
        store = _store(output, db)
        if db is None:
            _remember(output)
        base = _knowledge_base(data, kb, output)
        kb_folder = str(base.directory.resolve())
        if not no_cache:  # searches are cached too, so a re-run repeats neither the LLM nor retrieval
            from pilotfish.evaluation.llm_cache import CachedKB

            base = CachedKB(base, output / "search-cache.sqlite")
        metrics = (*DEFAULT_METRICS, *(["groundedness"] if groundedness else []),
                   *(["similarity"] if similarity else []))
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        summaries = {}
        defaults = {"retrieve": {"top_k": k, "rerank": rerank},
                    "answer": {"style": style, "max_tokens": 64 if style == "short" else 256}}
        specs = [PipelineSpec.parse(spec, llm=llm, defaults=defaults) for spec in pipelines]  # all checked first
        for spec, parsed in zip(pipelines, specs):
            # every LLM the spec names goes behind the disk cache, so a re-run makes no LLM call
            cache = None if no_cache else output / "llm-cache.sqlite"
            pipeline: Any
            workers = concurrency
            if ray is None:
                pipeline = build(parsed, base, wrap_llm=None if cache is None else _cached(cache))
            else:  # each Ray worker builds the same pipeline once, over the same KB and caches
                from pilotfish.evaluation.ray_pipeline import RayPipeline, eval_pipeline

                pipeline = RayPipeline(eval_pipeline(parsed, kb_folder, output.resolve(), cache=not no_cache),
                                       address=ray, workers=ray_workers)
                workers = pipeline.workers  # one question in flight per worker
            run_name = name or f"{data.name}:{Path(spec).stem}:{stamp}"
            total = min(limit or len(data), len(data))
            with Progress(console=err, transient=True) as bar:
                task = bar.add_task(f"{run_name}", total=total)
                try:
                    result = evaluate(pipeline, data, name=run_name, store=store, metrics=metrics, limit=limit,
                                      pipeline_label=spec, concurrency=workers,
                                      progress=lambda n, _t, task=task: bar.update(task, completed=n))
                except KeyboardInterrupt:
                    fail(f"interrupted; the answered items are stored: resume with --name '{run_name}'", 130)
                finally:
                    if ray is not None:
                        pipeline.close()
            summaries[run_name] = result.summary() | {"wall_seconds": round(result.seconds, 1)}
    except PilotfishError as e:
        fail(str(e))
    _print_summaries(summaries)
    where, again = (output / "runs.db", "") if db is None else ("the --db database", " with the same --db")
    err.print(f"stored in {where}; see them with `pilotfish eval list` or `pilotfish eval report "
              f"{shlex.join(summaries)}`{again}", highlight=False, soft_wrap=True)


def _knowledge_base(data: Any, kb: Path | None, output: Path) -> Any:
    """The given KB, or one built (once) from the dataset's corpus under OUT/kb-NAME."""
    from pilotfish.knowledge.base import KnowledgeBase

    if kb is not None:
        return KnowledgeBase.open(kb)
    if not data.corpus:
        raise ConfigError(f"{data.name} has no corpus to build a knowledge base from: give --kb DIR")
    folder = output / f"kb-{data.name}"
    base = KnowledgeBase.open(folder, create=True)
    if base.store.counts()["documents"] == 0:
        corpus = output / f"corpus-{data.name}.jsonl"
        corpus.write_text("".join(json.dumps({"_id": d["doc_id"], "title": d.get("title", ""), "text": d["text"]})
                                  + "\n" for d in data.corpus), encoding="utf-8")
        err.print(f"building a knowledge base of {len(data.corpus)} documents in {folder}")
        base.ingest([corpus])
    return base


def _cached(path: Path) -> Any:
    """A `wrap_llm` for `build` that puts each LLM behind the disk cache at `path`."""
    from pilotfish.evaluation.llm_cache import CachedLLM

    return lambda llm: CachedLLM(llm, path)


def _print_summaries(summaries: dict[str, dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table("metric", *summaries)
    for metric in (*SHOWN, "items", "wall_seconds"):
        values = [s.get(metric) for s in summaries.values()]
        if any(v is not None for v in values):
            table.add_row(metric, *("-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
                                    for v in values))
    print_table(table)


@eval_app.command("list")
def eval_list(output: FindOpt = None, db: RunDbOpt = None,
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON (each run with its \"folder\").")
                                 ] = False) -> None:
    """The stored runs, folder by folder, newest last, with their main scores."""
    from rich.markup import escape

    try:
        found = [(folder, store.list_runs()) for folder, store in _stores(output, db)]
    except PilotfishError as e:
        fail(str(e))
    if as_json:
        out.print_json(json.dumps([run | {"folder": folder} for folder, runs in found for run in runs]))
        return
    for folder, runs in found:
        out.print(f"[bold]{escape(folder or 'the --db database')}[/]: {len(runs)} run{'s' * (len(runs) != 1)}",
                  highlight=False, soft_wrap=True)
        for run in runs:
            s = run["summary"]
            scores = ", ".join(f"{m} {s[m]:.3f}" for m in LISTED if m in s)
            out.print(f"  {escape(run['name'])}  [dim]{run['status']}, {escape(run['pipeline'])} on "
                      f"{escape(run['dataset'])}, {s.get('items', '?')} items[/]  {scores}", highlight=False,
                      soft_wrap=True)


@eval_app.command("compare")
def eval_compare(run_a: Annotated[str, typer.Argument(help="The baseline run.")],
                 run_b: Annotated[str, typer.Argument(help="The run to compare with it.")],
                 output: FindOpt = None, db: RunDbOpt = None,
                 as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Per-metric differences over the items both runs share, with paired bootstrap p-values."""
    from pilotfish.evaluation.compare import compare_runs

    try:
        stores = _stores(output, db)
        (store_a, a), (store_b, b) = _find_run(stores, run_a), _find_run(stores, run_b)
        report = compare_runs(store_a.records(a["id"]), store_b.records(b["id"]))
    except PilotfishError as e:
        fail(str(e))
    if as_json:
        out.print_json(json.dumps(report))
        return
    out.print(f"{run_b} against {run_a}, {report['items']} shared items", markup=False, highlight=False,
              soft_wrap=True)
    for metric, row in report["metrics"].items():
        out.print(f"  {metric:>20}  {row['a']:.4f} -> {row['b']:.4f}  ({row['diff']:+.4f}, p = {row['p']:.3f})",
                  highlight=False, soft_wrap=True)
    for item in report["changed"]:
        out.print(f"  {item['id']}: f1 {item['a']:.2f} -> {item['b']:.2f}  {item['question'][:70]}", style="dim",
                  markup=False, highlight=False, soft_wrap=True)


@eval_app.command("report")
def eval_report(runs: Annotated[list[str], typer.Argument(help="One or more run names.")],
                html: Annotated[Path | None, typer.Option("--html",
                                                          help="Write a self-contained HTML report here.")] = None,
                markdown: Annotated[Path | None, typer.Option("--md", help="Write the markdown summary here.")] = None,
                output: FindOpt = None, db: RunDbOpt = None) -> None:
    """A markdown summary (printed, or --md) and an HTML report with plots (--html) of stored runs, which
    may come from different folders."""
    from pilotfish.evaluation.report import render_report

    try:
        stores = _stores(output, db)
        found = [_find_run(stores, name) for name in runs]
        text, page = render_report([(run, store.records(run["id"])) for store, run in found])
    except PilotfishError as e:
        fail(str(e))
    if markdown is not None:
        markdown.write_text(text, encoding="utf-8")
        err.print(f"wrote {markdown}")
    else:  # plain text, never wrapped: a pipe or file gets whole table rows
        typer.echo(text, nl=False)
    if html is not None:
        html.write_text(page, encoding="utf-8")
        err.print(f"wrote {html} ({len(page) // 1024} KB, images inline)")


@eval_app.command("synth")
def eval_synth(
    kb: Annotated[Path, typer.Option("--kb", help="Knowledge base whose chunks the questions are written from.")],
    n: Annotated[int, typer.Option("-n", help="Questions to keep.")],
    out_file: Annotated[Path, typer.Option("--out", help="JSONL file to write (an `eval run --dataset`).")],
    llm: Annotated[str, typer.Option(help="LLM that writes the questions.", envvar="PILOTFISH_LLM")] = "qwen2.5-0.5b",
    seed: Annotated[int, typer.Option(help="Seed of the chunk sample.")] = 0,
    min_score: Annotated[float, typer.Option(help="Least reranker logit of (question, source chunk).")] = 0.0,
    dedup: Annotated[float, typer.Option(help="Drop questions this cosine-similar to a kept one.")] = 0.9,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
    db: DbOpt = None,
) -> None:
    """Write a synthetic test set: the LLM asks questions of sampled chunks, small models filter them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pilotfish.evaluation.synth import QASynthesizer
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.llms import resolve_llm
    from pilotfish.retrievers.corpus import write_atomic

    _quiet_libraries()
    if n < 1:
        fail(f"-n must be at least 1 (the number of questions to keep), got {n}")
    if out_file.is_dir():
        fail(f"--out {out_file} is a folder; give a file name such as {out_file / 'synth.jsonl'}")
    if out_file.exists() and not force:
        fail(f"{out_file} already exists; choose another --out, or pass --force to overwrite it")
    try:
        synth = QASynthesizer(kb=KnowledgeBase.open(kb, db=db), llm=resolve_llm(llm), min_score=min_score,
                              dedup=dedup)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("kept (0 chunks tried)", total=n)
            result = synth.run(n, seed=seed, progress=lambda kept, tried: bar.update(
                task, completed=kept, description=f"kept ({tried} chunks tried)"))
    except PilotfishError as e:
        fail(str(e))
    _print_synth_report(result.report.to_dict())
    if not result.items:
        fail(f"no question passed the filters, so {out_file} was not written; try a larger --llm, "
             "a lower --min-score or another --seed")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_file, "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in result.items))
    if len(result.items) < n:
        err.print(f"[yellow]warning:[/] kept {len(result.items)} of the {n} questions asked for: the sampled chunks "
                  "ran out; try a larger --llm or lower --min-score", highlight=False)
    err.print(f"wrote {len(result.items)} question{'s' * (len(result.items) != 1)} to {out_file}; evaluate with "
              f"`pilotfish eval run --dataset {out_file} --kb {kb} --pipeline basic`", highlight=False)


def _print_synth_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    from pilotfish.evaluation.synth import DROP_REASONS

    table = Table("synthetic test set", "count", "")
    table.add_row("chunks eligible", str(report["eligible_chunks"]), "chunks long enough to ask about")
    table.add_row("chunks tried", str(report["tried"]), "one LLM call each")
    for reason, count in report["dropped"].items():
        table.add_row(f"dropped: {reason}", str(count), DROP_REASONS[reason])
    table.add_row("kept", str(report["kept"]), f"of {report['requested']} asked for")
    usage = report["usage"]
    table.add_row("LLM tokens", str(usage["total_tokens"]), f"{usage['seconds']:.1f} s in the LLM")
    table.add_row("wall seconds", f"{report['seconds']:.1f}", "")
    print_table(table)
