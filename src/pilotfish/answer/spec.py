"""Named answer pipelines and pipeline files: which nodes the answer graph has, and which LLMs answer.

Built-in: `basic` (the one LLM given), `multihop` (a rule gate sends multi-hop questions to the decomposer,
whose steps are searched and answered in turn), `cascade` (qwen2.5-0.5b first; self-consistency over four
samples escalates doubtful answers to qwen2.5-1.5b) and `verified` (the NLI checker drops unsupported
sentences). `pilotfish pipelines` lists them; `pilotfish pipelines show NAME` prints the graph.

A pipeline file is TOML. One table says who answers: `[answer]` (`llm = "qwen2.5-1.5b"`, or --llm; optional
`style`, `max_tokens`), `[cascade]` or `[router]`:

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

    [retrieve]   mode = "hybrid", top_k = 5, rerank = true, step_top_k = 3, compress = 6
    [rewrite]    mode = "multi" (or "hyde", "standalone"), n = 3, llm = "qwen2.5-0.5b"
    [decompose]  gate = "rules" (or "always"), max_steps = 4, llm = "qwen2.5-0.5b", answer_split_steps = true
    [demos]      pool = "demos.jsonl", k = 2, diversity = 0.3, pseudo_label = "knn" (or "llm"), min_confidence = 0.6,
                 llm = "qwen2.5-0.5b" (the labelling LLM when pseudo_label = "llm")
    [verify]     action = "drop" (accept, drop, rewrite, retrieve, abstain), thresholds = "checker.json" or
                 threshold = 0.5, contradiction = 0.5, judge = "qwen2.5-1.5b", band = [0.1, 0.9], retries = 1

and `[pipeline]` may give a `description` and spell the graph out, checked against what can run:

    [pipeline]
    nodes = ["rewrite", "decompose", "retrieve", "rerank", "generate", "verify"]

>>> sorted(BUILTIN)
['basic', 'cascade', 'multihop', 'verified']
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.llms.base import LLM

BUILTIN = {"basic": "one LLM answers from the retrieved evidence",
           "multihop": "a rule gate sends multi-hop questions to the decomposer; each step is searched and "
                       "answered in turn, and the answer reads every step's evidence",
           "cascade": "qwen2.5-0.5b answers; when four samples disagree the question goes to qwen2.5-1.5b",
           "verified": "one LLM answers; the NLI model checks every sentence against the evidence and drops "
                       "unsupported ones (abstains when none is left)"}
DEFAULT_CASCADE: dict[str, Any] = {"models": ["qwen2.5-0.5b", "qwen2.5-1.5b"], "signal": "self-consistency",
                                   "thresholds": 0.75, "samples": 4}
# The nodes a pipeline file may name, in the only order the graph can run them.
NODES = ("rewrite", "decompose", "retrieve", "rerank", "route", "compress", "demos", "generate", "verify")
_TABLES = {"answer", "cascade", "router", "pipeline", "retrieve", "rewrite", "decompose", "demos", "verify"}
_KEYS = {"cascade": {"models", "signal", "thresholds", "max_cost", "samples", "temperature"},
         "verify": {"action", "thresholds", "threshold", "contradiction", "judge", "band", "retries", "model"}}
_NUMBER = (int, float)
_TYPES: dict[str, dict[str, Any]] = {  # the other tables: each key and the type its value must have
    "answer": {"llm": str, "style": str, "max_tokens": int, "passage_order": str},
    "pipeline": {"description": str, "nodes": list},
    "retrieve": {"mode": str, "top_k": int, "rerank": bool, "rerank_depth": int, "step_top_k": int, "compress": int},
    "rewrite": {"mode": str, "n": int, "llm": str},
    "decompose": {"gate": str, "max_steps": int, "llm": str, "answer_split_steps": bool},
    "demos": {"pool": str, "k": int, "diversity": _NUMBER, "pseudo_label": str, "min_confidence": _NUMBER,
              "llm": str}}


def answer_llm(pipeline: str = "basic", llm: str | None = None) -> LLM:
    """The one LLM a basic or cascade pipeline answers with (see `pipeline_options` for routers)."""
    options = pipeline_options(pipeline, llm)
    if "llm" not in options:
        raise ConfigError(f"{pipeline} routes between several LLMs: use pipeline_options()")
    return options["llm"]


def pipeline_options(pipeline: str = "basic", llm: str | None = None) -> dict[str, Any]:
    """`AnswerPipeline` keyword arguments for a named pipeline or a pipeline file: `llm` (or `router` and
    `llms`) and the steering components and retrieval settings the file asks for."""
    from pilotfish.llms import resolve_llm

    if pipeline in ("basic", "verified", "multihop"):
        options: dict[str, Any] = {"llm": resolve_llm(llm or "qwen2.5-0.5b")}
        if pipeline == "verified":
            options["verifier"] = build_verifier({}, "verified")
        if pipeline == "multihop":
            from pilotfish.prompts.decompose import Decomposer

            options["decomposer"] = Decomposer()
        return options
    path = Path(pipeline)
    if pipeline != "cascade" and (path.suffix != ".toml" or not path.is_file()):
        raise ConfigError(f"unknown pipeline {pipeline!r}: use {', '.join(BUILTIN)} or a pipeline .toml file")
    if llm is not None and pipeline == "cascade":
        raise ConfigError(f"--llm does not apply to the {pipeline!r} pipeline, which names its own models")
    if pipeline == "cascade":
        return {"llm": build_cascade(DEFAULT_CASCADE)}
    spec = read_pipeline_file(path)
    answerer = next(k for k in ("cascade", "router", "answer") if k in spec)
    if llm is not None and answerer != "answer":
        raise ConfigError(f"--llm does not apply to {path}, whose [{answerer}] names its own models")
    if answerer == "router":
        options = build_routed(spec["router"], path)
    elif answerer == "cascade":
        options = {"llm": build_cascade(spec["cascade"], where=str(path))}
    else:
        options = {"llm": resolve_llm(llm or str(spec["answer"].get("llm", "qwen2.5-0.5b")))}
        options |= {k: spec["answer"][k] for k in ("style", "max_tokens", "passage_order") if k in spec["answer"]}
    return options | steering_options(spec, path)


def read_pipeline_file(path: Path) -> dict[str, Any]:
    """A pipeline file's tables, checked: known tables and keys, one answering table, a possible graph."""
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from err
    answerers = [k for k in ("cascade", "router", "answer") if k in spec]
    unknown = sorted(set(spec) - _TABLES)
    if len(answerers) != 1 or unknown:
        raise ConfigError(f"{path}: a pipeline file holds one [cascade], [router] or [answer] table and optional "
                          f"{', '.join(f'[{t}]' for t in sorted(_TABLES - {'cascade', 'router', 'answer'}))}; "
                          f"found {sorted(spec) or 'nothing'}")
    for table in [t for t in spec if t != "router"]:
        if not isinstance(spec[table], dict):
            raise ConfigError(f"{path}: [{table}] must be a table")
    for table, types in _TYPES.items():  # [cascade], [router] and [verify] are checked where they are built
        settings = spec.get(table, {})
        bad = sorted(set(settings) - set(types))
        if bad:
            raise ConfigError(f"{path}: unknown key {', '.join(bad)} in [{table}]; known: {', '.join(sorted(types))}")
        for key, value in settings.items():
            wanted = types[key]
            if not isinstance(value, wanted) or (isinstance(value, bool) and wanted is not bool):
                kind = {str: "a string", int: "a whole number", bool: "true or false", list: "a list"}.get(wanted, "a number")
                raise ConfigError(f"{path}: [{table}] {key} must be {kind}, got {value!r}")
    nodes = spec.get("pipeline", {}).get("nodes")
    if nodes is not None:
        check_nodes(nodes, spec, where=str(path))
    return spec


def check_nodes(nodes: Any, spec: dict[str, Any], where: str) -> None:
    """A `[pipeline] nodes` list must name known nodes, in an order the graph can run, each configured."""
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
        raise ConfigError(f"{where}: [pipeline] nodes must be a list of node names")
    unknown = [n for n in nodes if n not in NODES]
    if unknown:
        raise ConfigError(f"{where}: unknown node {unknown[0]!r} in [pipeline] nodes; known: {', '.join(NODES)}")
    for a, b in zip(nodes, nodes[1:]):
        if NODES.index(a) >= NODES.index(b):
            raise ConfigError(f"{where}: impossible edge {a} -> {b}: {b} runs "
                              f"{'only once' if a == b else 'before ' + a}; the order is {' -> '.join(NODES)}")
    for needed in ("retrieve", "generate"):
        if needed not in nodes:
            raise ConfigError(f"{where}: [pipeline] nodes must include {needed!r}")
    if "route" in nodes and "router" not in spec:
        raise ConfigError(f"{where}: node 'route' needs a [router] table")
    if "demos" in nodes and "demos" not in spec:
        raise ConfigError(f"{where}: node 'demos' needs a [demos] table with pool = \"FILE.jsonl\"")
    if "compress" in nodes and "compress" not in spec.get("retrieve", {}):
        raise ConfigError(f"{where}: node 'compress' needs compress = N (sentences kept) in [retrieve]")
    for table in ("rewrite", "decompose", "demos", "verify"):
        if table in spec and table not in nodes:
            raise ConfigError(f"{where}: [{table}] is configured but {table!r} is not in [pipeline] nodes")
    if "router" in spec and "route" not in nodes:
        raise ConfigError(f"{where}: a [router] pipeline needs 'route' in [pipeline] nodes")
    if spec.get("retrieve", {}).get("rerank") and "rerank" not in nodes:
        raise ConfigError(f"{where}: [retrieve] rerank = true but 'rerank' is not in [pipeline] nodes")


def steering_options(spec: dict[str, Any], path: Path) -> dict[str, Any]:
    """`AnswerPipeline` options from the optional tables of a checked pipeline file."""
    from pilotfish.llms import resolve_llm
    from pilotfish.prompts.decompose import Decomposer
    from pilotfish.prompts.rewrite import QueryRewriter

    where, options = str(path), {}
    nodes = spec.get("pipeline", {}).get("nodes", [])
    retrieve = spec.get("retrieve", {})
    options |= {k: retrieve[k] for k in ("mode", "top_k", "rerank_depth", "step_top_k", "compress") if k in retrieve}
    if "rerank" in retrieve or "rerank" in nodes:
        options["rerank"] = bool(retrieve.get("rerank", True))
    for table, component in (("rewrite", QueryRewriter), ("decompose", Decomposer)):
        if table in spec or table in nodes:
            settings = dict(spec.get(table, {}))
            helper = resolve_llm(str(settings.pop("llm"))) if "llm" in settings else None
            options["rewriter" if table == "rewrite" else "decomposer"] = component(helper, **settings)
    if "demos" in spec:
        options["demos"] = build_demos(spec["demos"], where, base=path.parent)
    if "verify" in spec or "verify" in nodes:
        options["verifier"] = build_verifier(spec.get("verify", {}), where, base=path.parent)
    return options


def build_demos(spec: dict[str, Any], where: str, base: Path) -> Any:
    """A `DemoRetriever` over a pool file; unlabelled items are pseudo-labelled when `pseudo_label` is set."""
    from pilotfish.prompts.demos import DemoRetriever, PseudoLabeler, load_pool

    if not isinstance(spec.get("pool"), str):
        raise ConfigError(f"{where}: [demos] needs pool = \"FILE.jsonl\" (lines {{\"question\", \"answer\"}})")
    pool_path = base / spec["pool"]
    if not pool_path.is_file():
        raise ConfigError(f"{where}: demonstration pool {pool_path} does not exist")
    labelled, unlabelled = load_pool(pool_path)
    method = spec.get("pseudo_label")
    if "llm" in spec and method != "llm":
        raise ConfigError(f"{where}: [demos] llm is only used with pseudo_label = \"llm\" (got {method!r})")
    if method is not None and unlabelled:
        from pilotfish.llms import resolve_llm

        labeler = PseudoLabeler(method=str(method), min_confidence=float(spec.get("min_confidence", 0.6)),
                                llm=resolve_llm(str(spec.get("llm", "qwen2.5-0.5b"))) if method == "llm" else None)
        labelled += labeler.label(unlabelled, labelled)
    return DemoRetriever(labelled, k=int(spec.get("k", 2)), diversity=float(spec.get("diversity", 0.3)))


def build_verifier(spec: dict[str, Any], where: str, base: Path | None = None) -> Any:
    """An `AnswerVerifier` from a [verify] table; thresholds default to those shipped with the NLI model."""
    from pilotfish.verification.repair import AnswerVerifier
    from pilotfish.verification.checker import NLIGroundednessChecker
    from pilotfish.llms import resolve_llm

    unknown = sorted(set(spec) - _KEYS["verify"])
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)} in [verify]; known: {', '.join(sorted(_KEYS['verify']))}")
    options: dict[str, Any] = {k: spec[k] for k in ("threshold", "contradiction", "model") if k in spec}
    if "band" in spec:
        band = spec["band"]
        if not (isinstance(band, list) and len(band) == 2):
            raise ConfigError(f"{where}: [verify] band must be [LOW, HIGH]")
        options["band"] = tuple(band)
    if "judge" in spec:
        options["llm"] = resolve_llm(str(spec["judge"]))
    thresholds = spec.get("thresholds")
    if thresholds is not None:
        checker = NLIGroundednessChecker.from_thresholds((base or Path(".")) / str(thresholds), **options)
    else:
        checker = NLIGroundednessChecker.default(**options)
    return AnswerVerifier(checker, action=str(spec.get("action", "drop")), retries=int(spec.get("retries", 1)))


def build_routed(spec: dict[str, Any], path: Path) -> dict[str, Any]:
    from pilotfish.routing.load import load_router
    from pilotfish.llms import resolve_llm

    unknown = sorted(set(spec) - {"path", "llms"})
    if unknown or not isinstance(spec.get("path"), str) or not isinstance(spec.get("llms"), dict):
        raise ConfigError(f"{path}: [router] needs path = \"ROUTER_DIR\" and llms = {{ MODEL = \"LLM\", ... }}"
                          + (f"; unknown key {', '.join(unknown)}" if unknown else ""))
    router = load_router(path.parent / spec["path"])
    missing = [m for m in router.models if m not in spec["llms"]]
    extra = [m for m in spec["llms"] if m not in router.models]
    if missing or extra:
        raise ConfigError(f"{path}: the router was trained for {', '.join(router.models)}; [router] llms "
                          f"{'lacks ' + ', '.join(missing) if missing else 'names ' + ', '.join(extra) + ' it does not route to'}")
    return {"router": router, "llms": {m: resolve_llm(str(spec["llms"][m])) for m in router.models}}


def build_cascade(spec: dict[str, Any], where: str = "cascade") -> LLM:
    from pilotfish.routing.cascade import Cascade
    from pilotfish.routing.signals import make_signal
    from pilotfish.llms import resolve_llm

    unknown = sorted(set(spec) - _KEYS["cascade"])
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)} in [cascade]; known: {', '.join(sorted(_KEYS['cascade']))}")
    models = spec.get("models")
    if not isinstance(models, list) or len(models) < 2 or not all(isinstance(m, str) for m in models):
        raise ConfigError(f"{where}: [cascade] models must list two or more LLM names, cheapest first")
    options = {k: spec[k] for k in ("samples", "temperature") if k in spec}
    signal_name = spec.get("signal", "self-consistency")
    if options and signal_name != "self-consistency":
        raise ConfigError(f"{where}: samples and temperature apply to the self-consistency signal only")
    return Cascade([resolve_llm(m) for m in models], signal=make_signal(signal_name, **options),
                   thresholds=spec.get("thresholds", 0.75), max_cost=spec.get("max_cost"))
