"""evaluate(): run an answer pipeline over a dataset, score every item, store it, summarise.

Per item: SQuAD EM/F1 (best over gold answers), retrieval of the gold documents by the evidence
(recall@k, nDCG@k and MRR through ranx), citation precision/recall against the gold documents,
optional NLI groundedness of the answer in its evidence, and the answer's tokens, cost and seconds.
Items are stored as they finish (`EvalStore`), so an interrupted run resumes; wrap the pipeline's LLM
in `CachedLLM` and a re-run costs no LLM call.

A pipeline is anything with `run(question) -> Answer`: an `AnswerPipeline`, or `RetrievalOnly(kb)` to
score retrieval alone, without an LLM:

>>> import pathlib, tempfile
>>> from pilotfish.knowledge.base import KnowledgeBase
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "docs").mkdir()
>>> _ = (root / "docs" / "paris.txt").write_text("Paris is the capital of France.")
>>> _ = (root / "docs" / "seine.txt").write_text("The Seine is a river that flows through Paris.")
>>> kb = KnowledgeBase.open(root / "kb", create=True, settings={"dense": False})
>>> _ = kb.ingest([root / "docs"])
>>> from pilotfish.evaluation.datasets import EvalDataset, EvalItem
>>> data = EvalDataset("toy", [EvalItem("q1", "Which river flows through Paris?", [], ["docs/seine.txt"])])
>>> result = evaluate(RetrievalOnly(kb, mode="bm25"), data, name="bm25", metrics=["retrieval"])
>>> result.summary()["recall@5"], result.to_records()[0]["retrieved"][0]
(1.0, 'docs/seine.txt')
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pilotfish.errors import ConfigError, PilotfishError
from pilotfish.evaluation.datasets import EvalDataset, EvalItem
from pilotfish.evaluation.metrics import (
    answer_similarity,
    best_exact_match,
    best_f1,
    citation_scores,
    per_query_retrieval,
)
from pilotfish.evaluation.store import EvalStore

METRICS = ("answers", "retrieval", "citations", "groundedness", "similarity", "usage")
DEFAULT_METRICS = ("answers", "retrieval", "citations", "usage")
RETRIEVAL_K = 5


class RetrievalOnly:
    """A pipeline stand-in that only retrieves: evaluate a retriever change without any LLM call.
    `search` holds `KnowledgeBase.search` options (mode, top_k, rerank, filters); see the module docstring."""

    def __init__(self, kb: Any, **search: Any) -> None:
        self.kb, self.search = kb, search

    def run(self, question: str) -> Any:
        from pilotfish.types import Answer

        start = time.perf_counter()
        evidence = self.kb.search(question, **self.search)
        return Answer(question=question, answer="", evidence=evidence, answered=False,
                      seconds=time.perf_counter() - start)


@dataclass
class EvalResult:
    """One run: its name and id in the store, and its per-item records."""

    name: str
    run_id: int
    records: list[dict[str, Any]]
    seconds: float = 0.0

    def to_records(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.records]

    def summary(self) -> dict[str, Any]:
        return summarise(self.records)


def evaluate(pipeline: Any, dataset: EvalDataset, *, name: str, store: EvalStore | None = None,
             metrics: Sequence[str] = DEFAULT_METRICS, limit: int | None = None, pipeline_label: str = "",
             progress: Callable[[int, int], None] | None = None, checker: Any = None,
             concurrency: int = 1, embed: Callable[[list[str]], Any] | None = None) -> EvalResult:
    """Answer and score `dataset` (its first `limit` items) with `pipeline`; see the module docstring.
    The `similarity` group embeds answers and gold answers with `embed` (default: MiniLM)."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ConfigError(f"unknown metric group {', '.join(unknown)}: use {', '.join(METRICS)}")
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    if "groundedness" in metrics and checker is None:
        from pilotfish.verification.checker import NLIGroundednessChecker

        checker = NLIGroundednessChecker.default()
    if "similarity" in metrics and embed is None:
        from pilotfish.models.embedding import Embedder

        embed = Embedder(model="minilm-l6").encode_documents
    store = store or EvalStore("sqlite://")
    items = dataset.items[:limit] if limit else dataset.items
    run_id = store.start_run(name, dataset=dataset.name, pipeline=pipeline_label or type(pipeline).__name__,
                             config={"metrics": list(metrics), "limit": limit, "items": len(items)})
    done = store.done_ids(run_id)
    pending = [item for item in items if item.id not in done]
    start = time.perf_counter()

    def answer(item: EvalItem) -> dict[str, Any]:
        try:
            return score_item(item, pipeline.run(item.question), metrics, checker, embed)
        except PilotfishError as err:  # e.g. an API error after its retries: recorded, the run goes on
            return {"question": item.question, "answer": "", "answered": False, "gold": item.answers,
                    "retrieved": [], "error": str(err)} | ({"em": 0.0, "f1": 0.0} if item.answers else {})

    def keep(n: int, item: EvalItem, record: dict[str, Any]) -> None:
        # retrieval scores (ranx) are added here, in the calling thread, so the stored record carries them
        if "retrieval" in metrics and item.gold_doc_ids:
            record |= retrieval_scores(record["retrieved"], item.gold_doc_ids)
        store.add_record(run_id, item.id, record)
        if progress:
            progress(n, len(items))

    if concurrency > 1:  # API LLMs answer several questions at once; local models serialise on their lock
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(concurrency) as pool:
            results = zip(pending, pool.map(answer, pending))
            for n, (item, record) in enumerate(results, len(items) - len(pending) + 1):
                keep(n, item, record)
    else:
        for n, item in enumerate(pending, len(items) - len(pending) + 1):
            keep(n, item, answer(item))
    records = store.records(run_id)
    if "retrieval" in metrics:  # items stored without retrieval scores by an older version, when resumed
        add_retrieval([r for r in records if f"recall@{RETRIEVAL_K}" not in r], {i.id: i for i in items})
    result = EvalResult(name, run_id, records, time.perf_counter() - start)
    store.finish_run(run_id, result.summary())
    return result


def score_item(item: EvalItem, answer: Any, metrics: Sequence[str], checker: Any = None,
               embed: Callable[[list[str]], Any] | None = None) -> dict[str, Any]:
    """What is kept of one answer: the text, what it retrieved and cited, and its scores."""
    from pilotfish.prompts.builder import strip_citations

    text = strip_citations(answer.text)
    record: dict[str, Any] = {"question": item.question, "answer": answer.text, "answered": answer.answered,
                              "gold": item.answers, "retrieved": list(dict.fromkeys(p.doc_id for p in answer.evidence)),
                              "evidence": [p.text[:300] for p in answer.evidence[:3]],
                              "model": answer.model}  # which LLM wrote it (`train router --from-eval` reads it)
    if "answers" in metrics and item.answers:
        record["em"] = best_exact_match(text, item.answers) if answer.answered else 0.0
        record["f1"] = best_f1(text, item.answers) if answer.answered else 0.0
    if "similarity" in metrics and item.answers and embed is not None:  # best over the gold answers
        record["answer_similarity"] = (max(answer_similarity([text] * len(item.answers), item.answers, embed))
                                       if answer.answered and text else 0.0)
    if "citations" in metrics and item.gold_doc_ids and answer.answered:
        cited = [c.doc_id for c in answer.citations if c.known]
        record["citation_precision"], record["citation_recall"] = citation_scores(cited, item.gold_doc_ids)
    if "groundedness" in metrics and answer.answered:
        verdict = checker.check(answer.text, answer.evidence, question=item.question)
        record["groundedness"] = verdict.supported
    if "usage" in metrics and answer.usage is not None:
        u = answer.usage
        record |= {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "cost": u.cost,
                   "llm_calls": u.calls}
    record["seconds"] = answer.seconds
    return record


def retrieval_scores(retrieved: Sequence[str], gold_doc_ids: Sequence[str], k: int = RETRIEVAL_K) -> dict[str, float]:
    """recall@k, nDCG@k and MRR (cut at k) of the gold documents in the retrieved ones, in rank order (ranx).

    >>> {m: round(v, 4) for m, v in retrieval_scores(["d2", "d1"], ["d1"]).items()}
    {'recall@5': 1.0, 'ndcg@5': 0.6309, 'mrr@5': 0.5}
    """
    run = {"q": {d: 1.0 / (rank + 1) for rank, d in enumerate(retrieved)}}
    names = [f"recall@{k}", f"ndcg@{k}", f"mrr@{k}"]
    scores = per_query_retrieval({"q": {d: 1 for d in gold_doc_ids}}, run, names)["q"]
    return {m: scores[m] for m in names}


def add_retrieval(records: list[dict[str, Any]], items: dict[str, EvalItem], k: int = RETRIEVAL_K) -> None:
    """Add `retrieval_scores` to every record (with its "id") whose item names gold documents."""
    for r in records:
        item = items.get(r["id"])
        if item is not None and item.gold_doc_ids:
            r.update(retrieval_scores(r["retrieved"], item.gold_doc_ids, k))


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Means of every numeric score over the items that have it, plus counts and latency percentiles."""
    summary: dict[str, Any] = {"items": len(records),
                               "answered": sum(bool(r.get("answered")) for r in records) / max(1, len(records)),
                               "errors": sum("error" in r for r in records)}
    keys = sorted({k for r in records for k, v in r.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seconds"})
    for key in keys:
        values = [r[key] for r in records if isinstance(r.get(key), (int, float))]
        summary[key] = round(statistics.mean(values), 4)
    seconds = sorted(r["seconds"] for r in records if "seconds" in r)
    if seconds:
        summary["p50_seconds"] = round(seconds[len(seconds) // 2], 3)
        summary["p95_seconds"] = round(seconds[min(len(seconds) - 1, int(len(seconds) * 0.95))], 3)
    return summary
