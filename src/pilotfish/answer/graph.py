"""AnswerPipeline: the spec's nodes wired as one LangGraph graph, run, batched or streamed from the same graph.

retrieve -> [rerank] -> gate -> [route] -> [compress] -> [demos] -> build_prompt -> generate -> cite -> [verify],
with the table nodes (`table_nodes.py`) and graph nodes (`graph_nodes.py`) around retrieval, [rewrite] and
[decompose] before it (a multi-step plan goes through answer_steps instead of
retrieve), and abstain when no passage is relevant. Node names are the spec's (`nodes.py` holds them), and
every node's input, output and seconds land in the answer's trace, so the final prompt is always visible.
With an answer log (`[log] enabled`), each finished answer is written with the LLM calls made for it.

Build one with `pilotfish.answer.build`:

>>> from pilotfish.answer import build
>>> from pilotfish.llms.fake import FakeLLM
>>> pipeline = build({"answer": {"llm": "fake"}, "verify": {}}, kb=None, llms={"fake": FakeLLM(replies=["x"])})
>>> print(pipeline.mermaid().splitlines()[0])
---
>>> pipeline.spec.nodes
('retrieve', 'generate', 'verify')
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from pilotfish.answer import graph_nodes, nodes, table_nodes
from pilotfish.answer.nodes import AnswerState, Parts
from pilotfish.answer.spec import PipelineSpec
from pilotfish.answer.trace import traced
from pilotfish.errors import QueryError
from pilotfish.llms.base import LLM, Usage
from pilotfish.prompts.builder import is_abstention
from pilotfish.types import Answer

__all__ = ["AnswerPipeline", "AnswerState"]


class AnswerPipeline:
    """Grounded answers from a knowledge base: `run`, `run_batch`, `arun` and `stream` one compiled graph."""

    def __init__(self, parts: Parts, *, log: Any = None) -> None:
        """`parts` come from `build(spec, kb)`, the one place a spec becomes components; `log` is its `AnswerLog`
        (None: nothing is logged)."""
        self.parts, self.log = parts, log
        self._graph = compile_graph(parts)

    @property
    def spec(self) -> PipelineSpec:
        return self.parts.spec

    @property
    def kb(self) -> Any:
        return self.parts.kb

    @property
    def helper_llm(self) -> LLM:
        """The cheapest LLM at hand, for chores such as rewriting a follow-up question."""
        return self.parts.helper_llm

    def to_config(self) -> dict[str, Any]:
        """The spec as tables: `build(pipeline.to_config(), kb)` rebuilds the same pipeline."""
        return self.spec.to_dict()

    def mermaid(self) -> str:
        """The graph as mermaid text (LangGraph draws it)."""
        return str(self._graph.get_graph().draw_mermaid())

    # -- entry points ---------------------------------------------------------------------------
    def run(self, question: str, *, filters: dict[str, Any] | None = None) -> Answer:
        _check_question(question)
        with self._logged() as finish:
            start = time.perf_counter()
            state = self._graph.invoke({"question": question, "filters": filters})
            answer = self._answer(state, time.perf_counter() - start)
            finish(answer)
        return answer

    def run_batch(self, questions: list[str], *, filters: dict[str, Any] | None = None) -> list[Answer]:
        return [self.run(q, filters=filters) for q in questions]

    async def arun(self, question: str, *, filters: dict[str, Any] | None = None) -> Answer:
        return await asyncio.to_thread(self.run, question, filters=filters)

    def stream(self, question: str, *, filters: dict[str, Any] | None = None,
               cancel: threading.Event | None = None) -> Iterator[str | Answer]:
        """Yield the answer text as it is generated, then the finished `Answer`. Pieces come from the graph's
        custom stream; an answer that is not streamed token by token (short styles, a cascade, a verifier
        that may still change it, an abstention) comes whole once the graph is done. Setting `cancel` stops the
        graph before its next node and a streamed generation at its next piece (`GenerationCancelled`)."""
        _check_question(question)
        with self._logged() as finish:
            start, state, streamed = time.perf_counter(), None, False
            inputs = {"question": question, "filters": filters, "stream": True, "cancel": cancel}
            for mode, chunk in self._graph.stream(inputs, stream_mode=["custom", "values"]):
                if mode == "custom":
                    streamed = True
                    yield chunk
                else:
                    state = chunk
            assert state is not None
            if not streamed:
                yield state.get("text", "")
            answer = self._answer(state, time.perf_counter() - start)
            finish(answer)  # before the answer is handed out: a consumer that stops there still logs it
        yield answer

    def _logged(self) -> contextlib.AbstractContextManager[Callable[[Answer], None]]:
        """The answer log's collector for one answer; a no-op without a log."""
        if self.log is None:
            return contextlib.nullcontext(lambda answer: None)
        return self.log.answering()  # type: ignore[no-any-return]

    def _answer(self, state: AnswerState, seconds: float) -> Answer:
        text = state.get("text", "")
        answered = state.get("relevant", False) and not is_abstention(text)
        route = state.get("route") or {}
        tables = state.get("tables") or {}
        sql_record = tables.get("sql") if tables.get("route") in ("tables", "both") else None
        sql_record = sql_record if sql_record and sql_record["error"] is None else None  # refusals: in the trace
        found = state.get("graph") or {}
        graph = ({"direct": bool(found.get("direct")),
                  **{k: found[k] for k in ("route", "reason", "answers", "paths", "entities") if k in found}}
                 if found.get("paths") else None)
        return Answer(question=state["question"], answer=text, citations=state.get("citations", []),
                      evidence=state.get("passages", []), answered=answered,
                      model=("graph" if found.get("direct") else route.get("answered_by")
                             or getattr(self.parts.llm, "name", "") or state.get("model", "")),
                      usage=(state.get("usage") or Usage()) + (state.get("spent") or Usage()), seconds=seconds,
                      trace=state.get("trace", []), verification=state.get("verification"), quote=state.get("quote"),
                      sql=sql_record["sql"] if sql_record else None, rows=sql_record["rows"] if sql_record else None,
                      flagged=state.get("flagged") or [], graph=graph)


def compile_graph(parts: Parts) -> Any:
    """The LangGraph `StateGraph` of the spec's nodes, compiled."""
    from langgraph.graph import END, START, StateGraph

    on = set(parts.spec.nodes)
    graph = StateGraph(AnswerState)

    def add(name: str) -> None:
        module = (table_nodes if name in ("link_tables", "sql", "table_evidence") else
                  graph_nodes if name in ("link_entities", "graph_paths", "graph_evidence") else nodes)
        graph.add_node(name, traced(name, functools.partial(getattr(module, name), parts)))

    for name in ("retrieve", "gate", "build_prompt", "generate", "cite", "abstain"):
        add(name)
    before = [n for n in ("link_tables", "link_entities", "graph_paths", "rewrite", "decompose") if n in on]
    after = [n for n in ("route", "compress", "demos") if n in on]
    for name in before + after + (["rerank"] if "rerank" in on else []):
        add(name)
    for a, b in zip([START, *before], [*before, "retrieve"]):
        if a == "graph_paths":  # a direct answer from the graph is done
            graph.add_conditional_edges(a, lambda s, b=b: END if graph_nodes.answered_directly(s) else b, [b, END])
        elif a != "decompose":
            graph.add_edge(a, b)
    if "decompose" in on:  # a multi-step plan searches per step instead of once
        add("answer_steps")
        graph.add_conditional_edges("decompose", lambda s: "answer_steps" if len(s["plan"]["steps"]) > 1
                                    else "retrieve", ["answer_steps", "retrieve"])
    tabular = [n for n in ("sql", "table_evidence") if n in on]
    for name in tabular:
        add(name)
    gate_in = "graph_evidence" if "graph_evidence" in on else "gate"  # the graph's triples join last
    if gate_in != "gate":
        add(gate_in)
        graph.add_edge(gate_in, "gate")
    after_search = [*tabular, gate_in]  # after the text search (or the plan's steps), before the gate

    def then(source: str) -> None:  # the table nodes run only when link_tables chose a route through tables
        if not tabular:
            graph.add_edge(source, gate_in)
            return
        graph.add_conditional_edges(source, lambda s: tabular[0] if (s.get("tables") or {}).get("route")
                                    in ("tables", "both") else gate_in, [tabular[0], gate_in])

    if "decompose" in on:
        then("answer_steps")
    if "rerank" in on:
        graph.add_edge("retrieve", "rerank")
        then("rerank")
    else:
        then("retrieve")
    if tabular == ["sql", "table_evidence"]:  # rows are shown only when SQL found none
        graph.add_conditional_edges("sql", lambda s: gate_in if ((s.get("tables") or {}).get("sql") or {}).get("rows")
                                    else "table_evidence", ["table_evidence", gate_in])
        graph.add_edge("table_evidence", gate_in)
    else:
        for a, b in zip(after_search, after_search[1:]):
            graph.add_edge(a, b)
    chain = [*after, "build_prompt"]
    graph.add_conditional_edges("gate", lambda s: chain[0] if s["relevant"] else "abstain", [chain[0], "abstain"])
    for a, b in zip(chain, chain[1:]):
        graph.add_edge(a, b)
    graph.add_edge("build_prompt", "generate")
    graph.add_edge("generate", "cite")
    if "verify" in on:
        add("verify")
        add("retrieve_again")
        graph.add_edge("cite", "verify")
        graph.add_conditional_edges("verify", lambda s: "retrieve_again" if s.get("retry") else END,
                                    ["retrieve_again", END])
        graph.add_edge("retrieve_again", "build_prompt")
    else:
        graph.add_edge("cite", END)
    graph.add_edge("abstain", END)
    return graph.compile()


def _check_question(question: Any) -> None:
    if not isinstance(question, str) or not question.strip():
        raise QueryError("empty question: ask something")
