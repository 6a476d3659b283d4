"""Evaluation groundwork: datasets (QA JSONL, HotpotQA, BEIR) and metrics (EM/F1, ranx, citations).

Light on imports: ranx (numba, pandas) loads on the first retrieval metric call.

>>> from pilotfish.evaluation import best_f1
>>> best_f1("the Eiffel Tower", ["Eiffel Tower"])
1.0
"""

from __future__ import annotations

from pilotfish.evaluation.datasets import EvalDataset, EvalItem, load_dataset
from pilotfish.evaluation.metrics import (
    answer_similarity,
    best_exact_match,
    best_f1,
    citation_scores,
    exact_match,
    f1,
    normalize_answer,
    per_query_retrieval,
    retrieval_metrics,
)

__all__ = [
    "EvalDataset",
    "EvalItem",
    "answer_similarity",
    "best_exact_match",
    "best_f1",
    "citation_scores",
    "exact_match",
    "f1",
    "load_dataset",
    "normalize_answer",
    "per_query_retrieval",
    "retrieval_metrics",
]
