"""`build(spec, kb)`: the one place a pipeline spec becomes components and an `AnswerPipeline`.

Every LLM the spec names (answering models, a cascade's models, a router's, the rewriter's, the
decomposer's, the pseudo-labeller's and the verifier's judge) is resolved here once per name, through
`llms` when given (ready instances by name, e.g. fakes in tests) and otherwise `resolve_llm`, and then
passed through `wrap_llm` (the evaluation cache wraps every one of them this way). With `[log] enabled`
(or `log=True`, the --log flag) each of them is first wrapped in a `LoggingLLM` whose calls, and the
pipeline's answers, go to an `AnswerLog` in the knowledge base's database.

>>> from pilotfish.llms.fake import FakeLLM
>>> seen = []
>>> spec = {"answer": {"llm": "a"}, "rewrite": {"llm": "b"}, "decompose": {"llm": "c"}}
>>> pipeline = build(spec, None, llms={n: FakeLLM(replies=["x"], name=n) for n in "abc"},
...                  wrap_llm=lambda x: seen.append(x.name) or x)
>>> seen
['a', 'b', 'c']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pilotfish.answer.graph import AnswerPipeline
from pilotfish.answer.nodes import Parts, cheapest_llm
from pilotfish.answer.spec import (
    CascadeSpec,
    DemosSpec,
    GraphSpec,
    LogSpec,
    PipelineSpec,
    RouterSpec,
    TablesSpec,
    VerifySpec,
)
from pilotfish.errors import ConfigError
from pilotfish.llms.base import LLM
from pilotfish.prompts.builder import PromptBuilder

STYLES = ("prose", "short", "quoted")
QUOTED_MIN_TOKENS = 128  # a 300-character quote is about 75 tokens, plus the answer and the JSON


def build(spec: PipelineSpec | str | Path | Mapping[str, Any] = "basic", kb: Any = None, *, llm: str | None = None,
          llms: Mapping[str, LLM] | None = None, wrap_llm: Callable[[LLM], LLM] | None = None,
          components: Mapping[str, Any] | None = None, tables: Any = None, graph: Any = None,
          log: bool | None = None) -> AnswerPipeline:
    """An `AnswerPipeline` over `kb` from a spec (a `PipelineSpec`, a built-in name, a `.toml` path or a dict).

    `llm` is the --llm option (the `[answer]` model). `components` may hand in a ready `router` or
    `verifier` for the spec's [router] or [verify] table (a router trained in memory, a scripted checker);
    everything else is built from the spec. `tables` (a `TableCatalog`, e.g. `TableCatalog.for_files([path])`)
    gives the table nodes their tables instead of the knowledge base's, and `graph` (a `KnowledgeGraph`) the graph
    nodes their graph. `log` (the --log / --no-log flags) overrides the spec's `[log] enabled`. Models load
    lazily: building runs nothing."""
    spec = PipelineSpec.parse(spec, llm=llm)
    if log is not None and log != spec.log.enabled:
        spec = replace(spec, log=replace(spec.log, enabled=log))
    answer_log = _answer_log(spec.log, spec.name, kb)
    given = dict(components or {})
    unknown = sorted(set(given) - {"router", "verifier"})
    if unknown:
        raise ConfigError(f"build: unknown component {', '.join(unknown)}; give router or verifier")
    resolve = _Resolver(llms or {}, wrap_llm,
                        answer_log.record_call if answer_log is not None and spec.log.llm_calls else None)
    a, r = spec.answer, spec.retrieve
    if a.style not in STYLES:
        raise ConfigError(f"unknown answer style {a.style!r}: use one of {', '.join(STYLES)}")
    if r.top_k < 1 or a.max_tokens < 1:
        raise ConfigError(f"need top_k >= 1 and max_tokens >= 1, got {r.top_k}, {a.max_tokens}")
    if a.style == "quoted" and a.max_tokens < QUOTED_MIN_TOKENS:
        raise ConfigError(f"the quoted style writes a sentence before the answer: give max_tokens >= "
                          f"{QUOTED_MIN_TOKENS}, got {a.max_tokens}")
    if r.rerank_depth < 1:
        raise ConfigError(f"rerank_depth must be >= 1, got {r.rerank_depth}")
    answering: dict[str, Any] = {}
    if spec.router is not None:
        answering = _routed(spec.router, given.get("router"), resolve)
    elif spec.cascade is not None:
        answering["llm"] = _cascade(spec.cascade, resolve)
    else:
        answering["llm"] = resolve(a.llm)
    cheapest = cheapest_llm(answering.get("llm"), answering.get("router"), answering.get("llms", {}))
    order = a.passage_order or getattr(cheapest, "passage_order", "best_first")
    builder = (PromptBuilder(system_template=f"answer_{a.style}_system", user_template="answer_short_user",
                             order=order) if a.style != "prose" else PromptBuilder(order=order))
    parts: dict[str, Any] = {}
    if spec.rewrite is not None:
        from pilotfish.prompts.rewrite import QueryRewriter

        s = spec.rewrite
        parts["rewriter"] = QueryRewriter(resolve(s.llm) if s.llm else cheapest, mode=s.mode, n=s.n)
    if spec.decompose is not None:
        from pilotfish.prompts.decompose import Decomposer

        d = spec.decompose
        parts["decomposer"] = Decomposer(resolve(d.llm) if d.llm else cheapest, gate=d.gate, max_steps=d.max_steps,
                                         answer_split_steps=d.answer_split_steps)
    if spec.demos is not None:
        parts["demos"] = _demos(spec.demos, resolve)
    if r.compress is not None:
        from pilotfish.retrievers.compress import SentenceCompressor

        parts["compressor"] = SentenceCompressor(keep=r.compress)
    if spec.verify is not None:
        parts["verifier"] = given.get("verifier") or _verifier(spec.verify, resolve)
    if spec.tables is not None:
        parts |= _table_parts(spec.tables, resolve(spec.tables.llm) if spec.tables.llm else cheapest)
    elif tables is not None:
        raise ConfigError("tables were given but the pipeline has no [tables] table; add one (e.g. tables = {})")
    if spec.graph is not None:
        parts |= _graph_parts(spec.graph)
    elif graph is not None:
        raise ConfigError("a graph was given but the pipeline has no [graph] table; add one (e.g. graph = {})")
    return AnswerPipeline(Parts(kb=kb, spec=spec, builder=builder, tables=tables, graph=graph, **answering, **parts),
                          log=answer_log)


def _answer_log(spec: LogSpec, pipeline: str, kb: Any) -> Any:
    """The `AnswerLog` of an enabled `[log]` table, writing to the knowledge base's database; None when off."""
    if not spec.enabled:
        return None
    store = getattr(kb, "store", None)
    if store is None:
        raise ConfigError("the answer log ([log] enabled, or --log) is kept in a knowledge base's database, and this "
                          "pipeline has no knowledge base (e.g. ask --table): turn the log off (--no-log)")
    from pilotfish.knowledge.answer_log import AnswerLog

    return AnswerLog(store, pipeline=pipeline, llm_calls=spec.llm_calls, answers=spec.answers,
                     retention_days=spec.retention_days, max_chars=spec.max_chars)


def _graph_parts(spec: GraphSpec) -> dict[str, Any]:
    """The entity linker, path retriever and triple evidence of the graph nodes (models load lazily)."""
    from pilotfish.graphs.evidence import GraphEvidence
    from pilotfish.graphs.linker import EntityLinker
    from pilotfish.graphs.paths import PathRetriever
    from pilotfish.graphs.scorers import load_scorer

    scorer = load_scorer(spec.scorer)  # a trained scorer's folder is read now, not at the first question
    return {"entity_linker": EntityLinker(min_score=spec.min_link),
            "path_retriever": PathRetriever(scorer=scorer, hops=spec.hops, beam=spec.beam,
                                            max_fanout=spec.max_fanout, evidence=spec.evidence),
            "graph_evidence": GraphEvidence()}


def _table_parts(spec: TablesSpec, llm: LLM) -> dict[str, Any]:
    """The linker, SQL writer and row evidence of the table nodes (sharing one linker and its index)."""
    from pilotfish.tables.evidence import TableEvidence
    from pilotfish.tables.linker import TableLinker
    from pilotfish.tables.sql import SQLGenerator

    linker = TableLinker(depth=spec.depth)
    demos = None
    if spec.demos is not None:
        from pilotfish.tables.demos import SQLDemoPool

        demos = SQLDemoPool.from_file(spec.demos)
    return {"linker": linker,
            "sql_writer": SQLGenerator(llm=llm, linker=linker, samples=spec.samples, repair=spec.repair,
                                       row_limit=spec.row_limit, time_limit=spec.time_limit, demos=demos,
                                       demo_k=spec.demo_k),
            "table_evidence": TableEvidence(rows=spec.evidence_rows, linker=linker)}


class _Resolver:
    """LLM names -> instances, once per name: given instances first, else `resolve_llm`; then a `LoggingLLM`
    when calls are logged to `sink`, then `wrap` (so an evaluation cache's hits are not logged as calls)."""

    def __init__(self, given: Mapping[str, LLM], wrap: Callable[[LLM], LLM] | None,
                 sink: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.given, self.wrap, self.sink, self.made = given, wrap, sink, {}  # type: dict[str, LLM]

    def __call__(self, name: str) -> LLM:
        if name not in self.made:
            if name in self.given:
                found = self.given[name]
            else:
                from pilotfish.llms import resolve_llm

                found = resolve_llm(name)
            if self.sink is not None:
                from pilotfish.llms.logged import LoggingLLM

                found = LoggingLLM(found, self.sink)
            self.made[name] = self.wrap(found) if self.wrap is not None else found
        return self.made[name]


def _cascade(spec: CascadeSpec, resolve: _Resolver) -> LLM:
    from pilotfish.routing.cascade import Cascade
    from pilotfish.routing.signals import make_signal

    options = {k: v for k, v in (("samples", spec.samples), ("temperature", spec.temperature)) if v is not None}
    return Cascade([resolve(m) for m in spec.models], signal=make_signal(spec.signal, **options),
                   thresholds=spec.thresholds, max_cost=spec.max_cost)


def _routed(spec: RouterSpec, router: Any, resolve: _Resolver) -> dict[str, Any]:
    if router is None:
        from pilotfish.routing.load import load_router

        router = load_router(spec.path)
    missing = [m for m in router.models if m not in spec.llms]
    extra = [m for m in spec.llms if m not in router.models]
    if missing or extra:
        wrong = f"lacks {', '.join(missing)}" if missing else f"names {', '.join(extra)}, which it does not route to"
        trained = ", ".join(router.models)
        raise ConfigError(f"the router at {spec.path} was trained for {trained}; [router] llms {wrong}")
    return {"router": router, "llms": {m: resolve(spec.llms[m]) for m in router.models}}


def _demos(spec: DemosSpec, resolve: _Resolver) -> Any:
    """A `DemoRetriever` over the pool file; unlabelled items are pseudo-labelled when `pseudo_label` is set."""
    from pilotfish.prompts.demos import DemoRetriever, PseudoLabeler, load_pool

    pool = Path(spec.pool)
    if not pool.is_file():
        raise ConfigError(f"demonstration pool {pool} does not exist")
    labelled, unlabelled = load_pool(pool)
    if spec.pseudo_label is not None and unlabelled:
        labeler = PseudoLabeler(method=spec.pseudo_label, min_confidence=spec.min_confidence,
                                llm=resolve(spec.llm or "qwen2.5-0.5b") if spec.pseudo_label == "llm" else None)
        labelled += labeler.label(unlabelled, labelled)
    return DemoRetriever(labelled, k=spec.k, diversity=spec.diversity)


def _verifier(spec: VerifySpec, resolve: _Resolver) -> Any:
    """An `AnswerVerifier`; the checker's thresholds default to those shipped with the NLI model."""
    from pilotfish.verification.checker import NLIGroundednessChecker
    from pilotfish.verification.repair import AnswerVerifier

    options: dict[str, Any] = {k: v for k, v in (("threshold", spec.threshold), ("contradiction", spec.contradiction),
                                                  ("model", spec.model)) if v is not None}
    if spec.band is not None:
        options["band"] = tuple(spec.band)
    if spec.judge is not None:
        options["llm"] = resolve(spec.judge)
    checker = (NLIGroundednessChecker.from_thresholds(spec.thresholds, **options) if spec.thresholds is not None
               else NLIGroundednessChecker.default(**options))
    return AnswerVerifier(checker, action=spec.action, retries=spec.retries, basis=spec.basis,
                          abstain_below=spec.abstain_below, when=spec.when)
