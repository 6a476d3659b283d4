"""Named answer pipelines and pipeline files: which LLM, cascade of LLMs, or routed LLMs answer.

Built-in: `basic` (the one LLM given) and `cascade` (qwen2.5-0.5b first; self-consistency over four
samples escalates doubtful answers to qwen2.5-1.5b). A pipeline file is TOML:

    [cascade]
    models = ["qwen2.5-0.5b", "qwen2.5-1.5b"]   # cheapest first; any --llm spec works
    signal = "self-consistency"                  # or "self-verify", "logprob"
    thresholds = 0.75                            # one number, or one per model but the last
    max_cost = 0.01                              # optional per-question budget (USD)
    samples = 4                                  # self-consistency options

or a trained router (`pilotfish route train`) with one LLM per model it routes between:

    [router]
    path = "router/"
    llms = { small = "qwen2.5-0.5b", large = "openai:gpt-4o-mini" }

>>> sorted(BUILTIN)
['basic', 'cascade']
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.llms.base import LLM

BUILTIN = {"basic": "one LLM answers from the retrieved evidence",
           "cascade": "qwen2.5-0.5b answers; when four samples disagree the question goes to qwen2.5-1.5b"}
DEFAULT_CASCADE: dict[str, Any] = {"models": ["qwen2.5-0.5b", "qwen2.5-1.5b"], "signal": "self-consistency",
                                   "thresholds": 0.75, "samples": 4}
_CASCADE_KEYS = {"models", "signal", "thresholds", "max_cost", "samples", "temperature"}


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
    if llm is not None:
        raise ConfigError(f"--llm does not apply to the {pipeline!r} pipeline, which names its own models")
    if pipeline == "cascade":
        return {"llm": build_cascade(DEFAULT_CASCADE)}
    path = Path(pipeline)
    if path.suffix != ".toml" or not path.is_file():
        raise ConfigError(f"unknown pipeline {pipeline!r}: use {', '.join(BUILTIN)} or a pipeline .toml file")
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from err
    if len(spec) != 1 or set(spec) - {"cascade", "router"}:
        raise ConfigError(f"{path}: a pipeline file holds one [cascade] or [router] table, found "
                          f"{sorted(spec) or 'nothing'}")
    if "router" in spec:
        return build_routed(spec["router"], path)
    return {"llm": build_cascade(spec["cascade"], where=str(path))}


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
