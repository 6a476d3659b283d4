"""`PipelineSpec`: what an answer pipeline is made of, parsed once from a built-in name, a TOML file or a dict.

Built-in: `basic` (the one LLM given), `multihop` (a rule gate sends multi-hop questions to the decomposer,
whose steps are searched and answered in turn), `cascade` (qwen2.5-0.5b first; self-consistency over four
samples escalates doubtful answers to qwen2.5-1.5b) and `verified` (the NLI checker drops unsupported
sentences). `pilotfish pipelines` lists them; `pilotfish pipelines show NAME` prints the graph.

A pipeline file is TOML. One table says who answers: `[answer]` (`llm = "qwen2.5-1.5b"`, or --llm; optional
`style`, `max_tokens`, `passage_order`, `min_similarity`, `temperature`), `[cascade]` or `[router]`:

    [cascade]
    models = ["qwen2.5-0.5b", "qwen2.5-1.5b"]   # cheapest first; any --llm spec works
    signal = "self-consistency"                  # or "self-verify", "logprob", "nli"
    thresholds = 0.75                            # one number, or one per model but the last
    max_cost = 0.01                              # optional per-question budget (USD)
    samples = 4                                  # self-consistency options

    [router]                                     # a trained router (`pilotfish route train`)
    path = "router/"
    llms = { small = "qwen2.5-0.5b", large = "openai:gpt-4o-mini" }

Optional tables add nodes to the graph (their `llm`, where they take one, defaults to the cheapest
answering model):

    [retrieve]   mode = "hybrid", top_k = 5, rerank = true, rerank_depth = 20, step_top_k = 3, compress = 6,
                 reranker = "ms-marco-l12" (or a trained reranker's name)
    [rewrite]    mode = "multi" (or "hyde", "standalone"), n = 3, llm = "qwen2.5-0.5b"
    [decompose]  gate = "rules" (or "always"), max_steps = 4, llm = "qwen2.5-0.5b", answer_split_steps = true
    [demos]      pool = "demos.jsonl", k = 2, diversity = 0.3, pseudo_label = "knn" (or "llm"), min_confidence = 0.6,
                 llm = "qwen2.5-0.5b" (the labelling LLM when pseudo_label = "llm")
    [verify]     action = "drop" (accept, drop, rewrite, retrieve, abstain), basis = "weakest" (or "best",
                 "mean": the claim support that decides abstain), abstain_below = 0.1, when = "always" (or
                 "single-hop": only questions the rule gate reads as one fact), thresholds = "checker.json" or
                 threshold = 0.5,
                 contradiction = 0.5, judge = "qwen2.5-1.5b", band = [0.1, 0.9], retries = 1
    [tables]     route = "auto" (or "tables", "text", "both"), depth = 3, sql = true, samples = 1, repair = true,
                 row_limit = 50, time_limit = 5.0, evidence_rows = 8, llm = "qwen2.5-1.5b" (the SQL writer),
                 demos = "sql_pool.jsonl" ({"question", "sql"} lines), demo_k = 2
    [graph]      hops = 3, beam = 8, scorer = "embedding" (or "cross-encoder", or a folder from `pilotfish train
                 paths`), direct = "auto" (true: answer from the graph, no LLM; false: the LLM reads the triples;
                 auto: directly when a trained scorer gives the best path direct_min = 0.5 or more), evidence = 20,
                 max_fanout = 500, min_link = 0.8

`[log]` turns on the answer log (off by default; `pilotfish log export` reads it):

    [log]        enabled = true, llm_calls = true, answers = true, retention_days = 30 (0: forever),
                 max_chars = 20000

and `[pipeline]` may give a `description` and spell the graph out. The node list, given or implied by the
tables, is what `build` wires, under the same names the trace and the mermaid drawing use:

    [pipeline]
    nodes = ["link_tables", "link_entities", "graph_paths", "rewrite", "decompose", "retrieve", "rerank", "sql",
             "table_evidence", "graph_evidence", "generate", "verify"]

Relative paths (a demonstration pool, a router folder, a thresholds file) are read from the file's folder.

>>> spec = PipelineSpec.parse("multihop", llm="smollm2-135m")
>>> spec.nodes, spec.answer.llm, spec.decompose.gate  # doctest: +NORMALIZE_WHITESPACE
(('link_tables', 'link_entities', 'graph_paths', 'decompose', 'retrieve', 'sql', 'table_evidence', 'graph_evidence',
  'generate', 'verify'), 'smollm2-135m', 'rules')
>>> PipelineSpec.parse(spec.to_dict()) == spec
True
>>> PipelineSpec.parse({"answer": {"top_k": 3}})  # doctest: +ELLIPSIS
Traceback (most recent call last):
pilotfish.errors.ConfigError: pipeline spec: unknown key top_k in [answer]; known: llm, max_tokens, ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilotfish.answer.spec_nodes import graph_nodes
from pilotfish.config import read_toml
from pilotfish.errors import ConfigError
from pilotfish.graphs.scorers import PATH_SCORERS

# qwen2.5-1.5b answered 1.75x as many HotpotQA questions as qwen2.5-0.5b (0.35 against 0.20) and all 20
# examples/docs questions (against 17), and cites, at about 2.2x the time (BENCHMARKS.md, Grounded answers).
DEFAULT_LLM = "qwen2.5-1.5b"
BUILTIN = {"basic": "one LLM answers from the retrieved evidence; when the question reads as one fact, the NLI model "
                    "checks the answer and it abstains when no claim is supported",
           "multihop": "a rule gate sends multi-hop questions to the decomposer; each step is searched and "
                       "answered in turn, and the answer reads every step's evidence",
           "cascade": "qwen2.5-0.5b answers; when four samples disagree the question goes to qwen2.5-1.5b",
           "verified": "one LLM answers; the NLI model checks every sentence against the evidence and drops "
                       "unsupported ones (abstains when none is left)"}
# Abstention after generation in the built-in basic and multihop pipelines: on single-fact questions a
# best claim support under 0.1 separated answers from near-domain misses (AUROC 0.97 on the examples/docs
# questions); on multi-hop ones it did not (0.64 on HotpotQA), so those are not checked. BENCHMARKS.md.
DEFAULT_ABSTAIN: dict[str, Any] = {"action": "abstain", "basis": "best", "abstain_below": 0.1, "when": "single-hop"}
DEFAULT_CASCADE: dict[str, Any] = {"models": ["qwen2.5-0.5b", "qwen2.5-1.5b"], "signal": "self-consistency",
                                   "thresholds": 0.75, "samples": 4}
TABLE_ROUTES = ("auto", "tables", "text", "both")
_NUMBER = (int, float)


@dataclass(frozen=True)
class AnswerSpec:
    llm: str = DEFAULT_LLM
    style: str = "prose"
    max_tokens: int = 256
    passage_order: str | None = None  # None: the answering model's own preference
    min_similarity: float = 0.3       # below it no passage is relevant and the pipeline abstains
    temperature: float = 0.0


@dataclass(frozen=True)
class RetrieveSpec:
    mode: str = "hybrid"
    top_k: int = 5
    rerank: bool = False
    rerank_depth: int = 20
    reranker: str = "ms-marco-l12"  # packaged, or a trained one's registered name or folder
    step_top_k: int = 3
    compress: int | None = None  # keep the N best evidence sentences


@dataclass(frozen=True)
class CascadeSpec:
    models: list[str]
    signal: str = "self-consistency"
    thresholds: float | list[float] = 0.75
    max_cost: float | None = None
    samples: int | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class RouterSpec:
    path: str
    llms: dict[str, str]


@dataclass(frozen=True)
class RewriteSpec:
    mode: str = "multi"
    n: int = 3
    llm: str | None = None


@dataclass(frozen=True)
class DecomposeSpec:
    gate: str = "rules"
    max_steps: int = 4
    llm: str | None = None
    answer_split_steps: bool = True


@dataclass(frozen=True)
class DemosSpec:
    pool: str
    k: int = 2
    diversity: float = 0.3
    pseudo_label: str | None = None
    min_confidence: float = 0.6
    llm: str | None = None


@dataclass(frozen=True)
class TablesSpec:
    route: str = "auto"       # auto: the linker's evidence decides; or always tables, text, or both
    depth: int = 3            # tables linked per question
    sql: bool = True          # write and run SQL; false: linked rows only
    samples: int = 1          # SQL candidates voted by their results
    repair: bool = True       # a failed or empty statement goes back to the LLM once
    row_limit: int = 50
    time_limit: float = 5.0
    evidence_rows: int = 8    # rows shown when SQL is off or found nothing
    llm: str | None = None    # the SQL writer; default the cheapest answering model
    demos: str | None = None  # a JSONL pool of {"question", "sql"} demonstrations
    demo_k: int = 2


@dataclass(frozen=True)
class GraphSpec:
    hops: int = 3                  # relation paths of up to this many steps
    beam: int = 8                  # paths of each length that grow further
    scorer: str = "embedding"      # or "cross-encoder", or a trained scorer's folder
    direct: str | bool = "auto"    # answer from the graph without the LLM: true, false, or auto (a trained scorer
    direct_min: float = 0.5        # whose best path scores at least direct_min)
    evidence: int = 20             # triples the LLM reads
    max_fanout: int = 500          # an entity with more edges ends a path
    min_link: float = 0.8          # least entity-linking score


@dataclass(frozen=True)
class LogSpec:
    enabled: bool = False          # off by default: questions and answers may be private
    llm_calls: bool = True         # every LLM call: model, messages, outputs, tokens, seconds, cost
    answers: bool = True           # every answer: question, text, evidence ids, verdicts, route, usage
    retention_days: int = 30       # rows older than this are deleted as the pipeline writes (0: keep forever)
    max_chars: int = 20_000        # longest text kept per message, output, question or answer


@dataclass(frozen=True)
class VerifySpec:
    action: str = "drop"
    basis: str = "weakest"
    abstain_below: float | None = None
    when: str = "always"
    thresholds: str | None = None
    threshold: float | None = None
    contradiction: float | None = None
    judge: str | None = None
    band: list[float] | None = None
    retries: int = 1
    model: str | None = None


# Each table: its dataclass and the type each key's value must have in a file or dict.
_TABLES: dict[str, tuple[type, dict[str, Any]]] = {
    "answer": (AnswerSpec, {"llm": str, "style": str, "max_tokens": int, "passage_order": str,
                            "min_similarity": _NUMBER, "temperature": _NUMBER}),
    "retrieve": (RetrieveSpec, {"mode": str, "top_k": int, "rerank": bool, "rerank_depth": int, "reranker": str,
                                "step_top_k": int,
                                "compress": int}),
    "cascade": (CascadeSpec, {"models": list, "signal": str, "thresholds": (int, float, list), "max_cost": _NUMBER,
                              "samples": int, "temperature": _NUMBER}),
    "router": (RouterSpec, {"path": str, "llms": dict}),
    "rewrite": (RewriteSpec, {"mode": str, "n": int, "llm": str}),
    "decompose": (DecomposeSpec, {"gate": str, "max_steps": int, "llm": str, "answer_split_steps": bool}),
    "demos": (DemosSpec, {"pool": str, "k": int, "diversity": _NUMBER, "pseudo_label": str,
                          "min_confidence": _NUMBER, "llm": str}),
    "verify": (VerifySpec, {"action": str, "basis": str, "abstain_below": _NUMBER, "when": str,
                            "thresholds": str, "threshold": _NUMBER,
                            "contradiction": _NUMBER, "judge": str, "band": list, "retries": int, "model": str}),
    "tables": (TablesSpec, {"route": str, "depth": int, "sql": bool, "samples": int, "repair": bool,
                            "row_limit": int, "time_limit": _NUMBER, "evidence_rows": int, "llm": str,
                            "demos": str, "demo_k": int}),
    "graph": (GraphSpec, {"hops": int, "beam": int, "scorer": str, "direct": (str, bool), "direct_min": _NUMBER,
                          "evidence": int, "max_fanout": int, "min_link": _NUMBER}),
    "log": (LogSpec, {"enabled": bool, "llm_calls": bool, "answers": bool, "retention_days": int, "max_chars": int}),
    "pipeline": (dict, {"name": str, "description": str, "nodes": list}),
}
_ANSWERERS = ("cascade", "router", "answer")
_PATHS = {"demos": "pool", "router": "path", "verify": "thresholds", "tables": "demos", "graph": "scorer"}  # relative
# to the file


@dataclass(frozen=True)
class PipelineSpec:
    """Which nodes run and with which models and settings; `build(spec, kb)` turns it into a pipeline."""

    name: str = "basic"
    description: str = ""
    nodes: tuple[str, ...] = ("retrieve", "generate")
    answer: AnswerSpec = field(default_factory=AnswerSpec)
    retrieve: RetrieveSpec = field(default_factory=RetrieveSpec)
    cascade: CascadeSpec | None = None
    router: RouterSpec | None = None
    rewrite: RewriteSpec | None = None
    decompose: DecomposeSpec | None = None
    demos: DemosSpec | None = None
    verify: VerifySpec | None = None
    tables: TablesSpec | None = None
    graph: GraphSpec | None = None
    log: LogSpec = field(default_factory=LogSpec)

    @classmethod
    def parse(cls, source: PipelineSpec | str | Path | Mapping[str, Any], *, llm: str | None = None,
              defaults: Mapping[str, Mapping[str, Any]] | None = None) -> PipelineSpec:
        """A spec from a built-in name, a `.toml` file or a dict of tables. `llm` (the --llm option) names the
        `[answer]` model; `defaults` fill keys the source leaves out (a file's own settings win)."""
        if isinstance(source, PipelineSpec):
            return source
        if isinstance(source, Mapping):
            return cls._from_tables(dict(source), where="pipeline spec", name="custom", llm=llm, defaults=defaults)
        text = str(source)
        if text in BUILTIN:
            if llm is not None and text == "cascade":
                raise ConfigError(f"--llm does not apply to the {text!r} pipeline, which names its own models")
            tables: dict[str, Any] = {"cascade": DEFAULT_CASCADE} if text == "cascade" else {"answer": {}}
            tables |= {"basic": {"verify": DEFAULT_ABSTAIN},
                       "verified": {"verify": {}},
                       "multihop": {"decompose": {}, "verify": DEFAULT_ABSTAIN}}.get(text, {})
            tables["tables"] = {}  # a knowledge base without tables skips the table nodes
            tables["graph"] = {}  # and one without a knowledge graph the graph nodes
            tables["pipeline"] = {"description": BUILTIN[text]}
            return cls._from_tables(tables, where=text, name=text, llm=llm, defaults=defaults)
        path = Path(text)
        if path.suffix != ".toml" or not path.is_file():
            raise ConfigError(f"unknown pipeline {text!r}: use {', '.join(BUILTIN)} or a pipeline .toml file")
        return cls._from_tables(read_toml(path), where=str(path), name=path.stem, llm=llm, defaults=defaults,
                                base=path.parent)

    @classmethod
    def _from_tables(cls, tables: dict[str, Any], *, where: str, name: str, llm: str | None,
                     defaults: Mapping[str, Mapping[str, Any]] | None, base: Path | None = None) -> PipelineSpec:
        unknown = sorted(set(tables) - set(_TABLES))
        others = [k for k in ("cascade", "router") if k in tables]
        answer_llm = isinstance(tables.get("answer"), dict) and "llm" in tables["answer"]
        if len(others) > 1 or (others and answer_llm) or (not others and "answer" not in tables) or unknown:
            optional = sorted(set(_TABLES) - set(_ANSWERERS))
            raise ConfigError(f"{where}: a pipeline holds one [cascade], [router] or [answer] table (beside the "
                              f"other two, [answer] may give style and length but no llm) and optional "
                              f"{', '.join(f'[{t}]' for t in optional)}; found {sorted(tables) or 'nothing'}")
        answerer = others[0] if others else "answer"
        for table, values in tables.items():
            _check_table(table, values, where)
        if llm is not None and answerer != "answer":
            raise ConfigError(f"--llm does not apply to {where}, whose [{answerer}] names its own models")
        meta = tables.get("pipeline", {})
        # [answer] and [retrieve] are always there: defaults (the CLI's options) fill what the source leaves out
        merged = {t: {**(defaults or {}).get(t, {}), **tables.get(t, {})} for t in ("answer", "retrieve")}
        if llm is not None:
            merged["answer"]["llm"] = llm
        declared = meta.get("nodes")
        nodes = graph_nodes(tables if declared is not None else {**tables, "retrieve": merged["retrieve"]}, declared,
                            where)
        merged["retrieve"]["rerank"] = "rerank" in nodes  # a declared node list wins over a default
        parts: dict[str, Any] = {t: _make(t, merged[t], where) for t in merged}
        optional_nodes = {"rewrite": "rewrite", "decompose": "decompose", "demos": "demos", "verify": "verify",
                          "route": "router", "cascade": "cascade", "link_tables": "tables",
                          "link_entities": "graph"}
        for node, table in optional_nodes.items():
            if table in tables or node in nodes:
                values = dict(tables.get(table, {}))
                if base is not None and table in _PATHS and isinstance(values.get(_PATHS[table]), str) \
                        and values[_PATHS[table]] not in PATH_SCORERS:
                    values[_PATHS[table]] = str(base / values[_PATHS[table]])
                parts[table] = _make(table, values, where)
        if "log" in tables:
            parts["log"] = _make("log", tables["log"], where)
        return cls(name=str(meta.get("name", name)), description=str(meta.get("description", "")), nodes=nodes,
                   **parts)

    def to_dict(self) -> dict[str, Any]:
        """The spec as tables (what a TOML file holds): `PipelineSpec.parse(spec.to_dict()) == spec`."""
        tables: dict[str, Any] = {"pipeline": {"name": self.name, "description": self.description,
                                                "nodes": list(self.nodes)}}
        for table in ("answer", "retrieve", "cascade", "router", "rewrite", "decompose", "demos", "verify", "tables",
                      "graph"):
            part = getattr(self, table)
            if part is not None:
                tables[table] = {k: v for k, v in dataclasses.asdict(part).items() if v is not None}
        if self.log != LogSpec():  # written only when it says more than the default (off)
            tables["log"] = dataclasses.asdict(self.log)
        if self.cascade or self.router:  # they name the answering models
            del tables["answer"]["llm"]
        return tables

    @property
    def llm_names(self) -> list[str]:
        """Every LLM the spec names, answering models first (the first is the cheapest)."""
        names = (list(self.cascade.models) if self.cascade else list(self.router.llms.values()) if self.router
                 else [self.answer.llm])
        for part, key in ((self.rewrite, "llm"), (self.decompose, "llm"), (self.demos, "llm"), (self.verify, "judge"),
                          (self.tables, "llm")):
            value = getattr(part, key) if part is not None else None
            if value is not None:
                names.append(value)
        return list(dict.fromkeys(names))


def _check_table(table: str, values: Any, where: str) -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: [{table}] must be a table")
    types = _TABLES[table][1]
    bad = sorted(set(values) - set(types))
    if bad:
        raise ConfigError(f"{where}: unknown key {', '.join(bad)} in [{table}]; known: {', '.join(sorted(types))}")
    for key, value in values.items():
        wanted = types[key]
        takes_bool = wanted is bool or (isinstance(wanted, tuple) and bool in wanted)
        if not isinstance(value, wanted) or (isinstance(value, bool) and not takes_bool):
            kind = {str: "a string", int: "a whole number", bool: "true or false", list: "a list",
                    dict: "a table"}.get(wanted, "a number")
            raise ConfigError(f"{where}: [{table}] {key} must be {kind}, got {value!r}")
    if table == "cascade" and not (isinstance(values.get("models"), list) and len(values["models"]) >= 2
                                   and all(isinstance(m, str) for m in values["models"])):
        raise ConfigError(f"{where}: [cascade] models must list two or more LLM names, cheapest first")
    if table == "cascade" and set(values) & {"samples", "temperature"} and \
            values.get("signal", "self-consistency") != "self-consistency":
        raise ConfigError(f"{where}: samples and temperature apply to the self-consistency signal only")
    if table == "router" and not (isinstance(values.get("path"), str) and isinstance(values.get("llms"), dict)):
        raise ConfigError(f'{where}: [router] needs path = "ROUTER_DIR" and llms = {{ MODEL = "LLM", ... }}')
    if table == "demos" and not isinstance(values.get("pool"), str):
        raise ConfigError(f'{where}: [demos] needs pool = "FILE.jsonl" (lines {{"question", "answer"}})')
    if table == "demos" and "llm" in values and values.get("pseudo_label") != "llm":
        raise ConfigError(f'{where}: [demos] llm is only used with pseudo_label = "llm" '
                          f"(got {values.get('pseudo_label')!r})")
    if table == "tables" and values.get("route", "auto") not in TABLE_ROUTES:
        raise ConfigError(f"{where}: [tables] route must be one of {', '.join(TABLE_ROUTES)}, got {values['route']!r}")
    if table == "tables" and (values.get("depth", 1) < 1 or values.get("samples", 1) < 1
                              or values.get("row_limit", 1) < 1 or values.get("time_limit", 1) <= 0
                              or values.get("evidence_rows", 1) < 1):
        raise ConfigError(f"{where}: [tables] depth, samples, row_limit, evidence_rows and time_limit must be positive")
    if table == "graph" and not 1 <= values.get("hops", 1) <= 3:
        raise ConfigError(f"{where}: [graph] hops must be 1, 2 or 3, got {values['hops']}")
    if table == "graph" and (values.get("beam", 1) < 1 or values.get("evidence", 1) < 1
                             or values.get("max_fanout", 1) < 1):
        raise ConfigError(f"{where}: [graph] beam, evidence and max_fanout must be positive")
    if table == "graph" and values.get("direct", "auto") not in ("auto", True, False):
        raise ConfigError(f'{where}: [graph] direct must be true, false or "auto", got {values["direct"]!r}')
    if table == "log" and (values.get("retention_days", 0) < 0 or values.get("max_chars", 1) < 1):
        raise ConfigError(f"{where}: [log] retention_days must be 0 (keep forever) or more, max_chars 1 or more")
    if table == "verify" and "band" in values and not (len(values["band"]) == 2 and
                                                       all(isinstance(b, _NUMBER) for b in values["band"])):
        raise ConfigError(f"{where}: [verify] band must be [LOW, HIGH]")


def _make(table: str, values: dict[str, Any], where: str) -> Any:
    """The table's dataclass; a table the defaults cannot complete names what it lacks."""
    cls = _TABLES[table][0]
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"{where}: [{table}] is incomplete ({err})") from err
