"""`pilotfish serve` under load, on loopback: the server's cost per answer, /api/search throughput, and 64 chat
clients against one local model.

    python benchmarks/serve_load.py [--limit 20] [--qwen-limit 10] [--search-requests 300]
                                    [--clients 64] [--waves 2] [--queue-max-tokens 48] [--queue-top-k 2]
                                    [--client-timeout 300] [--parts fake,search,qwen,queue] [--no-append]

The server runs in this process: `create_app(config, service=service)` under uvicorn on a free 127.0.0.1 port,
in a background thread, so the script can call the very pipeline object the server answers with
(`service.pipelines["basic"]`). The knowledge base is SciFact's (BEIR test: 5,183 abstracts; the 300 test
queries are the questions and search queries), the one scifact_retrieval.py builds in out/scifact/kb-minilm;
it is built the same way when missing. Clients are httpx (one at a time, or asyncio tasks for concurrency),
in this process too: their CPU time counts against the server's on this 2-core machine.

1. Server overhead at concurrency 1 (parts `fake` and `qwen`): `pipeline.run(question)` in process against
   POST /api/ask and POST /v1/chat/completions (both non-streaming), with a scripted FakeLLM and with
   qwen2.5-0.5b (llama.cpp threads: the package default). With FakeLLM also `ChatSession.stream` in process,
   what the server runs in its worker thread, so the HTTP layer and the streamed graph can be told apart
   (left out with qwen2.5-0.5b, whose answers take seconds). The paths take turns (ABAB), each over the same
   questions, offset so that one question never runs twice in a row (llama.cpp would reuse the previous
   prompt's cache). Overhead = (server mean - in-process mean) / in-process mean; target <= 5%.
2. /api/search (part `search`): requests/s, p50 and p99 at concurrency 1, 8 and 32, modes hybrid and bm25,
   against `kb.search_documents` in a loop in process (and the MiniLM query embedding alone, hybrid's main
   cost, and the server's SearchBatcher called in process at the same concurrency: batching without HTTP),
   and GET /healthz at the same concurrency (the ceiling of the HTTP stack and client alone).
   Target: >= 100 requests/s at concurrency 8 (hybrid).
3. Queue (part `queue`): `--clients` chat clients send one /v1/chat/completions each at once to a server with
   the default queue (local_concurrency 1, queue_size 8) in front of qwen2.5-0.5b, serving "short", the basic
   pipeline with a `--queue-max-tokens` answer from `--queue-top-k` passages (out/serve_load/short.toml);
   `--waves` waves, each after the previous one has finished.
   Counted: answered (200), refused (429 with Retry-After), 5xx, hung (client timeout), anything else.
   Queue waits come from the server's `service.local.waits`. Pass: no 5xx, none hung, every request answered
   or refused with 429 and Retry-After.

The rate limit is raised (rate_per_minute = burst = 1,000,000) on both servers, so every 429 comes from the
queue. Raw figures go to out/serve_load/last_run-PARTS.json. The parts may run separately (`--parts`), each
appending its own section to history.md: with a real model on a busy machine all four take more than ten
minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from shared import DATA, OUT, append_history, beir, markdown_table  # noqa: E402

FOLDER = OUT / "serve_load"
KB_DIR = OUT / "scifact" / "kb-minilm"  # where scifact_retrieval.py builds it
PARTS = ("fake", "search", "qwen", "queue")
REPLY = "The evidence supports this claim [1]."
QWEN = "qwen2.5-0.5b"
CONCURRENCY = (1, 8, 32)
HIGH = 1_000_000  # rate limit high enough never to refuse


# -- the server in a thread -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """`create_app(config, service=service)` under uvicorn on a free loopback port, in a daemon thread."""

    def __init__(self, config: Any, service: Any) -> None:
        import uvicorn

        from pilotfish.serve.app import create_app

        self.service = service
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(config, service=service), host="127.0.0.1",
                                                    port=self.port, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> Served:
        import httpx

        self.thread.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/readyz", timeout=2).status_code == 200:  # warm-up search done
                    return self
            except httpx.TransportError:
                pass
            if not self.thread.is_alive():
                raise SystemExit("the server thread stopped while starting")
            time.sleep(0.2)
        raise SystemExit(f"the server on {self.base} was not ready within 120 s")

    def __exit__(self, *_: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


# -- 1. overhead at concurrency 1 ---------------------------------------------------------------------
def schedule(n: int, paths: int) -> list[tuple[int, int]]:
    """(path, question) pairs: paths take turns, path j offset by j*n//paths questions, so every path gets every
    question once and, when n allows, no question runs twice in a row."""
    order = [(j, (k + j * n // paths) % n) for k in range(n) for j in range(paths)]
    repeats = sum(a[1] == b[1] for a, b in zip(order, order[1:]))
    if repeats:
        print(f"note: {repeats} back-to-back repeats of a question (use --limit >= {2 * paths})", flush=True)
    return order


def overhead(served: Served, questions: list[str], warm: str, llm_label: str, *, slow: bool = False
             ) -> tuple[list[tuple], dict]:
    """Each path over the same questions, ABAB. `slow` (a real model, seconds an answer): leave out the
    ChatSession.stream path and warm up through pipeline.run alone (a cold route costs milliseconds)."""
    import httpx

    from pilotfish.answer.chat import ChatSession
    from pilotfish.types import Answer

    pipeline = served.service.pipelines["basic"]
    client = httpx.Client(base_url=served.base, timeout=600)

    def streamed(q: str) -> Answer:
        last = None
        for item in ChatSession(pipeline, None, "api", []).stream(q):  # what the server's worker thread runs
            last = item
        assert isinstance(last, Answer)
        return last

    def chat_body(q: str) -> dict[str, Any]:
        return {"model": "basic", "messages": [{"role": "user", "content": q}]}

    # (name, call, (text, seconds the pipeline itself took) of the Answer or of a 200 response's JSON)
    paths: list[tuple[str, Callable[[str], Any], Callable[[Any], tuple[str, float]]]] = [
        ("in process: pipeline.run", pipeline.run, lambda a: (a.text, a.seconds)),
        ("in process: ChatSession.stream", streamed, lambda a: (a.text, a.seconds)),
        ("POST /api/ask", lambda q: client.post("/api/ask", json={"question": q}),
         lambda d: (d["answer"], d["seconds"])),
        ("POST /v1/chat/completions", lambda q: client.post("/v1/chat/completions", json=chat_body(q)),
         lambda d: (d["choices"][0]["message"]["content"], d["pilotfish"]["seconds"]))]

    def read(name: str, out: Any, pick: Callable[[Any], tuple[str, float]]) -> tuple[str, float]:
        if not isinstance(out, httpx.Response):
            return pick(out)
        if out.status_code != 200:
            raise SystemExit(f"{name} answered {out.status_code}: {out.text[:300]}")
        return pick(out.json())

    if slow:
        paths = [path for path in paths if not path[0].endswith("ChatSession.stream")]
    for name, call, pick in paths[:1] if slow else paths:  # warm up (models loaded) on a question not measured
        read(name, call(warm), pick)
    client.get("/v1/models").raise_for_status()  # the connection open
    ms: dict[str, list[float]] = {name: [] for name, _, _ in paths}
    outside: dict[str, list[float]] = {name: [] for name, _, _ in paths}  # ms around the pipeline's own time
    texts: dict[str, dict[int, str]] = {name: {} for name, _, _ in paths}
    llm_calls = 0
    for step, (j, i) in enumerate(schedule(len(questions), len(paths)), 1):
        name, call, pick = paths[j]
        start = time.perf_counter()
        out = call(questions[i])  # httpx has read the whole body when post() returns
        ms[name].append((time.perf_counter() - start) * 1000)
        texts[name][i], inside = read(name, out, pick)
        outside[name].append(ms[name][-1] - inside * 1000)
        if j == 0:
            llm_calls += out.usage is not None and out.usage.calls > 0
        if step % (5 * len(paths)) == 0:
            print(f"  {llm_label}: {step // len(paths)}/{len(questions)} rounds", flush=True)
    client.close()
    base, base_p50 = mean(ms["in process: pipeline.run"]), percentile(ms["in process: pipeline.run"], 50)
    rows = []
    for name, _, _ in paths:
        m, p50 = mean(ms[name]), percentile(ms[name], 50)
        first = name.endswith("pipeline.run")
        rows.append((llm_label, name, len(ms[name]), f"{p50:,.1f}", f"{m:,.1f}",
                     "-" if first else f"{(m - base) / base:+.1%}",
                     "-" if first else f"{(p50 - base_p50) / base_p50:+.1%}",
                     f"{mean(outside[name]):,.1f}", "-" if first else f"{mean(outside[name]) / base:.2%}"))
    same = {name: sum(texts[name][i] == texts["in process: pipeline.run"][i] for i in range(len(questions)))
            for name, _, _ in paths}
    return rows, {"ms": ms, "outside_ms": outside, "same_text_as_run": same, "questions_reaching_the_llm": llm_calls}


# -- 2. search throughput ---------------------------------------------------------------------------
async def _hammer(base: str, method: str, path: str, bodies: list[dict[str, Any] | None], concurrency: int,
                  timeout: float = 60.0) -> dict[str, Any]:
    """Send every body (None: GET) with `concurrency` requests in flight; latencies, statuses, wall time.

    Each of the `concurrency` workers has its own one-connection client: httpcore's pool checks every one of
    its connections on each request, which with 32 connections in one pool cost more CPU than the server."""
    import httpx

    clients = [httpx.AsyncClient(base_url=base, timeout=timeout, limits=httpx.Limits(max_connections=1))
               for _ in range(concurrency)]

    async def one(client: httpx.AsyncClient, body: dict[str, Any] | None) -> tuple[float, int]:
        start = time.perf_counter()
        try:
            r = await (client.post(path, json=body) if method == "POST" else client.get(path))
            status = r.status_code
        except httpx.TimeoutException:
            status = -1
        return (time.perf_counter() - start) * 1000, status

    pending = iter(range(len(bodies)))
    ms, statuses = [0.0] * len(bodies), [0] * len(bodies)

    async def worker(client: httpx.AsyncClient) -> None:
        for i in pending:
            ms[i], statuses[i] = await one(client, bodies[i])

    try:
        await asyncio.gather(*(one(c, bodies[i % len(bodies)]) for i, c in enumerate(clients)))  # connect first
        start = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        wall = time.perf_counter() - start
    finally:
        for c in clients:
            await c.aclose()
    return {"ms": ms, "statuses": statuses, "wall": wall}


async def _batched(batcher: Any, queries: list[str], concurrency: int) -> dict[str, Any]:
    """`concurrency` tasks searching through the server's SearchBatcher, in this event loop (no HTTP)."""
    gate, ms = asyncio.Semaphore(concurrency), []
    batcher.batches.clear()

    async def one(q: str) -> None:
        async with gate:
            t = time.perf_counter()
            await batcher.search(q, mode="hybrid", top_k=10, filters=None)
            ms.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*[one(q) for q in queries])
    return {"ms": ms, "wall": time.perf_counter() - start, "mean_batch": mean(batcher.batches)}


def search_load(served: Served, queries: list[str]) -> tuple[list[tuple], dict]:
    from pilotfish.serve.batcher import SearchBatcher

    kb = served.service.kb
    rows, raw = [], {}

    def row(target: str, mode: str, concurrency: int, ms: list[float], wall: float, errors: int) -> None:
        rows.append((target, mode, concurrency, len(ms), f"{len(ms) / wall:,.1f}", f"{percentile(ms, 50):.1f}",
                     f"{percentile(ms, 99):.1f}", errors))
        raw[f"{target} {mode} c{concurrency}"] = {"ms": ms, "wall": wall, "errors": errors}
        print(f"  {target:28s} {mode:6s} c={concurrency:<3d} {len(ms) / wall:8.1f}/s  p50 {percentile(ms, 50):7.1f} ms"
              f"  p99 {percentile(ms, 99):7.1f} ms  errors {errors}", flush=True)

    for mode in ("hybrid", "bm25"):
        kb.search_documents(queries[0], mode=mode, top_k=10)
        ms = []
        start = time.perf_counter()
        for q in queries:
            t = time.perf_counter()
            kb.search_documents(q, mode=mode, top_k=10)
            ms.append((time.perf_counter() - t) * 1000)
        row("in process: search_documents", mode, 1, ms, time.perf_counter() - start, 0)
    embedder = (kb.current_dense() or kb.new_dense()).embedder  # what hybrid spends on the query alone
    ms = []
    start = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        embedder.encode_queries([q])
        ms.append((time.perf_counter() - t) * 1000)
    row("in process: encode_queries", "MiniLM", 1, ms, time.perf_counter() - start, 0)
    for concurrency in CONCURRENCY:  # the server's batcher without HTTP: what batching alone gives
        got = asyncio.run(_batched(SearchBatcher(kb), queries, concurrency))
        row("in process: SearchBatcher", "hybrid", concurrency, got["ms"], got["wall"], 0)
        raw[f"in process: SearchBatcher hybrid c{concurrency}"]["mean_batch"] = got["mean_batch"]
    for concurrency in CONCURRENCY:
        got = asyncio.run(_hammer(served.base, "GET", "/healthz", [None] * len(queries), concurrency))
        row("GET /healthz", "-", concurrency, got["ms"], got["wall"], sum(s != 200 for s in got["statuses"]))
    for mode in ("hybrid", "bm25"):
        bodies: list[dict[str, Any] | None] = [{"query": q, "k": 10, "mode": mode} for q in queries]
        for concurrency in CONCURRENCY:
            got = asyncio.run(_hammer(served.base, "POST", "/api/search", bodies, concurrency))
            row("POST /api/search", mode, concurrency, got["ms"], got["wall"],
                sum(s != 200 for s in got["statuses"]))
    return rows, raw


# -- 3. many chat clients against one local model ------------------------------------------------------
async def _wave(base: str, questions: list[str], timeout: float) -> list[dict[str, Any]]:
    import httpx

    limits = httpx.Limits(max_connections=len(questions), max_keepalive_connections=len(questions))
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
        async def one(q: str) -> dict[str, Any]:
            start = time.perf_counter()
            body = {"model": "short", "messages": [{"role": "user", "content": q}]}
            try:
                r = await client.post("/v1/chat/completions", json=body)
            except httpx.TimeoutException:
                return {"kind": "hung", "seconds": time.perf_counter() - start}
            except httpx.TransportError as err:
                return {"kind": "other", "status": type(err).__name__, "seconds": time.perf_counter() - start}
            seconds = time.perf_counter() - start
            try:
                code = (r.json().get("error") or {}).get("code") if r.status_code != 200 else None
            except ValueError:  # not JSON
                code = r.text[:100]
            if r.status_code == 200:
                kind = "answered"
            elif r.status_code == 429 and r.headers.get("retry-after"):
                kind = "refused"
            elif r.status_code >= 500:
                kind = "5xx"
            else:
                kind = "other"
            return {"kind": kind, "status": r.status_code, "code": code, "seconds": seconds,
                    "retry_after": r.headers.get("retry-after")}

        return list(await asyncio.gather(*(one(q) for q in questions)))


def metric(text: str, name: str) -> float | None:
    """A sample's value in Prometheus text (`name` with its labels, if any, as written there)."""
    for line in text.splitlines():
        if line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return None


def queue_load(served: Served, questions: list[str], clients: int, waves: int, timeout: float
               ) -> tuple[list[tuple], dict, bool]:
    import httpx

    service = served.service
    rows, raw, passed = [], {}, True
    warm = httpx.post(served.base + "/v1/chat/completions", timeout=timeout,  # a question not in the waves
                      json={"model": "short", "messages": [{"role": "user", "content": questions[clients]}]})
    warm.raise_for_status()
    for wave in range(1, waves + 1):
        before = len(service.local.waits)
        start = time.perf_counter()
        results = asyncio.run(_wave(served.base, questions[:clients], timeout))
        wall = time.perf_counter() - start
        waits = list(service.local.waits)[before:]
        count = {k: sum(r["kind"] == k for r in results) for k in ("answered", "refused", "5xx", "hung", "other")}
        answered = [r["seconds"] for r in results if r["kind"] == "answered"]
        refused = [r["seconds"] * 1000 for r in results if r["kind"] == "refused"]
        retry = sorted(int(r["retry_after"]) for r in results if r["kind"] == "refused")
        codes = sorted({str(r.get("code")) for r in results if r["kind"] == "refused"})
        ok = count["5xx"] == 0 and count["hung"] == 0 and count["other"] == 0
        passed &= ok
        left = {"running": service.local.running, "waiting": service.local.waiting}
        rows.append((wave, clients, count["answered"], count["refused"], count["5xx"], count["hung"], count["other"],
                     f"{percentile(waits, 50):.1f} / {percentile(waits, 99):.1f}",
                     f"{percentile(answered, 50):.1f} / {max(answered, default=float('nan')):.1f}",
                     f"{percentile(refused, 50):.0f}" if refused else "-", f"{retry[0]}-{retry[-1]}" if retry else "-",
                     f"{wall:.0f}", "pass" if ok else "FAIL"))
        raw[f"wave {wave}"] = {"results": results, "waits": waits, "wall": wall, "refusal_codes": codes,
                               "left_in_queue": left}
        print(f"  wave {wave}: {count} in {wall:.0f}s; refusal codes {codes}; queue after: {left}", flush=True)
    text = httpx.get(served.base + "/metrics", timeout=10).text
    raw["metrics"] = {name: metric(text, name) for name in (
        "pilotfish_queue_depth", "pilotfish_answers_running", "pilotfish_queue_wait_seconds_count",
        "pilotfish_queue_wait_seconds_sum", 'pilotfish_rejected_total{reason="queue"}')}
    print(f"  /metrics after the waves: {raw['metrics']}", flush=True)
    return rows, raw, passed


# -- the knowledge base -------------------------------------------------------------------------------
def scifact_kb() -> Any:
    """The SciFact KB of scifact_retrieval.py (MiniLM), built the same way when it is not there yet."""
    from pilotfish.knowledge.base import KnowledgeBase

    if (KB_DIR / "pilotfish.db").is_file():
        kb = KnowledgeBase.open(KB_DIR)
        if kb.has_text():
            return kb
    print(f"building the SciFact knowledge base in {KB_DIR.relative_to(OUT.parent.parent)} ...", flush=True)
    kb = KnowledgeBase.open(KB_DIR, create=True)
    kb.ingest([DATA / "scifact" / "corpus.jsonl.gz"])
    return kb


def short_pipeline(max_tokens: int, top_k: int) -> Path:
    """The basic pipeline (its abstention check included) with a short prompt and answer, for the queue test."""
    from pilotfish.answer.spec import DEFAULT_ABSTAIN

    FOLDER.mkdir(parents=True, exist_ok=True)
    path = FOLDER / "short.toml"
    verify = "\n".join(f"{k} = {json.dumps(v)}" for k, v in DEFAULT_ABSTAIN.items())
    path.write_text(f'[pipeline]\nname = "short"\ndescription = "basic, with answers of at most {max_tokens} '
                    f'tokens from {top_k} passages"\n\n[answer]\nmax_tokens = {max_tokens}\n\n'
                    f'[retrieve]\ntop_k = {top_k}\n\n[verify]\n{verify}\n', encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=20, help="questions for the FakeLLM overhead runs")
    parser.add_argument("--qwen-limit", type=int, default=10, help="questions for the qwen2.5-0.5b overhead runs")
    parser.add_argument("--search-requests", type=int, default=300, help="requests per search measurement")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--waves", type=int, default=2)
    parser.add_argument("--queue-max-tokens", type=int, default=48, help="answer length in the queue test")
    parser.add_argument("--queue-top-k", type=int, default=2, help="passages in the queue test's prompt")
    parser.add_argument("--client-timeout", type=float, default=300.0, help="seconds before a queue-test request "
                                                                             "counts as hung")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--no-append", action="store_true", help="do not append to benchmarks/history.md")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if set(parts) - set(PARTS):
        raise SystemExit(f"unknown parts {sorted(set(parts) - set(PARTS))}: use {', '.join(PARTS)}")
    logging.basicConfig(level=logging.WARNING)

    from pilotfish.llms import resolve_llm
    from pilotfish.llms.fake import FakeLLM
    from pilotfish.llms.llamacpp import default_threads
    from pilotfish.serve.config import ServeConfig
    from pilotfish.serve.service import Service

    load = os.getloadavg()[0]
    _, queries, _ = beir("scifact")
    questions = list(queries.values())
    kb = scifact_kb()
    results: dict[str, Any] = {"args": vars(args), "load_average_1min": load}
    overhead_rows: list[tuple] = []
    notes: list[str] = []
    search_rows: list[tuple] = []
    queue_rows: list[tuple] = []
    queue_passed = None

    if "fake" in parts or "search" in parts:
        config = ServeConfig(kb=str(KB_DIR), llm="fake", rate_per_minute=HIGH, burst=HIGH)
        service = Service(config, kb=kb, llms={"fake": FakeLLM(replies=[REPLY], name="fake")})
        with Served(config, service) as served:
            if "fake" in parts:
                print(f"overhead, FakeLLM, {args.limit} questions", flush=True)
                rows, raw = overhead(served, questions[:args.limit], questions[args.limit], "FakeLLM")
                overhead_rows += rows
                results["overhead_fake"] = raw
                notes.append(_reached("FakeLLM", raw["questions_reaching_the_llm"], args.limit))
            if "search" in parts:
                print(f"/api/search, {args.search_requests} requests per row", flush=True)
                wanted = [questions[i % len(questions)] for i in range(args.search_requests)]
                search_rows, results["search"] = search_load(served, wanted)

    if "qwen" in parts or "queue" in parts:
        llm = resolve_llm(QWEN)
        short = short_pipeline(args.queue_max_tokens, args.queue_top_k)
        config = ServeConfig(kb=str(KB_DIR), llm=QWEN, pipelines=("basic", str(short)), rate_per_minute=HIGH,
                             burst=HIGH)
        service = Service(config, kb=kb, llms={QWEN: llm})
        with Served(config, service) as served:
            if "qwen" in parts:
                print(f"overhead, {QWEN}, {args.qwen_limit} questions", flush=True)
                rows, raw = overhead(served, questions[:args.qwen_limit], questions[args.qwen_limit], QWEN,
                                     slow=True)
                overhead_rows += rows
                results["overhead_qwen"] = raw
                same = raw["same_text_as_run"]
                notes.append(_reached(QWEN, raw["questions_reaching_the_llm"], args.qwen_limit)
                             + " Answers identical to `pipeline.run`'s for "
                             + ", ".join(f"{v}/{args.qwen_limit} ({k})" for k, v in same.items()
                                         if not k.endswith("pipeline.run")) + ".")
            if "queue" in parts:
                print(f"queue: {args.clients} clients x {args.waves} waves", flush=True)
                queue_rows, results["queue"], queue_passed = queue_load(
                    served, questions[:max(args.clients, 1) + 1], args.clients, args.waves, args.client_timeout)

    FOLDER.mkdir(parents=True, exist_ok=True)
    saved = FOLDER / f"last_run-{'-'.join(parts)}.json"
    saved.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    tables = []
    if overhead_rows:
        tables.append("Server overhead at concurrency 1 (target: <= 5% of the in-process time). Outside the pipeline: "
                      "each request's time less the seconds its Answer reports the pipeline took (HTTP, JSON, "
                      "queue and thread hand-off), paired per request, so load on the machine cancels out:\n\n"
                      + markdown_table(
            ("LLM", "path", "requests", "p50 ms", "mean ms", "overhead (mean)", "overhead (p50)",
             "outside the pipeline, mean ms", "outside / in-process mean"),
            overhead_rows))
    if search_rows:
        tables.append("/api/search on SciFact, top 10 documents (target: >= 100 requests/s at concurrency 8):\n\n"
                      + markdown_table(("target", "mode", "concurrency", "requests", "requests/s", "p50 ms", "p99 ms",
                                        "errors"), search_rows))
    if queue_rows:
        tables.append(f"{args.clients} chat clients at once against {QWEN} (local_concurrency 1, queue_size 8; "
                      f"answers of at most {args.queue_max_tokens} tokens from {args.queue_top_k} passages; "
                      f"client timeout {args.client_timeout:.0f} s):"
                      "\n\n" + markdown_table(
                          ("wave", "clients", "answered", "refused 429 + Retry-After", "5xx", "hung", "other",
                           "queue wait p50 / p99 s", "answered in p50 / max s", "refused in p50 ms",
                           "Retry-After s", "wave s", "result"), queue_rows))
    for llm_label in dict.fromkeys(r[0] for r in overhead_rows):
        served_rows = [r for r in overhead_rows if r[0] == llm_label and r[1].startswith("POST")]
        met = [float(r[5].rstrip("%")) <= 5 for r in served_rows]
        notes.append(f"{llm_label}: server overhead, ABAB means: " + ", ".join(f"{r[5]} ({r[1]})" for r in served_rows)
                     + f" ({'met' if all(met) else 'not met' if not any(met) else 'partly met'}); outside the "
                     "pipeline, paired: " + ", ".join(f"{r[8]} of the in-process time ({r[1]})" for r in served_rows)
                     + ". Target <= 5%.")
    if queue_rows:
        notes.append(f"Queue test: {'passed' if queue_passed else 'FAILED'} (no 5xx, none hung, every request "
                     "answered or refused with 429 and Retry-After).")
    table = "\n\n".join(tables)
    print()
    print(table)
    if search_rows:
        notes.append(_search_note(results["search"]))
    notes.append(f"Server and clients in one process (uvicorn in a thread, httpx clients), SciFact knowledge base "
                 f"(MiniLM, hybrid = BM25 + MiniLM); llama.cpp threads: {default_threads()}; 1-minute load average at "
                 f"the start: {load:.2f}. Rate limit raised so that every 429 comes from the queue.")
    for n in notes:
        print(n)
    if not args.no_append and table:
        command = "python benchmarks/serve_load.py" + "".join(
            f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k != "no_append" and v != parser.get_default(k))
        title = "pilotfish serve under load (serve_load.py" + ("" if set(parts) == set(PARTS) else
                                                               f", parts {', '.join(parts)}") + ")"
        append_history(title, table,
                       f"`{command}`.\n\n" + "\n\n".join(notes), area="Speed")


def _reached(llm: str, reached: int, asked: int) -> str:
    return (f"{llm}: {reached}/{asked} questions reached the LLM" + ("." if reached == asked else
            " (the others found no passage above the pipeline's min_similarity and abstained)."))


def _search_note(raw: dict[str, Any]) -> str:
    """Where a search request's time goes: the search itself (hybrid embeds the query with MiniLM), and the HTTP
    stack with its client (GET /healthz)."""
    def per(key: str) -> float:
        return mean(raw[key]["ms"]) if key in raw else float("nan")

    def rate(key: str) -> float:
        return len(raw[key]["ms"]) / raw[key]["wall"] if key in raw else float("nan")

    hybrid, bm25 = per("in process: search_documents hybrid c1"), per("in process: search_documents bm25 c1")
    return (f"Search cost per request at concurrency 1: in process hybrid {hybrid:.1f} ms, bm25 {bm25:.1f} ms (so "
            f"the query embedding and dense search take about {hybrid - bm25:.1f} ms); through HTTP hybrid "
            f"{per('POST /api/search hybrid c1'):.1f} ms, bm25 {per('POST /api/search bm25 c1'):.1f} ms; "
            f"GET /healthz {per('GET /healthz - c1'):.1f} ms. At concurrency 8: /healthz "
            f"{rate('GET /healthz - c8'):,.0f}/s, /api/search bm25 {rate('POST /api/search bm25 c8'):,.0f}/s, "
            f"hybrid {rate('POST /api/search hybrid c8'):,.0f}/s: the target (>= 100/s, hybrid) is "
            f"{'met' if rate('POST /api/search hybrid c8') >= 100 else 'missed'}.")


if __name__ == "__main__":
    main()
