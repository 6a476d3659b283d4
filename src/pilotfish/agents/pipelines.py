"""Named answer pipelines and pipeline files: which LLM, cascade of LLMs, or routed LLMs answer.

Built-in: `basic` (the one LLM given) and `cascade` (qwen2.5-0.5b first; self-consistency over four
samples escalates doubtful answers to qwen2.5-1.5b). A pipeline file is TOML:

    [cascade]
    models = ["qwen2.5-0.5b", "qwen2.5-1.5b"]   # cheapest first; any --llm spec works
    signal = "self-consistency"                  # or "self-verify", "logprob", "nli"
    thresholds = 0.75                            # one number, or one per model but the last
    max_cost = 0.01                              # optional per-question budget (USD)
    samples = 4                                  # self-consistency options

or a trained router (`pilotfish route train`) with one LLM per model it routes between:

    [router]
    path = "router/"
    llms = { small = "qwen2.5-0.5b", large = "openai:gpt-4o-mini" }

or one LLM (`llm = "qwen2.5-1.5b"`, or --llm) under `[answer]`. Any of them may add a `[verify]` table: the
NLI checker checks each answer against its evidence and acts (see `pilotfish.agents.repair`):

    [verify]
    action = "drop"              # accept, drop, rewrite, retrieve, abstain
    thresholds = "checker.json"  # from calibration; or threshold = 0.5, contradiction = 0.5
    judge = "qwen2.5-1.5b"       # optional LLM for claims in the uncertain band
    band = [0.1, 0.9]
    retries = 1                  # for action = "retrieve"

>>> sorted(BUILTIN)
['basic', 'cascade', 'verified']
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.llms.base import LLM

BUILTIN = {"basic": "one LLM answers from the retrieved evidence",
           "cascade": "qwen2.5-0.5b answers; when four samples disagree the question goes to qwen2.5-1.5b",
           "verified": "one LLM answers; the NLI model checks every sentence against the evidence and drops "
                       "unsupported ones (abstains when none is left)"}
DEFAULT_CASCADE: dict[str, Any] = {"models": ["qwen2.5-0.5b", "qwen2.5-1.5b"], "signal": "self-consistency",
                                   "thresholds": 0.75, "samples": 4}
_CASCADE_KEYS = {"models", "signal", "thresholds", "max_cost", "samples", "temperature"}
_VERIFY_KEYS = {"action", "thresholds", "threshold", "contradiction", "judge", "band", "retries", "model"}


def answer_llm(pipeline: str = "basic", llm: str | None = None) -> LLM:
    """The one LLM a basic or cascade pipeline answers with (see `pipeline_options` for routers)."""
    options = pipeline_options(pipeline, llm)
    if "llm" not in options:
        raise ConfigError(f"{pipeline} routes between several LLMs: use pipeline_options()")
    return options["llm"]


def pipeline_options(pipeline: str = "basic", llm: str | None = None) -> dict[str, Any]:
    """`AnswerPipeline` keyword arguments for a named pipeline or a pipeline file: `llm`, or `router` and `llms`."""
    from pilotfish.llms import resolve_llm

    if pipeline == "basic":
        return {"llm": resolve_llm(llm or "qwen2.5-0.5b")}
    if pipeline == "verified":
        return {"llm": resolve_llm(llm or "qwen2.5-0.5b"), "verifier": build_verifier({}, "verified")}
    path = Path(pipeline)
    if pipeline != "cascade" and (path.suffix != ".toml" or not path.is_file()):
        raise ConfigError(f"unknown pipeline {pipeline!r}: use {', '.join(BUILTIN)} or a pipeline .toml file")
    if llm is not None and pipeline == "cascade":
        raise ConfigError(f"--llm does not apply to the {pipeline!r} pipeline, which names its own models")
    if pipeline == "cascade":
        return {"llm": build_cascade(DEFAULT_CASCADE)}
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from err
    answerers = [k for k in ("cascade", "router", "answer") if k in spec]
    if len(answerers) != 1 or set(spec) - {"cascade", "router", "answer", "verify"}:
        raise ConfigError(f"{path}: a pipeline file holds one [cascade], [router] or [answer] table and an "
                          f"optional [verify], found {sorted(spec) or 'nothing'}")
    if llm is not None and answerers != ["answer"]:
        raise ConfigError(f"--llm does not apply to {path}, whose [{answerers[0]}] names its own models")
    if "router" in spec:
        options = build_routed(spec["router"], path)
    elif "cascade" in spec:
        options = {"llm": build_cascade(spec["cascade"], where=str(path))}
    else:
        options = {"llm": resolve_llm(llm or str(spec["answer"].get("llm", "qwen2.5-0.5b")))}
    if "verify" in spec:
        options["verifier"] = build_verifier(spec["verify"], str(path), base=path.parent)
    return options


def build_verifier(spec: dict[str, Any], where: str, base: Path | None = None) -> Any:
    """An `AnswerVerifier` from a [verify] table; thresholds default to those shipped with the NLI model."""
    from pilotfish.agents.repair import AnswerVerifier
    from pilotfish.agents.verify import NLIGroundednessChecker
    from pilotfish.llms import resolve_llm

    unknown = sorted(set(spec) - _VERIFY_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)} in [verify]; known: {', '.join(sorted(_VERIFY_KEYS))}")
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
    from pilotfish.agents.router_base import load_router
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
    from pilotfish.agents.cascade import Cascade
    from pilotfish.agents.signals import make_signal
    from pilotfish.llms import resolve_llm

    unknown = sorted(set(spec) - _CASCADE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)} in [cascade]; known: {', '.join(sorted(_CASCADE_KEYS))}")
    models = spec.get("models")
    if not isinstance(models, list) or len(models) < 2 or not all(isinstance(m, str) for m in models):
        raise ConfigError(f"{where}: [cascade] models must list two or more LLM names, cheapest first")
    options = {k: spec[k] for k in ("samples", "temperature") if k in spec}
    signal_name = spec.get("signal", "self-consistency")
    if options and signal_name != "self-consistency":
        raise ConfigError(f"{where}: samples and temperature apply to the self-consistency signal only")
    return Cascade([resolve_llm(m) for m in models], signal=make_signal(signal_name, **options),
                   thresholds=spec.get("thresholds", 0.75), max_cost=spec.get("max_cost"))
