"""ServerMetrics: Prometheus counters, gauges and histograms of `pilotfish serve`, at GET /metrics.

With several workers each process writes to a shared folder (prometheus_client's multiprocess mode, set
up by `pilotfish serve --workers N`), and /metrics sums them.

>>> m = ServerMetrics()
>>> m.request("/api/search", 200, 0.01)
>>> b"pilotfish_requests_total" in m.render()[0]
True
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServerMetrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # In multiprocess mode the metrics go to the default registry's files; /metrics collects the folder.
        registry = None if self.multiprocess else CollectorRegistry()
        kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.registry = registry
        self.requests = Counter("pilotfish_requests_total", "HTTP requests by route and status",
                                ["route", "status"], **kw)
        self.latency = Histogram("pilotfish_request_seconds", "HTTP request latency by route", ["route"],
                                 buckets=_LATENCY, **kw)
        self.tokens = Counter("pilotfish_tokens_total", "LLM tokens spent on answers", ["kind"], **kw)
        self.cost = Counter("pilotfish_cost_usd_total", "LLM cost of answers in US dollars", **kw)
        self.answers = Counter("pilotfish_answers_total", "answers by pipeline", ["pipeline"], **kw)
        self.abstentions = Counter("pilotfish_abstentions_total", "answers that abstained", ["pipeline"], **kw)
        self.escalations = Counter("pilotfish_escalations_total", "cascade escalations to a larger model", **kw)
        self.flagged = Counter("pilotfish_flagged_passages_total", "evidence passages that read like instructions",
                               **kw)
        self.rejected = Counter("pilotfish_rejected_total", "requests refused, by reason", ["reason"], **kw)
        self.cancelled = Counter("pilotfish_cancelled_total", "answers cancelled by a client that went away", **kw)
        gauge: dict[str, Any] = {"multiprocess_mode": "livesum"} if self.multiprocess else {}
        self.queue_depth = Gauge("pilotfish_queue_depth", "answers waiting for a slot", **gauge, **kw)
        self.running = Gauge("pilotfish_answers_running", "answers being generated", **gauge, **kw)
        self.queue_wait = Histogram("pilotfish_queue_wait_seconds", "seconds an answer waited for a slot",
                                    buckets=_LATENCY, **kw)

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def answer(self, pipeline: str, answer: Any) -> None:
        """Count an answer's tokens, cost, abstention, escalations and flagged passages."""
        self.answers.labels(pipeline).inc()
        usage = answer.usage
        if usage is not None:
            self.tokens.labels("prompt").inc(usage.prompt_tokens)
            self.tokens.labels("completion").inc(usage.completion_tokens)
            self.cost.inc(usage.cost)
        if not answer.answered:
            self.abstentions.labels(pipeline).inc()
        self.escalations.inc(escalations(answer))
        self.flagged.inc(len(answer.flagged))

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def escalations(answer: Any) -> int:
    """How many times a cascade escalated while answering (0 without a cascade)."""
    for step in answer.trace:
        route = step.outputs.get("route") if isinstance(step.outputs, dict) else None
        if isinstance(route, dict) and "escalations" in route:
            return int(route["escalations"])
    return 0
