"""AnswerPipeline: retrieve -> relevance gate -> build prompt -> generate -> cite, as a LangGraph graph.

Each node is a thin function over a component and is timed into the answer's trace, so the final
prompt that reached the LLM is always visible. When no passage is relevant enough the graph skips the
LLM and abstains instead of guessing.

Three answer styles: "prose" (one to three sentences citing `[n]`, streamable), "short" (the LLM
fills a JSON schema `{"answer", "sources"}`, grammar-enforced where the backend can, so even a 0.5B
model gives a short answer and its passage numbers instead of copying the evidence), and "quoted"
(short, with the evidence sentence the answer comes from asked for first; `Answer.quote` says whether
that sentence is in the evidence word for word).

>>> from pilotfish.knowledge.base import KnowledgeBase                  # doctest: +SKIP
>>> from pilotfish.llms.llamacpp import LlamaCppLLM                      # doctest: +SKIP
>>> pipeline = AnswerPipeline(kb=KnowledgeBase.open(".pilotfish"), llm=LlamaCppLLM())   # doctest: +SKIP
>>> answer = pipeline.run("Which university has its main campus in Lawrence?")         # doctest: +SKIP
>>> answer.text, [c.doc_id for c in answer.citations]                                  # doctest: +SKIP
('The University of Kansas [1].', ['docs/University_of_Kansas.md'])
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any, TypedDict

from pilotfish.errors import ConfigError, QueryError
from pilotfish.text import split_sentences
from pilotfish.llms.base import LLM, Usage, collect_stream
from pilotfish.prompts.builder import ABSTAIN_TEXT, PromptBuilder, is_abstention, parse_citations
from pilotfish.prompts.short_answer import find_quote, generate_short, render_short_answer, short_answer_schema
from pilotfish.types import Answer, Citation, Passage, TraceStep

from .trace import traced as _traced

STYLES = ("prose", "short", "quoted")
QUOTED_MIN_TOKENS = 128  # a 300-character quote is about 75 tokens, plus the answer and the JSON
__all__ = ["AnswerPipeline", "AnswerState", "short_answer_schema", "render_short_answer"]


class AnswerState(TypedDict, total=False):
    question: str
    filters: dict[str, Any] | None
    passages: list[Passage]
    relevant: bool
    messages: list[dict[str, str]]
    text: str
    citations: list[Citation]
    usage: Usage
    route: dict[str, Any] | None
    model: str
    verification: dict[str, Any] | None
    retry: bool
    loops: int
    spent: Usage  # what earlier rounds of a verify -> retrieve loop, rewrites and plan steps cost
    rewrite: dict[str, Any] | None
    plan: dict[str, Any] | None
    steps: list[dict[str, Any]]
    notes: list[str]
    demos: list[Any]
    quote: dict[str, Any] | None
    trace: list[TraceStep]


class AnswerPipeline:
    """Grounded answers from a knowledge base with any LLM (see `pilotfish.llms`)."""

    def __init__(self, *, kb: Any, llm: LLM | None = None, mode: str = "hybrid", top_k: int = 5, rerank: bool = False,
                 style: str = "prose", min_similarity: float = 0.3, max_tokens: int = 256, temperature: float = 0.0,
                 attribute_threshold: float = 0.5, builder: PromptBuilder | None = None, router: Any = None,
                 llms: dict[str, LLM] | None = None, compress: int | None = None, verifier: Any = None,
                 rewriter: Any = None, decomposer: Any = None, demos: Any = None, step_top_k: int = 3,
                 passage_order: str | None = None, rerank_depth: int = 20) -> None:
        """`llm` answers every question; or a trained `router` picks one of `llms` (keyed by the router's
        model names) per question, in a `route` node of the graph. A `verifier` (`AnswerVerifier`) checks
        each answer against its evidence with the NLI model and acts on the verdict in a `verify` node.
        A `rewriter` (`QueryRewriter`) reshapes the question before search; a `decomposer` (`Decomposer`)
        splits multi-hop questions into steps, each searched (`step_top_k` passages) and answered in turn;
        `demos` (`DemoRetriever`) adds few-shot demonstrations to the prompt. `passage_order` ("best_first" or
        "best_last") lists the evidence for the model; by default the answering (first) model's own preference.
        With `rerank`, the cross-encoder reorders the first stage's `rerank_depth` best passages."""
        if (llm is None) == (router is None):
            raise ConfigError("give an llm, or a router with its llms, not both")
        if router is not None and set(llms or {}) != set(router.models):
            raise ConfigError(f"the router was trained for {', '.join(router.models)}, but the pipeline has LLMs for "
                              f"{', '.join(llms or {}) or 'none'}: give one LLM per router model")
        self.router, self.llms = router, dict(llms or {})
        if top_k < 1 or max_tokens < 1:
            raise ConfigError(f"need top_k >= 1 and max_tokens >= 1, got {top_k}, {max_tokens}")
        if style not in STYLES:
            raise ConfigError(f"unknown answer style {style!r}: use one of {', '.join(STYLES)}")
        if style == "quoted" and max_tokens < QUOTED_MIN_TOKENS:
            raise ConfigError(f"the quoted style writes a sentence before the answer: give max_tokens >= "
                              f"{QUOTED_MIN_TOKENS}, got {max_tokens}")
        self.style = style
        self.kb, self.llm, self.verifier = kb, llm, verifier
        self.rewriter, self.decomposer, self.demos, self.step_top_k = rewriter, decomposer, demos, step_top_k
        for helper in (rewriter, decomposer):
            if helper is not None and helper.llm is None:  # steering chores go to the cheapest model
                helper.llm = self.helper_llm
        self.compressor: Any = None  # SentenceCompressor: evidence cut to its best sentences
        if compress is not None:
            from pilotfish.retrievers.compress import SentenceCompressor

            self.compressor = SentenceCompressor(keep=compress)
        if rerank_depth < 1:
            raise ConfigError(f"rerank_depth must be >= 1, got {rerank_depth}")
        self.mode, self.top_k, self.rerank, self.rerank_depth = mode, top_k, rerank, rerank_depth
        self.min_similarity, self.max_tokens, self.temperature = min_similarity, max_tokens, temperature
        self.attribute_threshold = attribute_threshold
        order = passage_order or getattr(self.helper_llm, "passage_order", "best_first")
        self.builder = builder or (PromptBuilder(system_template=f"answer_{style}_system",
                                                 user_template="answer_short_user", order=order) if style != "prose"
                                   else PromptBuilder(order=order))
        self._graph = self._compile()

    # -- nodes ----------------------------------------------------------------------------------
    def _rewrite(self, state: AnswerState) -> AnswerState:
        rewrite = self.rewriter.rewrite(state["question"])
        return {"rewrite": rewrite.to_dict(), "spent": (state.get("spent") or Usage()) + rewrite.usage}

    def _search(self, question: str, state: AnswerState, top_k: int | None = None) -> list[Passage]:
        return self.kb.search(question, mode=self.mode, top_k=top_k or self.top_k, filters=state.get("filters"),
                              rerank=self.rerank, rerank_depth=self.rerank_depth)

    def _retrieve(self, state: AnswerState) -> AnswerState:
        rewrite = state.get("rewrite")
        if rewrite and (len(rewrite["queries"]) > 1 or rewrite["passage"] or rewrite["queries"][0] != state["question"]):
            from pilotfish.prompts.rewrite import Rewrite

            found = Rewrite(rewrite["queries"], rewrite["passage"])
            return {"passages": self.rewriter.search(self.kb, found, question=state["question"], mode=self.mode,
                                                     top_k=self.top_k, filters=state.get("filters"), rerank=self.rerank)}
        return {"passages": self._search(state["question"], state)}

    def _decompose(self, state: AnswerState) -> AnswerState:
        plan = self.decomposer.plan(state["question"])
        return {"plan": plan.to_dict(), "spent": (state.get("spent") or Usage()) + plan.usage}

    def _answer_steps(self, state: AnswerState) -> AnswerState:
        from pilotfish.answer.steps import answer_steps

        done = answer_steps(state["question"], state["plan"]["steps"],
                            search=lambda q: self._search(q, state, self.step_top_k),
                            llm=self.helper_llm, limit=max(self.top_k, self.step_top_k),
                            search_only=bool(state["plan"].get("search_only")))
        return {"passages": done["passages"], "notes": done["notes"], "steps": done["steps"],
                "spent": (state.get("spent") or Usage()) + done["usage"]}

    def _select_demos(self, state: AnswerState) -> AnswerState:
        return {"demos": self.demos.select(state["question"])}

    def _gate(self, state: AnswerState) -> AnswerState:
        passages = state["passages"]
        if not passages:
            return {"relevant": False}
        similarities = self.kb.similarity(state["question"], passages)
        if similarities is None:  # no dense index to judge with: trust the retriever
            return {"relevant": True}
        return {"relevant": max(similarities) >= self.min_similarity}

    def _route(self, state: AnswerState) -> AnswerState:
        decision = self.router.route(state["question"])
        return {"model": decision.model,
                "route": {"answered_by": decision.model, "router": self.router.kind, **decision.to_dict()}}

    @property
    def helper_llm(self) -> LLM:
        """The cheapest LLM at hand, for chores such as rewriting a follow-up question."""
        if self.router is not None:
            return self.llms[self.router.models[0]]
        return getattr(self.llm, "models", [self.llm])[0]  # a cascade's first model, or the one LLM

    def _llm_for(self, state: AnswerState) -> LLM:
        return self.llms[state["model"]] if self.router is not None else self.llm

    def _compress(self, state: AnswerState) -> AnswerState:
        return {"passages": self.compressor.compress(state["question"], state["passages"])}

    def _prompt(self, state: AnswerState) -> AnswerState:
        return {"messages": self.builder.build(state["question"], state["passages"], demos=state.get("demos") or (),
                                               notes=state.get("notes") or ())}

    def _generate(self, state: AnswerState) -> AnswerState:
        if self.style != "prose":
            return self._generate_short(state)
        generation = self._llm_for(state).generate(state["messages"], max_tokens=self.max_tokens,
                                                   temperature=self.temperature)[0]
        return {"text": generation.text.strip(), "usage": generation.usage, **_details(generation)}

    def _generate_short(self, state: AnswerState) -> AnswerState:
        """Fill `{"answer", "sources"}` (quoted: `{"quote", ...}` first); a reply that breaks the schema is
        kept as plain text."""
        quoted = self.style == "quoted"
        text, usage, generation = generate_short(self._llm_for(state), state["messages"], len(state["passages"]),
                                                 max_tokens=self.max_tokens, temperature=self.temperature,
                                                 quoted=quoted)
        update: AnswerState = {"text": text, "usage": usage, **(_details(generation) if generation is not None else {})}
        if quoted:
            passages = [p.text for p in state["passages"]]
            update["quote"] = None if is_abstention(text) else find_quote(generation, passages)
        return update

    def _cite(self, state: AnswerState) -> AnswerState:
        """Map `[n]` markers to evidence; when the model cited nothing, the embedding model attributes
        each answer sentence to its most similar passage (small models steer the large one)."""
        text, passages = state["text"], state["passages"]
        citations = parse_citations(text, passages)
        if citations or is_abstention(text) or not passages:
            return {"citations": citations}
        sentences = [s for s in split_sentences(text) if len(s.split()) >= 3]
        matrix = self.kb.similarities(sentences, passages) if sentences else None
        attributed: dict[int, Citation] = {}
        for row in matrix or []:
            best = max(range(len(row)), key=row.__getitem__)
            if row[best] >= self.attribute_threshold and best + 1 not in attributed:
                p = passages[best]
                attributed[best + 1] = Citation(marker=best + 1, chunk_id=p.chunk_id, doc_id=p.doc_id,
                                                source=p.source, attributed=True)
        return {"citations": list(attributed.values())}

    def _verify(self, state: AnswerState) -> AnswerState:
        from pilotfish.verification.repair import verify_summary

        question, text, passages = state["question"], state["text"], state["passages"]
        verdict = self.verifier.check(question, text, passages)
        spent = state.get("spent") or Usage()
        if self.verifier.wants_retry(verdict, state.get("loops", 0)):
            summary = verify_summary(verdict, "retrieve") | {"did": "searching again for the unsupported claims"}
            return {"verification": summary, "retry": True, "spent": spent + verdict.usage}
        new_text, did, used = self.verifier.apply(text, verdict, question=question, passages=passages,
                                                  llm=self.helper_llm)
        citations = state.get("citations", []) if new_text == text else parse_citations(new_text, passages)
        extra = used + (verdict.usage if verdict is not None else Usage())
        return {"text": new_text, "citations": citations, "retry": False, "spent": spent + extra,
                "verification": verify_summary(verdict, self.verifier.action) | {"did": did}}

    def _reretrieve(self, state: AnswerState) -> AnswerState:
        """Search with the unsupported claims, add what is new to the evidence, and answer again."""
        claims = [c["claim"] for c in (state.get("verification") or {}).get("claims", [])
                  if c["label"] in ("unsupported", "contradicted")]
        passages, seen = list(state["passages"]), {p.chunk_id for p in state["passages"]}
        for query in [state["question"], *claims]:
            for p in self._search(query, state):
                if p.chunk_id not in seen and len(passages) < self.top_k + 3:
                    passages.append(p)
                    seen.add(p.chunk_id)
        return {"passages": passages, "loops": state.get("loops", 0) + 1,
                "spent": (state.get("spent") or Usage()) + (state.get("usage") or Usage())}

    def _abstain(self, state: AnswerState) -> AnswerState:
        return {"text": ABSTAIN_TEXT, "usage": Usage(), "citations": []}

    def _compile(self) -> Any:
        from langgraph.graph import END, START, StateGraph

        graph = StateGraph(AnswerState)
        for name, fn in (("retrieve", self._retrieve), ("gate", self._gate), ("build_prompt", self._prompt),
                         ("generate", self._generate), ("cite", self._cite), ("abstain", self._abstain)):
            graph.add_node(name, _traced(name, fn))
        before = [name for name, on in (("rewrite", self.rewriter), ("decompose", self.decomposer)) if on is not None]
        after = [name for name, on in (("route", self.router), ("compress", self.compressor),
                                       ("select_demos", self.demos)) if on is not None]
        for name in before + after:
            graph.add_node(name, _traced(name, getattr(self, f"_{name}")))
        for a, b in zip([START, *before], [*before, "retrieve"]):
            if a != "decompose":
                graph.add_edge(a, b)
        if self.decomposer is not None:  # a multi-step plan searches per step instead of once
            graph.add_node("answer_steps", _traced("answer_steps", self._answer_steps))
            graph.add_conditional_edges("decompose", lambda s: "answer_steps" if len(s["plan"]["steps"]) > 1
                                        else "retrieve", ["answer_steps", "retrieve"])
            graph.add_edge("answer_steps", "gate")
        graph.add_edge("retrieve", "gate")
        chain = [*after, "build_prompt"]
        graph.add_conditional_edges("gate", lambda s: chain[0] if s["relevant"] else "abstain", [chain[0], "abstain"])
        for a, b in zip(chain, chain[1:]):
            graph.add_edge(a, b)
        graph.add_edge("build_prompt", "generate")
        graph.add_edge("generate", "cite")
        if self.verifier is not None:
            graph.add_node("verify", _traced("verify", self._verify))
            graph.add_node("retrieve_again", _traced("retrieve_again", self._reretrieve))
            graph.add_edge("cite", "verify")
            graph.add_conditional_edges("verify", lambda s: "retrieve_again" if s.get("retry") else END,
                                        ["retrieve_again", END])
            graph.add_edge("retrieve_again", "build_prompt")
        else:
            graph.add_edge("cite", END)
        graph.add_edge("abstain", END)
        return graph.compile()

    def mermaid(self) -> str:
        """The graph as mermaid text (LangGraph draws it)."""
        return str(self._graph.get_graph().draw_mermaid())

    # -- entry points ---------------------------------------------------------------------------
    def run(self, question: str, *, filters: dict[str, Any] | None = None) -> Answer:
        _check_question(question)
        start = time.perf_counter()
        state = self._graph.invoke({"question": question, "filters": filters, "trace": []})
        return self._answer(state, time.perf_counter() - start)

    def run_batch(self, questions: list[str], *, filters: dict[str, Any] | None = None) -> list[Answer]:
        return [self.run(q, filters=filters) for q in questions]

    async def arun(self, question: str, *, filters: dict[str, Any] | None = None) -> Answer:
        return await asyncio.to_thread(self.run, question, filters=filters)

    def stream(self, question: str, *, filters: dict[str, Any] | None = None) -> Iterator[str | Answer]:
        """Yield the answer text as it is generated, then the finished `Answer`."""
        _check_question(question)
        if any(x is not None for x in (self.verifier, self.rewriter, self.decomposer, self.demos)):
            # a checked answer may still change, and the steering nodes run before the stream: give it whole
            answer = self.run(question, filters=filters)
            yield answer.text
            yield answer
            return
        start = time.perf_counter()
        state: AnswerState = {"question": question, "filters": filters, "trace": []}
        for name, fn in (("retrieve", self._retrieve), ("gate", self._gate)):
            state.update(_traced(name, fn)(state))
        if not state["relevant"]:
            state.update(_traced("abstain", self._abstain)(state))
            yield state["text"]
            yield self._answer(state, time.perf_counter() - start)
            return
        if self.router is not None:
            state.update(_traced("route", self._route)(state))
        if self.compressor is not None:
            state.update(_traced("compress", self._compress)(state))
        state.update(_traced("build_prompt", self._prompt)(state))
        if self.style != "prose" or getattr(self._llm_for(state), "answers_whole", False):
            # a JSON reply is not worth streaming, and a cascade decides on whole answers: give it at once
            state.update(_traced("generate", self._generate)(state))
            yield state["text"]
            state.update(_traced("cite", self._cite)(state))
            yield self._answer(state, time.perf_counter() - start)
            return
        t0, pieces = time.perf_counter(), []
        usage = yield from collect_stream(self._llm_for(state).stream(state["messages"], max_tokens=self.max_tokens,
                                                                      temperature=self.temperature), pieces)
        seconds = time.perf_counter() - t0
        state["text"] = "".join(pieces).strip()
        state["usage"] = usage
        state["trace"] = state["trace"] + [TraceStep("generate", seconds, {"messages": state["messages"]},
                                                     {"text": state["text"]})]
        state.update(_traced("cite", self._cite)(state))
        yield self._answer(state, time.perf_counter() - start)

    def _answer(self, state: AnswerState, seconds: float) -> Answer:
        text = state.get("text", "")
        answered = state.get("relevant", False) and not is_abstention(text)
        route = state.get("route") or {}
        return Answer(question=state["question"], text=text, citations=state.get("citations", []),
                      evidence=state.get("passages", []), answered=answered,
                      model=route.get("answered_by") or getattr(self.llm, "name", "") or state.get("model", ""),
                      usage=(state.get("usage") or Usage()) + (state.get("spent") or Usage()), seconds=seconds,
                      trace=state.get("trace", []), verification=state.get("verification"),
                      quote=state.get("quote"))


def _details(generation: Any) -> dict[str, Any]:
    """A cascade's record of its steps, for the trace (plain LLMs have none)."""
    return {"route": generation.details} if generation.details else {}


def _check_question(question: Any) -> None:
    if not isinstance(question, str) or not question.strip():
        raise QueryError("empty question: ask something")
