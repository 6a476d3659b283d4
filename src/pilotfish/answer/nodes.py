"""The answer graph's nodes: small functions of (the pipeline's parts, the graph state) -> a state update.

Each node does one thing over one component: search, rerank, judge relevance, route, compress, pick
demonstrations, build the prompt, generate, cite, verify. `graph.py` wires them; `build.py` makes the parts.
`trace` and `spent` are accumulated by the state's reducers: a node returns only its own step's cost.

>>> add_usage(Usage(calls=1, prompt_tokens=5), Usage(calls=2)).calls
3
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from pilotfish.answer.spec import PipelineSpec
from pilotfish.errors import GenerationCancelled
from pilotfish.llms.base import LLM, Usage, collect_stream
from pilotfish.prompts.builder import ABSTAIN_TEXT, PromptBuilder, is_abstention, parse_citations
from pilotfish.prompts.short_answer import find_quote, generate_short
from pilotfish.text import sentence_spans, split_sentences
from pilotfish.types import Citation, Passage, TraceStep

MAX_PROSE_SENTENCES = 3


def add_usage(a: Usage | None, b: Usage | None) -> Usage:
    """The `spent` reducer: what earlier rounds, rewrites, plan steps and checks cost, added up."""
    return (a or Usage()) + (b or Usage())


class AnswerState(TypedDict, total=False):
    question: str
    filters: dict[str, Any] | None
    stream: bool  # generate writes the answer's pieces to LangGraph's custom stream as they come
    cancel: Any  # a threading.Event: once set, the graph stops before its next node and generation stops
    flagged: list[dict[str, Any]]  # passages that read like instructions to the model (prompt injection)
    passages: list[Passage]
    relevant: bool
    messages: list[dict[str, str]]
    text: str
    citations: list[Citation]
    usage: Usage  # the last generation's
    route: dict[str, Any] | None
    model: str
    verification: dict[str, Any] | None
    retry: bool
    loops: int
    rewrite: dict[str, Any] | None
    plan: dict[str, Any] | None
    steps: list[dict[str, Any]]
    notes: list[str]
    demos: list[Any]
    quote: dict[str, Any] | None
    tables: dict[str, Any] | None  # the table path: route and reason, linked schema, SQL record, rows shown
    linked: Any  # the LinkedSchema of link_tables, for the sql and table_evidence nodes
    graph: dict[str, Any] | None  # the graph path: route and reason, linked entities, paths, answers, direct or not
    entities: list[Any]  # the LinkedEntity list of link_entities, for graph_paths
    graph_result: Any  # the GraphResult of graph_paths, for graph_evidence
    spent: Annotated[Usage, add_usage]
    trace: Annotated[list[TraceStep], operator.add]


def cheapest_llm(llm: LLM | None, router: Any, llms: dict[str, LLM]) -> LLM:
    """The router's first model, a cascade's first model, or the one LLM."""
    if router is not None:
        return llms[router.models[0]]
    return getattr(llm, "models", [llm])[0]


@dataclass(frozen=True)
class Parts:
    """The components a spec asked for, built once by `build`; the nodes read them."""

    kb: Any
    spec: PipelineSpec
    builder: PromptBuilder
    llm: LLM | None = None            # the one answering LLM (a `Cascade` is one too)
    router: Any = None                # or a trained router choosing among `llms`
    llms: dict[str, LLM] = field(default_factory=dict)
    rewriter: Any = None              # QueryRewriter
    decomposer: Any = None            # Decomposer
    demos: Any = None                 # DemoRetriever
    compressor: Any = None            # SentenceCompressor
    verifier: Any = None              # AnswerVerifier
    tables: Any = None                # a TableCatalog handed to build (else the knowledge base's tables)
    linker: Any = None                # TableLinker
    sql_writer: Any = None            # SQLGenerator
    table_evidence: Any = None        # TableEvidence
    graph: Any = None                 # a KnowledgeGraph handed to build (else the knowledge base's graph)
    entity_linker: Any = None         # EntityLinker
    path_retriever: Any = None        # PathRetriever
    graph_evidence: Any = None        # GraphEvidence
    attribute_threshold: float = 0.5  # least MiniLM similarity for citing a passage the LLM did not cite

    @property
    def helper_llm(self) -> LLM:
        """The cheapest LLM at hand, for chores such as planning steps or rewriting a follow-up."""
        return cheapest_llm(self.llm, self.router, self.llms)

    def llm_for(self, state: AnswerState) -> LLM:
        return self.llms[state["model"]] if self.router is not None else self.llm  # type: ignore[return-value]

    def search(self, question: str, state: AnswerState, top_k: int | None = None, *, rerank: bool | None = None,
               ) -> list[Passage]:
        r = self.spec.retrieve
        rerank = r.rerank if rerank is None else rerank
        return self.kb.search(question, mode=r.mode, top_k=top_k or r.top_k, filters=state.get("filters"),
                              rerank=rerank, rerank_depth=r.rerank_depth, reranker=r.reranker)

    @property
    def candidates(self) -> int:
        """How many passages the first stage hands on: the reranker's depth when a rerank node follows."""
        r = self.spec.retrieve
        return max(r.top_k, r.rerank_depth) if r.rerank else r.top_k


def rewrite(parts: Parts, state: AnswerState) -> AnswerState:
    found = parts.rewriter.rewrite(state["question"])
    return {"rewrite": found.to_dict(), "spent": found.usage}


def decompose(parts: Parts, state: AnswerState) -> AnswerState:
    plan = parts.decomposer.plan(state["question"])
    return {"plan": plan.to_dict(), "spent": plan.usage}


def answer_steps(parts: Parts, state: AnswerState) -> AnswerState:
    from pilotfish.answer.steps import answer_steps as run_plan

    step_top_k = parts.spec.retrieve.step_top_k
    done = run_plan(state["question"], state["plan"]["steps"], search=lambda q: parts.search(q, state, step_top_k),
                    llm=parts.helper_llm, limit=max(parts.spec.retrieve.top_k, step_top_k),
                    search_only=bool(state["plan"].get("search_only")))
    return {"passages": done["passages"], "notes": done["notes"], "steps": done["steps"], "spent": done["usage"]}


def retrieve(parts: Parts, state: AnswerState) -> AnswerState:
    """The first stage: the question's search (or the rewritten queries', fused); `rerank` reorders after.
    Skipped when the table or graph path alone answers (or there is no text to search)."""
    if parts.kb is None or (state.get("tables") or {}).get("route") == "tables" \
            or (state.get("graph") or {}).get("route") in ("graph", "none"):
        return {"passages": []}
    found = state.get("rewrite")
    if found and (len(found["queries"]) > 1 or found["passage"] or found["queries"][0] != state["question"]):
        from pilotfish.prompts.rewrite import Rewrite

        r = parts.spec.retrieve
        depth = max(30, parts.candidates)  # each query's list, fused; the rerank node reorders all of it
        return {"passages": parts.rewriter.search(parts.kb, Rewrite(found["queries"], found["passage"]),
                                                  question=state["question"], mode=r.mode,
                                                  top_k=depth if r.rerank else r.top_k, filters=state.get("filters"),
                                                  rerank=False, depth=depth)}
    return {"passages": parts.search(state["question"], state, parts.candidates, rerank=False)}


def rerank(parts: Parts, state: AnswerState) -> AnswerState:
    """The cross-encoder reorders the first stage's candidates for the question and keeps `top_k`."""
    if not state["passages"]:
        return {"passages": []}
    r = parts.spec.retrieve
    return {"passages": parts.kb.rerank(state["question"], state["passages"], top_k=r.top_k, reranker=r.reranker)}


def gate(parts: Parts, state: AnswerState) -> AnswerState:
    """Is any passage similar enough to the question to answer from? (No dense index: trust the retriever.)"""
    passages = [p for p in state["passages"] if not _structured(p)]
    if len(passages) < len(state["passages"]):  # rows, an SQL result or triples that their own path chose
        return {"relevant": True}
    if not passages:
        return {"relevant": False}
    similarities = parts.kb.similarity(state["question"], passages)
    if similarities is None:
        return {"relevant": True}
    return {"relevant": max(similarities) >= parts.spec.answer.min_similarity}


def route(parts: Parts, state: AnswerState) -> AnswerState:
    decision = parts.router.route(state["question"])
    return {"model": decision.model,
            "route": {"answered_by": decision.model, "router": parts.router.kind, **decision.to_dict()}}


def compress(parts: Parts, state: AnswerState) -> AnswerState:
    return {"passages": parts.compressor.compress(state["question"], state["passages"])}


def demos(parts: Parts, state: AnswerState) -> AnswerState:
    return {"demos": parts.demos.select(state["question"])}


def build_prompt(parts: Parts, state: AnswerState) -> AnswerState:
    """The messages; passages that look like instructions to the model are fenced like the rest and flagged."""
    from pilotfish.prompts.injection import flag_passages

    return {"messages": parts.builder.build(state["question"], state["passages"], demos=state.get("demos") or (),
                                            notes=state.get("notes") or ()),
            "flagged": flag_passages(state["passages"])}


def generate(parts: Parts, state: AnswerState) -> AnswerState:
    """The answer. Prose streams its pieces to LangGraph's custom stream when the caller streams and nothing
    after generation may change the text (no verifier; a cascade decides on whole answers)."""
    a, llm = parts.spec.answer, parts.llm_for(state)
    if a.style != "prose":
        return _generate_short(parts, state, llm)
    if state.get("stream") and parts.verifier is None and not getattr(llm, "answers_whole", False):
        from langgraph.config import get_stream_writer

        write, pieces, written = get_stream_writer(), [], True
        stream = collect_stream(llm.stream(state["messages"], max_tokens=a.max_tokens, temperature=a.temperature),
                                pieces)
        while True:
            try:
                piece = next(stream)
            except StopIteration as stop:
                return {"text": first_sentences("".join(pieces).strip()), "usage": stop.value}
            if state.get("cancel") is not None and state["cancel"].is_set():  # the client went away
                stream.close()  # closing the LLM's generator stops its generation
                raise GenerationCancelled("the answer was cancelled while it was generated")
            # the piece that starts a sentence past the limit is not shown; the rest is drained for its usage
            written = written and len(sentence_spans("".join(pieces))) <= MAX_PROSE_SENTENCES
            if written:
                write(piece)
    generation = llm.generate(state["messages"], max_tokens=a.max_tokens, temperature=a.temperature)[0]
    text = sql_result_instead(state, first_sentences(generation.text.strip()))
    return {"text": text, "usage": generation.usage, **_details(generation)}


def sql_result_instead(state: AnswerState, text: str) -> str:
    """An abstention over an SQL result that found rows says what the query returned instead: the rows answer the
    question (a small model sometimes does not see that a `COUNT(name) = 2` answers "how many")."""
    found = (state.get("tables") or {}).get("sql") or {}
    if not is_abstention(text) or found.get("error") is not None or not found.get("rows"):
        return text
    n = next((i for i, p in enumerate(state["passages"], 1) if p.retriever == "sql"), 1)
    rows = found["rows"]
    if len(rows) == 1:
        return "; ".join(f"{c} = {v}" for c, v in zip(found["columns"], rows[0])) + f" [{n}]."
    shown = ", ".join(str(r[0]) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
    return f"The query returned {len(rows)} rows: {shown} [{n}]."


def first_sentences(text: str, limit: int = MAX_PROSE_SENTENCES) -> str:
    """`text` cut after its `limit`-th sentence: prose answers are one to three sentences, and a small
    model sometimes copies a whole passage instead."""
    spans = sentence_spans(text)
    return text[:spans[limit - 1][1]] if len(spans) > limit else text


def _generate_short(parts: Parts, state: AnswerState, llm: LLM) -> AnswerState:
    """Fill `{"answer", "sources"}` (quoted: `{"quote", ...}` first); a reply that breaks the schema is kept
    as plain text."""
    a = parts.spec.answer
    quoted = a.style == "quoted"
    text, usage, generation = generate_short(llm, state["messages"], len(state["passages"]), max_tokens=a.max_tokens,
                                             temperature=a.temperature, quoted=quoted)
    update: AnswerState = {"text": sql_result_instead(state, text), "usage": usage,
                           **(_details(generation) if generation is not None else {})}
    if quoted:
        update["quote"] = None if is_abstention(text) else find_quote(generation, [p.text for p in state["passages"]])
    return update


def cite(parts: Parts, state: AnswerState) -> AnswerState:
    """Map `[n]` markers to evidence; when the model cited nothing, the embedding model attributes each
    answer sentence to its most similar passage (small models steer the large one)."""
    text, passages = state["text"], state["passages"]
    citations = parse_citations(text, passages)
    tabular = [(n, p) for n, p in enumerate(passages, 1) if _structured(p)]
    if tabular and not any(c.known for c in citations) and not is_abstention(text):
        # rows, SQL results and triples have no stored vectors: the answer read them, so they are its sources (a small
        # model sometimes brackets a value, "[2950]", which reads as an unknown marker)
        return {"citations": citations + [Citation(marker=n, chunk_id=p.chunk_id, doc_id=p.doc_id, source=p.source,
                                                   attributed=True) for n, p in tabular]}
    if citations or is_abstention(text) or not passages:
        return {"citations": citations}
    sentences = [s for s in split_sentences(text) if len(s.split()) >= 3]
    if parts.kb is None:
        return {"citations": []}
    matrix = parts.kb.similarities(sentences, passages) if sentences else None
    attributed: dict[int, Citation] = {}
    for row in matrix or []:
        best = max(range(len(row)), key=row.__getitem__)
        if row[best] >= parts.attribute_threshold and best + 1 not in attributed:
            p = passages[best]
            attributed[best + 1] = Citation(marker=best + 1, chunk_id=p.chunk_id, doc_id=p.doc_id, source=p.source,
                                            attributed=True)
    return {"citations": list(attributed.values())}


def verify(parts: Parts, state: AnswerState) -> AnswerState:
    from pilotfish.verification.repair import verify_summary

    question, text, passages = state["question"], state["text"], state["passages"]
    skipped = parts.verifier.skips(question)
    if not skipped and parts.verifier.when == "single-hop" and any(p.retriever == "sql" for p in passages):
        skipped = "the answer reads an SQL result, which the NLI abstention check does not judge"
    if skipped:
        return {"retry": False, "verification": {"label": "unchecked", "action": parts.verifier.action,
                                                 "claims": [], "did": skipped}}
    verdict = parts.verifier.check(question, text, passages)
    if parts.verifier.wants_retry(verdict, state.get("loops", 0)):
        summary = verify_summary(verdict, "retrieve") | {"did": "searching again for the unsupported claims"}
        return {"verification": summary, "retry": True, "spent": verdict.usage}
    new_text, did, used = parts.verifier.apply(text, verdict, question=question, passages=passages,
                                               llm=parts.helper_llm)
    citations = state.get("citations", []) if new_text == text else parse_citations(new_text, passages)
    return {"text": new_text, "citations": citations, "retry": False,
            "spent": used + (verdict.usage if verdict is not None else Usage()),
            "verification": verify_summary(verdict, parts.verifier.action) | {"did": did}}


def retrieve_again(parts: Parts, state: AnswerState) -> AnswerState:
    """Search with the unsupported claims, add what is new to the evidence, and answer again."""
    claims = [c["claim"] for c in (state.get("verification") or {}).get("claims", [])
              if c["label"] in ("unsupported", "contradicted")]
    passages, seen = list(state["passages"]), {p.chunk_id for p in state["passages"]}
    for query in [state["question"], *claims] if parts.kb is not None else []:
        for p in parts.search(query, state):
            if p.chunk_id not in seen and len(passages) < parts.spec.retrieve.top_k + 3:
                passages.append(p)
                seen.add(p.chunk_id)
    # the answer being replaced cost something too: it moves to `spent` before the next generation
    return {"passages": passages, "loops": state.get("loops", 0) + 1, "spent": state.get("usage") or Usage()}


def _structured(passage: Passage) -> bool:
    """Evidence from tables or the knowledge graph: chosen by its own path, and without stored vectors."""
    return passage.metadata.get("kind") in ("sql", "table", "graph") and passage.retriever in ("sql", "table", "graph")


def abstain(parts: Parts, state: AnswerState) -> AnswerState:
    return {"text": ABSTAIN_TEXT, "usage": Usage(), "citations": []}


def _details(generation: Any) -> dict[str, Any]:
    """A cascade's record of its steps, for the trace (plain LLMs have none)."""
    return {"route": generation.details} if generation.details else {}
