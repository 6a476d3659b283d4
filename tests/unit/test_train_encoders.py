"""Training data for the retrieval models, and tiny real trainings of an embedder and a reranker (minilm-l6)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pilotfish.errors import ConfigError
from pilotfish.training.budget import TrainingBudget
from pilotfish.training.retrieval_data import (
    RetrievalPair,
    mine_hard_negatives,
    pairs_from_eval,
    read_pairs,
    split_held_out,
)
from pilotfish.training.retrieval_eval import RankingSet, ranking_metrics

COLOURS = ["red", "blue", "green", "yellow", "black", "white", "pink", "grey", "brown", "orange"]


def tiny_pairs(n: int = 20) -> list[RetrievalPair]:
    facts = [(f"what colour is crate {i}?", f"Crate {i} is painted {COLOURS[i % 10]}.") for i in range(n)]
    return [RetrievalPair(q, p, (facts[(i + 1) % n][1],)) for i, (q, p) in enumerate(facts)]


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(("line", "needle"), [
    ('["q", "p"]', "expected a JSON object"),
    ('{"query": "q"}', '"positive" must be a non-empty string'),
    ('{"query": " ", "positive": "p"}', '"query" must be a non-empty string'),
    ('{"query": "q", "positive": "p", "negatives": [1]}', '"negatives" must be a list of non-empty strings'),
    ('{"query": "q", "positive": "p", "negative": ["n"]}', "unknown field 'negative'"),
    ('{"query": "q", "positive": ', "not valid JSON"),
])
def test_read_pairs_refuses_a_bad_line_with_its_number_and_the_format(tmp_path: Path, line: str, needle: str) -> None:
    path = write_lines(tmp_path / "pairs.jsonl", '{"query": "q", "positive": "p"}', "", line)
    with pytest.raises(ConfigError) as caught:
        read_pairs(path)
    assert "line 3" in str(caught.value) and needle in str(caught.value)
    if "JSON object" in needle or "must be" in needle:
        assert '{"query": "...", "positive": "..."' in str(caught.value)  # what to write instead


def test_read_pairs_refuses_empty_and_missing_files_and_reads_good_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no pairs"):
        read_pairs(write_lines(tmp_path / "empty.jsonl", "", "  "))
    with pytest.raises(ConfigError, match="does not exist"):
        read_pairs(tmp_path / "missing.jsonl")
    pairs = read_pairs(write_lines(tmp_path / "ok.jsonl", '{"query": "q", "positive": "p", "negatives": "n"}'))
    assert pairs == [RetrievalPair("q", "p", ("n",), 1)]


def test_hard_negatives_exclude_every_positive_of_the_query() -> None:
    pairs = [RetrievalPair("q", "Title\nThe answer is here. More text."), RetrievalPair("q", "Second positive."),
             RetrievalPair("other", "Other positive.")]
    hits = [SimpleNamespace(text="The answer is here.", title="Title"),  # a chunk of the first positive
            SimpleNamespace(text="second   POSITIVE.", title=""),  # the second, spaced and cased otherwise
            SimpleNamespace(text="A wrong passage.", title="Doc"),
            SimpleNamespace(text="Other positive.", title=""),  # another query's positive is a fine negative
            SimpleNamespace(text="Another wrong one.", title="")]
    asked = []

    def search(queries: list[str], k: int) -> list[list[SimpleNamespace]]:
        asked.append((queries, k))
        return [hits for _ in queries]

    mined = mine_hard_negatives(pairs, search, per_query=2)
    assert asked == [(["q", "other"], 2 + 2 + 5)]
    assert mined[0].negatives == mined[1].negatives == ("Doc\nA wrong passage.", "Other positive.")
    assert "Other positive." not in mined[2].negatives
    assert mine_hard_negatives(pairs, search, per_query=0) == pairs


def test_held_out_split_keeps_a_query_s_pairs_together() -> None:
    pairs = [RetrievalPair(f"q{i // 2}", f"p{i}") for i in range(20)]
    train, held = split_held_out(pairs, 0.2, seed=1)
    assert len(held) == 4 and {p.query for p in train}.isdisjoint({p.query for p in held})
    with pytest.raises(ConfigError, match="--held-out"):
        split_held_out(pairs, 1.0)


def test_pairs_from_an_eval_run_use_gold_documents_and_retrieved_misses_as_negatives() -> None:
    records = [{"id": "1", "question": "who?", "retrieved": ["d2", "d1"]}, {"id": "2", "question": "no gold"}]
    pairs = pairs_from_eval(records, {"1": ["d1"]}, {"d1": "gold text", "d2": "wrong text"})
    assert pairs == [RetrievalPair("who?", "gold text", ("wrong text",))]


def test_ranking_set_and_metrics() -> None:
    held = RankingSet.from_pairs([RetrievalPair("a", "A", ("B",)), RetrievalPair("b", "B")], candidates=3)
    assert held.documents == ["A", "B"] and held.relevant == [[0], [1]] and held.candidates == [[0, 1], [1, 0]]
    perfect = ranking_metrics(held, [[(0, 1.0), (1, 0.0)], [(1, 1.0), (0, 0.0)]])
    worst = ranking_metrics(held, [[(1, 1.0), (0, 0.0)], [(0, 1.0), (1, 0.0)]])
    assert perfect["mrr@10"] == 1.0 and worst["mrr@10"] == 0.5


def test_budget_learning_rate_reaches_zero_at_the_limit() -> None:
    budget = TrainingBudget(total_steps=10, minutes=100, warmup=0.2)
    factors = []
    for _ in range(10):
        budget.step += 1
        factors.append(budget.lr_factor())
    assert factors[1] == 1.0 and factors[-1] == 0.0 and budget.finished()
    with pytest.raises(ConfigError, match="--minutes must be positive"):
        TrainingBudget(total_steps=1, minutes=0)


@pytest.fixture(scope="module")
def embedder_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A MiniLM trained on 20 pairs; 40 epochs cannot finish in 0.05 minutes, so the time limit stops it."""
    from pilotfish.training.embedder import EmbedderTrainingConfig, train_embedder

    out = tmp_path_factory.mktemp("embedder") / "model"
    pairs = tiny_pairs()
    report = train_embedder(pairs, [], EmbedderTrainingConfig(out=str(out), minutes=0.05, epochs=40, batch_size=8,
                                                               max_length=32, threads=1))
    return out, report


def test_time_limit_stops_training_cleanly_with_a_saved_model_and_card(embedder_dir: tuple[Path, dict]) -> None:
    out, report = embedder_dir
    card = json.loads((out / "training.json").read_text())
    assert report["stopped_by"] == "minutes" and card["steps"] == report["steps"] >= 1
    assert card["kind"] == "embedding" and card["held_out"] == {"before": None, "after": None}
    assert (out / "modules.json").is_file() and (out / "model.safetensors").is_file()
    assert not (out / "base").exists()


def test_a_trained_embedder_loads_by_folder_and_by_registered_name(embedder_dir: tuple[Path, dict]) -> None:
    from pilotfish.models.embedding import Embedder
    from pilotfish.models.trained import register_model

    out, _ = embedder_dir
    by_folder = Embedder(model=str(out)).encode_queries(["what colour is crate 3?"])
    register_model("tiny-colours", out, role="embedding")
    by_name = Embedder(model="tiny-colours").encode_queries(["what colour is crate 3?"])
    assert by_folder.shape == (1, 384) and abs(float((by_folder @ by_name.T)[0, 0]) - 1.0) < 1e-5


def test_a_trained_reranker_exports_onnx_that_the_cross_encoder_scores(tmp_path: Path) -> None:
    from pilotfish.retrievers.rerank import CrossEncoderReranker
    from pilotfish.training.reranker import RerankerTrainingConfig, train_reranker

    pairs = tiny_pairs()
    report = train_reranker(pairs[:16], pairs[16:], RerankerTrainingConfig(
        out=str(tmp_path / "rr"), base="minilm-l6", minutes=0.2, batch_size=8, group=2, max_length=32, threads=1))
    assert (tmp_path / "rr" / "model.onnx").is_file() and (tmp_path / "rr" / "tokenizer.json").is_file()
    assert report["kind"] == "reranker" and report["held_out"]["before"] is None  # minilm-l6 is no reranker
    assert report["held_out"]["after"]["queries"] == 4
    scores = CrossEncoderReranker(model=str(tmp_path / "rr")).score([("what colour is crate 3?", "Crate 3 is red."),
                                                                    ("what colour is crate 3?", "Crate 9 is blue.")])
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)


def test_training_refuses_a_device_without_a_gpu_and_empty_data(tmp_path: Path) -> None:
    from pilotfish.training.embedder import EmbedderTrainingConfig, check_device, train_embedder

    with pytest.raises(ConfigError, match="use cpu or cuda"):
        check_device("tpu")
    with pytest.raises(ConfigError, match="no training pairs"):
        train_embedder([], [], EmbedderTrainingConfig(out=str(tmp_path / "m")))


def _bm25_kb(tmp_path: Path):  # noqa: ANN202 - a KnowledgeBase
    from pilotfish.knowledge.base import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"crate{i}.txt").write_text(f"Crate {i} is painted {COLOURS[i]}.", encoding="utf-8")
    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings={"dense": False, "tokenizer": "words"})
    kb.ingest([docs])
    return kb


def test_pairs_from_an_eval_run_read_through_the_cli_helper(tmp_path: Path) -> None:
    from pilotfish.cli.train_encoders import _eval_pairs
    from pilotfish.evaluation.store import EvalStore

    kb = _bm25_kb(tmp_path)
    (tmp_path / "evals").mkdir()
    store = EvalStore(f"sqlite:///{tmp_path / 'evals' / 'runs.db'}")
    run = store.start_run("run-1", dataset="crates", pipeline="basic", config={})
    store.add_record(run, "q1", {"question": "what colour is crate 1?", "retrieved": ["docs/crate0.txt"]})
    store.finish_run(run, {})
    dataset = write_lines(tmp_path / "crates.jsonl",
                          '{"id": "q1", "question": "what colour is crate 1?", "doc_ids": ["docs/crate1.txt"]}')
    pairs = _eval_pairs("run-1", dataset, tmp_path / "evals", None, kb)
    assert pairs == [RetrievalPair("what colour is crate 1?", "Crate 1 is painted blue.", ("Crate 0 is painted red.",))]
    with pytest.raises(ConfigError, match="no evaluation run named 'run-2'"):
        _eval_pairs("run-2", dataset, tmp_path / "evals", None, kb)


def test_pairs_from_liked_answers_in_the_feedback_table(tmp_path: Path) -> None:
    import datetime as dt

    from pilotfish.knowledge.store import FeedbackRow
    from pilotfish.training.retrieval_data import pairs_from_feedback

    kb = _bm25_kb(tmp_path)
    chunk = kb.corpus().rows[2].chunk_id
    with kb.store.transaction() as session:
        for rating, question in ((1, "liked question"), (-1, "disliked question"), (0, "unrated")):
            session.add(FeedbackRow(created_at=dt.datetime.now(), question=question, answer="a", rating=rating,
                                    evidence=[chunk, "gone-chunk"]))
    assert pairs_from_feedback(kb.store) == [RetrievalPair("liked question", "Crate 2 is painted green.")]
