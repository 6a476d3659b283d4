"""The answer graph's knowledge-graph nodes: link the question to entities, find and score relation paths, and
either answer from the graph directly or give the LLM the path's triples as evidence.

    link_entities -> graph_paths -> (END with a direct answer) ... -> retrieve -> ... -> graph_evidence -> gate

The route is "graph" when the question links to the graph and the knowledge base holds no text, "both"
when it holds text too (graph triples and text passages reach the LLM together), "text" when the question
links to no entity (said in the trace, and the text search answers; "none" when there is no text either).

>>> direct_wanted("auto", trained=True, score=0.8, least=0.5), direct_wanted("auto", trained=False, score=0.9,
...                                                                           least=0.5)
(True, False)
"""

from __future__ import annotations

from typing import Any

from pilotfish.answer.nodes import AnswerState, Parts
from pilotfish.llms.base import Usage
from pilotfish.types import Citation


def graph_of(parts: Parts) -> Any:
    """The knowledge graph at hand: the one handed to `build`, else the knowledge base's (None without either)."""
    if parts.graph is not None:
        return parts.graph
    return parts.kb.graph() if parts.kb is not None and hasattr(parts.kb, "graph") else None


def direct_wanted(direct: str | bool, *, trained: bool, score: float, least: float) -> bool:
    """Answer from the graph without the LLM? Always, never, or ("auto") when a trained scorer is confident."""
    if direct == "auto":
        return trained and score >= least
    return bool(direct)


def link_entities(parts: Parts, state: AnswerState) -> AnswerState:
    graph = graph_of(parts)
    if graph is None or not len(graph):
        return {"graph": {"route": "text", "reason": "no knowledge graph here"}}
    found = parts.entity_linker.link(state["question"], graph, alternatives=parts.path_retriever.link_margin)
    linked = [e for e in found if e.score >= parts.spec.graph.min_link]
    if not linked:
        if parts.kb is not None and parts.kb.index_generation() == 0:
            return {"graph": {"route": "none", "reason": "the question links to no entity of the knowledge graph, "
                                                         "and the knowledge base holds no text to search"}}
        return {"graph": {"route": "text", "reason": "the question links to no entity of the knowledge graph; "
                                                     "the text search answers"}}
    has_text = parts.kb is not None and parts.kb.has_text()
    route, why = ("both", "the knowledge base holds text too") if has_text else ("graph", "the knowledge base "
                                                                                           "holds no text")
    names = ", ".join(e.entity for e in linked)
    return {"graph": {"route": route, "reason": f"the question links to {names}; {why}",
                      "entities": [e.to_dict() for e in linked]}, "entities": linked}


def graph_paths(parts: Parts, state: AnswerState) -> AnswerState:
    """Score the relation paths from the linked entities; answer directly when the spec says so."""
    info = state.get("graph") or {}
    if info.get("route") not in ("graph", "both"):
        return {}
    graph = graph_of(parts)
    result = parts.path_retriever.retrieve(state["question"], graph, entities=state["entities"])
    found = {**info, **result.to_dict()}
    best = result.best
    if best is None:
        reason = f"{info['reason']}; no relation path from it reaches an answer"
        return {"graph": {**found, "route": "text" if info["route"] == "both" else "graph", "reason": reason}}
    from pilotfish.graphs.scorers import TrainedPathScorer

    spec = parts.spec.graph
    trained = isinstance(parts.path_retriever.scorer, TrainedPathScorer)
    update: AnswerState = {"graph": found, "graph_result": result}
    if direct_wanted(spec.direct, trained=trained, score=best.score, least=spec.direct_min):
        passages = parts.graph_evidence.passages(best)
        text = parts.graph_evidence.direct_answer(best)
        citations = [Citation(marker=n, chunk_id=p.chunk_id, doc_id=p.doc_id, source=p.source)
                     for n, p in enumerate(passages, 1)]
        update |= {"graph": {**found, "direct": True}, "text": text, "passages": passages, "citations": citations,
                   "relevant": True, "usage": Usage(), "model": "graph"}
    return update


def graph_evidence(parts: Parts, state: AnswerState) -> AnswerState:
    """The best path's triples join the evidence, before the text passages."""
    result = state.get("graph_result")
    if result is None or result.best is None:
        return {}
    triples = parts.graph_evidence.passages(result.best)
    return {"passages": [*triples, *(state.get("passages") or [])],
            "graph": {**(state.get("graph") or {}), "evidence": [p.chunk_id for p in triples]}}


def answered_directly(state: AnswerState) -> bool:
    return bool((state.get("graph") or {}).get("direct"))
