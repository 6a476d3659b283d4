"""`pipeline(kb, llm, ...)`: `build` with a FakeLLM and flat settings, for short unit tests.

Settings go to the spec's tables by name (`mode`, `top_k`... to [retrieve]; `style`, `max_tokens`... to
[answer]); `rewrite`, `decompose`, `demos`, `verify`, `cascade` and `router` are tables given as dicts.
"""

from __future__ import annotations

from typing import Any

from pilotfish.answer import AnswerPipeline, build
from pilotfish.llms.base import LLM

RETRIEVE = {"mode", "top_k", "rerank", "rerank_depth", "step_top_k", "compress"}
ANSWER = {"style", "max_tokens", "passage_order", "min_similarity", "temperature"}
TABLES = {"rewrite", "decompose", "demos", "verify", "cascade", "router"}


def pipeline(kb: Any, llm: LLM | None = None, *, llms: dict[str, LLM] | None = None,
             components: dict[str, Any] | None = None, **settings: Any) -> AnswerPipeline:
    unknown = set(settings) - RETRIEVE - ANSWER - TABLES
    assert not unknown, f"not a pipeline setting: {unknown}"
    spec: dict[str, Any] = {t: settings[t] for t in TABLES if t in settings}
    spec["retrieve"] = {k: v for k, v in settings.items() if k in RETRIEVE}
    spec["answer"] = {k: v for k, v in settings.items() if k in ANSWER}
    given = dict(llms or {})
    if llm is not None:
        spec["answer"]["llm"] = "test-llm"
        given["test-llm"] = llm
    return build(spec, kb, llms=given, components=components)
