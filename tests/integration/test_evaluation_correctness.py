"""pilotfish.evaluation against independent references on real data.

(a) SciFact test queries, BM25 top-100 run built with bm25s: `retrieval_metrics` and `per_query_retrieval`
    equal ranx called directly on qrels parsed here from the TSV.
(b) The 500 HotpotQA questions with varied predictions: EM/F1 equal a fresh re-implementation of the
    official SQuAD v1.1 evaluation script, on gold answers read here from the raw file.
(c) The multi-hop sets load whole: HotpotQA (500), 2WikiMultihopQA (500) and MuSiQue (210), every gold
    paragraph in the corpus, checked against the raw records.

The data lives in ../shared/benchmarks (or $PILOTFISH_BENCH_DATA), as for benchmarks/shared.py.
"""

from __future__ import annotations

import collections
import csv
import gzip
import json
import os
import re
import string
from pathlib import Path

import pytest

from pilotfish.evaluation import best_exact_match, best_f1, load_dataset, per_query_retrieval, retrieval_metrics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("PILOTFISH_BENCH_DATA", ROOT.parent / "shared" / "benchmarks"))
METRICS = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100"]


def need(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"benchmark data {path} not found; set PILOTFISH_BENCH_DATA to the folder holding {name}")
    return path


# -- (a) retrieval metrics vs ranx directly ---------------------------------------------------------
def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def test_scifact_bm25_metrics_equal_ranx_directly() -> None:
    bm25s = pytest.importorskip("bm25s")
    from ranx import Qrels, Run, evaluate

    folder = need("scifact")
    data = load_dataset(folder, split="test")
    assert data.corpus is not None and len(data.corpus) == 5183 and len(data) == 300

    reference_qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / "test.tsv").open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            reference_qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    qrels = {item.id: item.metadata["relevance"] for item in data}
    assert qrels == reference_qrels

    doc_ids = [doc["doc_id"] for doc in data.corpus]
    retriever = bm25s.BM25()
    retriever.index([tokens(f"{doc['title']} {doc['text']}") for doc in data.corpus], show_progress=False)
    vocab = retriever.vocab_dict
    query_tokens = [[t for t in tokens(item.question) if t in vocab] or ["the"] for item in data]
    hits, scores = retriever.retrieve(query_tokens, k=100, show_progress=False)
    run = {item.id: {doc_ids[int(d)]: float(s) for d, s in zip(hits[i], scores[i])} for i, item in enumerate(data)}

    ours = retrieval_metrics(qrels, run, METRICS)
    direct_run = Run(run)
    direct = evaluate(Qrels(reference_qrels), direct_run, METRICS)
    for metric in METRICS:
        assert ours[metric] == pytest.approx(float(direct[metric]), abs=1e-4), metric
    assert 0.5 < ours["ndcg@10"] < 0.8  # BM25 on SciFact: about 0.6-0.7 nDCG@10

    per_query = per_query_retrieval(qrels, run, METRICS)
    assert list(per_query) == list(qrels)
    for metric in METRICS:
        for qid, value in direct_run.scores[metric].items():
            assert per_query[qid][metric] == pytest.approx(float(value), abs=1e-4), (metric, qid)

    # half the queries unanswered: they count as zero, as when ranx gets empty results for them
    partial = {qid: docs for i, (qid, docs) in enumerate(run.items()) if i % 2 == 0}
    padded = Run({qid: partial.get(qid) or {"__no_result__": 0.0} for qid in reference_qrels})
    expected = evaluate(Qrels(reference_qrels), padded, METRICS)
    got = retrieval_metrics(qrels, partial, METRICS)
    for metric in METRICS:
        assert got[metric] == pytest.approx(float(expected[metric]), abs=1e-4), metric


# -- (b) EM/F1 vs a fresh SQuAD v1.1 reference ------------------------------------------------------
def squad_normalize(s: str) -> str:
    """The official SQuAD v1.1 script's normalize_answer, step by step."""
    def remove_articles(text: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def squad_f1(prediction: str, ground_truth: str) -> float:
    prediction_tokens = squad_normalize(prediction).split()
    ground_truth_tokens = squad_normalize(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def squad_em(prediction: str, ground_truth: str) -> float:
    return float(squad_normalize(prediction) == squad_normalize(ground_truth))


def prediction_for(i: int, record: dict) -> str:
    """Varied predictions: exact, decorated, truncated, a supporting sentence, an unrelated sentence."""
    answer = record["answer"]
    words = answer.split()
    titles = {title: sentences for title, sentences in record["context"]}
    supporting = [titles[t][k] for t, k in record["supporting_facts"] if t in titles and k < len(titles[t])]
    kind = i % 5
    if kind == 0:
        return answer
    if kind == 1:
        return f"The {answer.upper()}!"
    if kind == 2:
        return " ".join(words[:-1]) if len(words) > 1 else f"not {answer}, an answer"
    if kind == 3 and supporting:
        return supporting[0]
    sentences = [s for _, paragraph in record["context"] for s in paragraph]
    return sentences[0] if sentences else "no idea"


def read_records(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_hotpotqa_em_f1_equal_squad_reference() -> None:
    path = need("hotpotqa") / "dev_distractor_v1_sample500.jsonl.gz"
    records = read_records(path)
    data = load_dataset(path)
    n = len(records)
    assert len(data) == n == 500

    ours_em, ours_f1, ref_em, ref_f1 = [], [], [], []
    for i, (item, record) in enumerate(zip(data, records)):
        assert item.id == record["_id"] and item.answers == [record["answer"]]
        prediction = prediction_for(i, record)
        em, f1 = best_exact_match(prediction, item.answers), best_f1(prediction, item.answers)
        assert em is not None and f1 is not None
        ours_em.append(em)
        ours_f1.append(f1)
        ref_em.append(max(squad_em(prediction, gt) for gt in [record["answer"]]))
        ref_f1.append(max(squad_f1(prediction, gt) for gt in [record["answer"]]))
        assert em == pytest.approx(ref_em[-1], abs=1e-4) and f1 == pytest.approx(ref_f1[-1], abs=1e-4), prediction

    assert sum(ours_em) / n == pytest.approx(sum(ref_em) / n, abs=1e-4)
    assert sum(ours_f1) / n == pytest.approx(sum(ref_f1) / n, abs=1e-4)
    # the predictions exercise every regime: exact, partial and no overlap
    assert 0.3 < sum(ref_em) / n < 0.6 and any(0 < f < 1 for f in ref_f1) and ref_f1.count(0.0) > n // 15


# -- (c) the multi-hop sets load whole ----------------------------------------------------------------
def test_hotpotqa_500_every_gold_title_in_the_corpus() -> None:
    path = need("hotpotqa") / "dev_distractor_v1_sample500.jsonl.gz"
    records, data = read_records(path), load_dataset(path)
    assert data.format == "hotpotqa" and len(data) == len(records) == 500 and data.corpus is not None
    titles = {doc["doc_id"] for doc in data.corpus}
    for item, record in zip(data, records):
        assert item.gold_doc_ids == list(dict.fromkeys(t for t, _ in record["supporting_facts"]))
        assert len(item.gold_doc_ids) == 2 and set(item.gold_doc_ids) <= titles, item.id
        assert len(item.gold_passages) == 2 and "gold_titles_not_in_context" not in item.metadata


def test_2wiki_500_every_supporting_title_in_the_corpus() -> None:
    path = need("2wiki") / "dev_sample500.jsonl.gz"
    records, data = read_records(path), load_dataset(path)
    assert data.format == "2wiki" and len(data) == len(records) == 500 and data.corpus is not None
    corpus = {doc["doc_id"]: doc["text"] for doc in data.corpus}
    for item, record in zip(data, records):
        assert item.id == record["_id"] and item.answers == [record["answer"]]
        assert item.metadata["type"] == record["type"] and item.metadata["evidences"] == record["evidences"]
        assert item.gold_doc_ids == list(dict.fromkeys(t for t, _ in record["supporting_facts"]))
        assert set(item.gold_doc_ids) <= set(corpus), item.id
        assert item.gold_passages == [corpus[t] for t in item.gold_doc_ids]
    assert {item.metadata["type"] for item in data} == {"compositional", "bridge_comparison", "comparison",
                                                        "inference"}
    # sentences are joined with a space: no "word.Next" seams
    first = records[0]["context"][0][1]
    assert corpus[records[0]["context"][0][0]] == " ".join(first).strip()


def test_musique_210_every_supporting_paragraph_in_the_corpus() -> None:
    path = need("musique") / "musique_ans_dev_with_paragraphs_210.jsonl.gz"
    records, data = read_records(path), load_dataset(path)
    assert data.format == "musique" and len(data) == len(records) == 210 and data.corpus is not None
    corpus = {doc["doc_id"]: (doc["title"], doc["text"]) for doc in data.corpus}
    assert len(corpus) == len(data.corpus)  # doc ids are unique
    distinct = {(p["title"], p["paragraph_text"].strip()) for r in records for p in r["paragraphs"]}
    assert set(corpus.values()) == distinct  # every paragraph, each once
    for item, record in zip(data, records):
        supporting = [(p["title"], p["paragraph_text"].strip()) for p in record["paragraphs"] if p["is_supporting"]]
        assert item.id == record["id"] and item.answers[0] == record["answer"]
        assert set(item.answers) == {record["answer"], *record["answer_aliases"]}
        assert len(item.gold_doc_ids) == len(supporting) == len(record["question_decomposition"]) >= 2
        assert [corpus[d] for d in item.gold_doc_ids] == supporting, item.id
