"""Cascade: the cheapest model answers first; a confidence signal accepts its answer or escalates.

A FrugalGPT-style chain over two or more LLMs ordered by cost. After each answer but the last model's,
the signal (self-consistency, self-verification, log-probabilities, later NLI groundedness) gives a
confidence; at or above that model's threshold the answer is accepted. A per-question budget stops
escalation when the next model's estimated cost would exceed it, and the returned generation says so.
The cascade is itself an `LLM`, so it drops into `AnswerPipeline` wherever a model goes; its
generation's `details` record every step (model, confidence, threshold, cost, seconds).

>>> from pilotfish.llms.fake import FakeLLM
>>> small = FakeLLM(replies=["Paris", "Paris", "Paris"], name="small")
>>> large = FakeLLM(replies=["Paris"], name="large")
>>> cascade = Cascade([small, large], signal=SelfConsistencySignal(samples=2))
>>> gen = cascade.generate([{"role": "user", "content": "?"}])[0]
>>> gen.model, gen.details["escalations"]
('small', 0)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator, Sequence
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.llms.base import LLM, Generation, Message, Usage
from pilotfish.routing.signals import ConfidenceSignal, SelfConsistencySignal


def price_of(llm: LLM, usage: Usage) -> float:
    """What `usage`'s tokens would cost on `llm`, from its per-million-token prices (0 when unpriced)."""
    config = getattr(llm, "_config", {}) or {}
    return (usage.prompt_tokens * float(config.get("price_per_mtok_in", 0.0))
            + usage.completion_tokens * float(config.get("price_per_mtok_out", 0.0))) / 1e6


class Cascade:
    """`models` cheapest first; `thresholds` one per model but the last (a single number applies to all)."""

    answers_whole = True  # decides on whole answers: AnswerPipeline.stream yields the accepted one at once

    def __init__(self, models: Sequence[LLM], *, signal: ConfidenceSignal | None = None,
                 thresholds: float | Sequence[float] = 0.75, max_cost: float | None = None) -> None:
        if len(models) < 2:
            raise ConfigError(f"a cascade needs at least two models, got {len(models)}")
        steps = len(models) - 1
        limits = [float(thresholds)] * steps if isinstance(thresholds, (int, float)) else [float(t) for t in thresholds]
        if len(limits) != steps or not all(0.0 <= t <= 1.0 for t in limits):
            raise ConfigError(f"give one threshold in [0, 1] per model but the last ({steps}), got {thresholds}")
        if max_cost is not None and max_cost < 0:
            raise ConfigError(f"max_cost must be >= 0, got {max_cost}")
        self.models, self.thresholds, self.max_cost = list(models), limits, max_cost
        self.signal = signal or SelfConsistencySignal()
        self.name = "cascade(" + " > ".join(getattr(m, "name", type(m).__name__) for m in self.models) + ")"

    def generate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0, max_tokens: int = 256,
                 stop: Sequence[str] | None = None, json_schema: dict[str, Any] | None = None) -> list[Generation]:
        spent, steps = Usage(), []
        stopped_by_budget = False
        for i, llm in enumerate(self.models):
            start = time.perf_counter()
            generation = llm.generate(messages, n=n, temperature=temperature, max_tokens=max_tokens, stop=stop,
                                      json_schema=json_schema)[0]
            spent = spent + generation.usage
            step: dict[str, Any] = {"model": _name(llm), "cost": generation.usage.cost}
            if i == len(self.models) - 1:
                step.update(accepted=True, reason="last model in the cascade")
            else:
                confidence, used = self.signal.confidence(llm, messages, generation, max_tokens=max_tokens,
                                                          json_schema=json_schema)
                spent = spent + used
                step.update(confidence=round(confidence, 4), threshold=self.thresholds[i], signal=self.signal.name,
                            cost=generation.usage.cost + used.cost)
                if confidence >= self.thresholds[i]:
                    step.update(accepted=True, reason=f"{self.signal.name} {confidence:.2f} >= {self.thresholds[i]}")
                else:
                    estimate = price_of(self.models[i + 1], generation.usage)
                    if self.max_cost is not None and spent.cost + estimate > self.max_cost:
                        stopped_by_budget = True
                        step.update(accepted=True, reason=f"{self.signal.name} {confidence:.2f} < "
                                    f"{self.thresholds[i]}, but escalating (~{estimate:.6f}) would pass the budget "
                                    f"{self.max_cost}")
                    else:
                        step.update(accepted=False,
                                    reason=f"{self.signal.name} {confidence:.2f} < {self.thresholds[i]}")
            step["seconds"] = round(time.perf_counter() - start, 4)
            steps.append(step)
            if step["accepted"]:
                break
        largest = price_of(self.models[-1], generation.usage)
        details = {"answered_by": step["model"], "escalations": len(steps) - 1, "steps": steps,
                   "stopped_by_budget": stopped_by_budget, "cost": spent.cost,
                   "largest_model_cost_estimate": largest}
        return [Generation(text=generation.text, finish_reason=generation.finish_reason, usage=spent,
                           model=step["model"], token_logprobs=generation.token_logprobs, details=details)]

    async def agenerate(self, messages: Sequence[Message], **kwargs: Any) -> list[Generation]:
        return await asyncio.to_thread(self.generate, messages, **kwargs)

    def stream(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 256,
               stop: Sequence[str] | None = None) -> Generator[str, None, Usage]:
        """A cascade decides after a whole answer, so the accepted answer is yielded in one piece."""
        generation = self.generate(messages, temperature=temperature, max_tokens=max_tokens, stop=stop)[0]
        yield generation.text
        return generation.usage


def _name(llm: LLM) -> str:
    return str(getattr(llm, "name", type(llm).__name__))
