"""BM25Retriever: score parity with rank-bm25, tokens, errors, files, filters and config."""

from __future__ import annotations

import random
import string
from collections import Counter

import numpy as np
import pytest
import rank_bm25

from pilotfish.component import Component
from pilotfish.errors import ConfigError, IndexStateError, QueryError
from pilotfish.retrievers.bm25 import BM25Retriever
from pilotfish.retrievers.corpus import ChunkCorpus, CorpusRow


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 9))))
    return sorted(words)


def _zipf_corpus(seed: int = 7, n_docs: int = 200) -> tuple[list[str], list[str]]:
    """Texts drawn from a Zipf-like vocabulary, so the head terms occur in most documents."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng, 400)
    weights = [1.0 / (r + 1) ** 1.1 for r in range(len(vocab))]
    texts = [" ".join(rng.choices(vocab, weights=weights, k=rng.randint(8, 60))) for _ in range(n_docs)]
    return texts, vocab


def _uniform_corpus(seed: int = 11, n_docs: int = 200) -> tuple[list[str], list[str]]:
    """Texts over a flat vocabulary: every term is rare (document frequency well under half)."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng, 600)
    texts = [" ".join(rng.choices(vocab, k=rng.randint(6, 30))) for _ in range(n_docs)]
    return texts, vocab


def _queries(texts: list[str], vocab: list[str], seed: int, n: int = 20) -> list[str]:
    """Queries mixing words from a document (some repeated), random vocabulary words and unknown words."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        doc_words = rng.choice(texts).split()
        words = rng.sample(doc_words, min(3, len(doc_words))) + rng.sample(vocab, 2)
        words.append(rng.choice(words))  # a repeated query term counts twice in both implementations
        if rng.random() < 0.3:
            words.append("zzzunknownzzz")
        out.append(" ".join(words))
    return out


def _okapi_retriever() -> BM25Retriever:
    return BM25Retriever(method="atire", idf_method="robertson", k1=1.5, b=0.75)


def _document_frequencies(tokens: list[list[str]]) -> Counter[str]:
    return Counter(t for doc in tokens for t in set(doc))


# --- parity with rank-bm25 ------------------------------------------------------------------------


def test_scores_match_rank_bm25_okapi_with_frequent_terms() -> None:
    texts, vocab = _zipf_corpus()
    retriever = _okapi_retriever()
    corpus = ChunkCorpus.from_texts(texts)
    tokens = retriever.tokenize(corpus.index_texts())
    df = _document_frequencies(tokens)
    assert max(df.values()) > len(texts) / 2, "the corpus must hold terms with negative Robertson idf"
    retriever.index(corpus)
    reference = rank_bm25.BM25Okapi(tokens, k1=1.5, b=0.75, epsilon=0.0)

    queries = _queries(texts, vocab, seed=1)
    # one query made only of the most frequent terms: every idf is floored to 0 in both
    queries.append(" ".join(t for t, _ in df.most_common(3)))
    checked_nonzero = 0
    for query in queries:
        q_tokens = retriever.tokenize([query])[0]
        expected = reference.get_scores(q_tokens)
        got = retriever.scores(query)
        assert got.shape == (len(texts),)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=query)
        checked_nonzero += int(np.count_nonzero(expected > 0))
    assert checked_nonzero > 100  # the comparison was not vacuous


def test_scores_match_rank_bm25_default_epsilon_when_no_term_is_frequent() -> None:
    texts, vocab = _uniform_corpus()
    retriever = _okapi_retriever()
    corpus = ChunkCorpus.from_texts(texts)
    tokens = retriever.tokenize(corpus.index_texts())
    assert max(_document_frequencies(tokens).values()) <= len(texts) / 2
    retriever.index(corpus)
    reference = rank_bm25.BM25Okapi(tokens, k1=1.5, b=0.75)  # epsilon=0.25, never applied here
    for query in _queries(texts, vocab, seed=2):
        expected = reference.get_scores(retriever.tokenize([query])[0])
        assert expected.max() > 0
        np.testing.assert_allclose(retriever.scores(query), expected, rtol=1e-5, atol=1e-5, err_msg=query)


def test_run_order_matches_rank_bm25_argsort() -> None:
    texts, vocab = _zipf_corpus(seed=3)
    retriever = _okapi_retriever()
    corpus = ChunkCorpus.from_texts(texts)
    tokens = retriever.tokenize(corpus.index_texts())
    retriever.index(corpus)
    reference = rank_bm25.BM25Okapi(tokens, k1=1.5, b=0.75, epsilon=0.0)
    k = 10
    strict_checks = 0
    for query in _queries(texts, vocab, seed=4):
        expected = reference.get_scores(retriever.tokenize([query])[0])
        order = np.argsort(-expected, kind="stable")
        n_positive = int(np.count_nonzero(expected > 1e-6))
        got = retriever.run(query, top_k=k)
        assert len(got) == min(k, n_positive)
        got_rows = [int(p.doc_id) for p in got]
        # each rank holds a document whose reference score is the reference's score at that rank
        np.testing.assert_allclose(expected[got_rows], expected[order[:len(got)]], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose([p.score for p in got], expected[got_rows], rtol=1e-5, atol=1e-5)
        assert all(p.retriever == "bm25" for p in got)
        top = expected[order[:len(got) + 1]]
        if len(top) > 1 and np.all(np.abs(np.diff(top)) > 1e-4):  # no ties: the ids must match exactly
            assert got_rows == [int(i) for i in order[:len(got)]]
            strict_checks += 1
    assert strict_checks >= 10


# --- tokens -------------------------------------------------------------------------------------


def test_english_stemmer_and_stopwords_shape_tokens() -> None:
    tokens = BM25Retriever().tokenize(["The dogs are running quickly"])[0]
    assert "run" in tokens and "dog" in tokens
    assert "running" not in tokens
    assert "the" not in tokens and "are" not in tokens


def test_no_stemmer_keeps_words_and_no_stopwords_keeps_them() -> None:
    assert BM25Retriever(stemmer=None).tokenize(["The dogs are running"])[0] == ["dogs", "running"]
    assert BM25Retriever(stemmer=None, stopwords=None).tokenize(["The dogs are running"])[0] == [
        "the", "dogs", "are", "running"]


def test_stemming_makes_inflections_match() -> None:
    corpus = ChunkCorpus.from_texts(["he was running home", "cats sleep all day"])
    stemmed, plain = BM25Retriever(), BM25Retriever(stemmer=None)
    stemmed.index(corpus)
    plain.index(corpus)
    assert [p.doc_id for p in stemmed.run("runs")] == ["0"]
    assert plain.run("runs") == []


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"method": "okapi-xyz"}, "okapi-xyz"),
    ({"idf_method": "idf-xyz"}, "idf-xyz"),
    ({"stemmer": "klingon"}, "klingon"),
    ({"k1": -0.5}, "-0.5"),
    ({"b": 1.5}, "1.5"),
    ({"top_k": 0}, "0"),
])
def test_bad_config_is_a_config_error_naming_the_value(kwargs: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        BM25Retriever(**kwargs)


def test_query_errors_and_unknown_words() -> None:
    retriever = BM25Retriever()
    retriever.index(ChunkCorpus.from_texts(["cats purr softly", "dogs bark loudly"]))
    for empty in ("", "   ", "\n\t"):
        with pytest.raises(QueryError):
            retriever.run(empty)
    with pytest.raises(QueryError):
        retriever.run_batch(["dogs", ""])
    assert retriever.run("zebra quokka") == []
    assert retriever.run("the and of") == []  # only stopwords
    assert not retriever.scores("zebra").any()


def test_use_before_index_is_an_index_state_error() -> None:
    retriever = BM25Retriever()
    with pytest.raises(IndexStateError):
        retriever.run("dogs")
    with pytest.raises(IndexStateError):
        retriever.scores("dogs")
    with pytest.raises(IndexStateError):
        retriever.save("/nonexistent-never-written")


# --- files --------------------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_scores(tmp_path) -> None:
    texts, vocab = _zipf_corpus(seed=5, n_docs=80)
    corpus = ChunkCorpus.from_texts(texts, metadatas=[{"parity": i % 2} for i in range(len(texts))])
    retriever = BM25Retriever(k1=1.2, b=0.6, method="lucene")
    retriever.index(corpus)
    retriever.save(tmp_path / "bm25")
    loaded = BM25Retriever.load(tmp_path / "bm25")
    assert loaded.to_config() == retriever.to_config()
    assert len(loaded.corpus) == len(corpus)
    for query in _queries(texts, vocab, seed=6, n=8):
        np.testing.assert_array_equal(loaded.scores(query), retriever.scores(query))
        assert loaded.run(query, filters={"parity": 1}) == retriever.run(query, filters={"parity": 1})


def test_save_without_corpus_loads_with_given_corpus(tmp_path) -> None:
    corpus = ChunkCorpus.from_texts(["cats purr softly", "dogs bark loudly"])
    retriever = BM25Retriever()
    retriever.index(corpus)
    retriever.save(tmp_path, include_corpus=False)
    assert not (tmp_path / "corpus.jsonl").exists()
    loaded = BM25Retriever.load(tmp_path, corpus=corpus)
    assert [p.doc_id for p in loaded.run("dogs")] == ["1"]


def test_load_of_empty_dir_is_an_index_state_error(tmp_path) -> None:
    with pytest.raises(IndexStateError, match=str(tmp_path)):
        BM25Retriever.load(tmp_path)


# --- filters ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def filtered() -> BM25Retriever:
    texts = [
        "solar panels convert sunlight",    # 0
        "solar power for homes",            # 1
        "solar eclipse observed",           # 2
        "solar wind and comets",            # 3
        "solar cells made of silicon",      # 4
    ]
    metas = [
        {"lang": "en", "tags": ["energy", "home"], "year": 2020},
        {"lang": "de", "tags": ["energy"], "year": 2021},
        {"lang": "en", "tags": ["space"], "year": 2021},
        {"lang": "fr", "tags": ["space", "energy"], "year": 2022},
        {"lang": "en", "year": 2022},
    ]
    sources = ["", "", "", "", "/data/cells.txt"]
    corpus = ChunkCorpus([CorpusRow(chunk_id=f"d{i}", doc_id=f"d{i}", text=t, source=s, metadata=m)
                          for i, (t, s, m) in enumerate(zip(texts, sources, metas))])
    retriever = BM25Retriever()
    retriever.index(corpus)
    return retriever


def _ids(passages) -> set[str]:
    return {p.doc_id for p in passages}


def test_unfiltered_finds_every_doc(filtered: BM25Retriever) -> None:
    assert _ids(filtered.run("solar")) == {"d0", "d1", "d2", "d3", "d4"}


@pytest.mark.parametrize(("filters", "expected"), [
    ({"lang": "en"}, {"d0", "d2", "d4"}),
    ({"lang": ["de", "fr"]}, {"d1", "d3"}),                  # values OR'ed
    ({"tags": "energy"}, {"d0", "d1", "d3"}),                # list-valued metadata
    ({"tags": ["home", "space"]}, {"d0", "d2", "d3"}),
    ({"lang": "en", "tags": "energy"}, {"d0"}),              # keys AND'ed
    ({"year": 2021}, {"d1", "d2"}),                          # values compare as strings
    ({"year": "2022", "lang": "en"}, {"d4"}),
    ({"doc_id": ["d1", "d3"]}, {"d1", "d3"}),                # top-level fields
    ({"source": "/data/cells.txt"}, {"d4"}),
    ({"lang": "es"}, set()),
    ({"missing_key": "x"}, set()),
])
def test_filters(filtered: BM25Retriever, filters: dict, expected: set[str]) -> None:
    got = filtered.run("solar", filters=filters)
    assert _ids(got) == expected
    scores_unfiltered = {p.doc_id: p.score for p in filtered.run("solar")}
    for p in got:  # filtering drops rows, it does not change the scores of the others
        assert p.score == pytest.approx(scores_unfiltered[p.doc_id])


def test_filtered_out_doc_never_appears_even_when_best(filtered: BM25Retriever) -> None:
    best = filtered.run("eclipse")[0].doc_id
    assert best == "d2"
    for top_k in (1, 3, 10):
        assert "d2" not in _ids(filtered.run("eclipse observed solar", top_k=top_k, filters={"lang": ["de", "fr"]}))
    batch = filtered.run_batch(["eclipse", "silicon cells"], filters={"lang": "fr"})
    assert all(p.doc_id == "d3" for ps in batch for p in ps)


# --- config -------------------------------------------------------------------------------------


def test_config_round_trip_keeps_behaviour() -> None:
    original = BM25Retriever(k1=0.9, b=0.4, method="bm25+", idf_method="lucene", stemmer=None, stopwords=None,
                             top_k=3)
    config = original.to_config()
    assert config["type"] == "pilotfish.retrievers.bm25.BM25Retriever"
    rebuilt = Component.from_config(config)
    assert type(rebuilt) is BM25Retriever
    assert rebuilt.to_config() == config
    assert BM25Retriever.from_config(config).top_k == 3
    corpus = ChunkCorpus.from_texts(["the running dogs", "a dog runs", "the cats", "dogs dogs dogs", "birds"])
    original.index(corpus)
    rebuilt.index(corpus)
    np.testing.assert_array_equal(original.scores("the dogs"), rebuilt.scores("the dogs"))
    assert len(rebuilt.run("dogs the")) <= 3


# --- degenerate corpora -------------------------------------------------------------------------


def test_corpus_of_only_stopwords_indexes_and_answers_nothing(tmp_path) -> None:
    retriever = BM25Retriever()
    retriever.index(ChunkCorpus.from_texts(["To be or not to be.", "the", ""]))
    assert retriever.run("to be") == [] and retriever.run("hamlet") == []
    assert retriever.scores("hamlet").tolist() == [0.0, 0.0, 0.0]
    retriever.save(tmp_path)
    assert BM25Retriever.load(tmp_path).run("hamlet") == []


def test_empty_corpus_indexes_saves_and_answers_nothing(tmp_path) -> None:
    retriever = BM25Retriever()
    retriever.index(ChunkCorpus([]))
    assert retriever.run("anything") == []
    retriever.save(tmp_path)
    assert BM25Retriever.load(tmp_path).run("anything", filters={"k": "v"}) == []
