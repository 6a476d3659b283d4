"""ChunkCorpus, HybridRetriever fusion, the FAISS index factory, DenseRetriever (no model) and the
reranker's ordering (no model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from pilotfish.component import Component
from pilotfish.errors import ConfigError, IndexStateError, QueryError
from pilotfish.retrievers import dense as dense_module
from pilotfish.retrievers import index as fi
from pilotfish.retrievers.bm25 import BM25Retriever
from pilotfish.retrievers.corpus import ChunkCorpus, CorpusRow, parse_filters
from pilotfish.retrievers.dense import DenseRetriever
from pilotfish.retrievers.hybrid import HybridRetriever
from pilotfish.retrievers.rerank import CrossEncoderReranker
from pilotfish.types import Chunk, Passage

# --- ChunkCorpus --------------------------------------------------------------------------------


def test_corpus_save_load_round_trip_keeps_unicode_and_metadata(tmp_path) -> None:
    rows = [
        CorpusRow(chunk_id="ü::0", doc_id="ü", text="Grüße aus Köln — naïve café ☕\nzweite Zeile", title="Grüße",
                  source="/tmp/ü.txt", metadata={"lang": "de", "tags": ["a", "ß"], "n": 3, "nested": {"k": [1, 2]}}),
        CorpusRow(chunk_id="zh::0", doc_id="zh", text="中文文本 with \"quotes\" and \\backslash", metadata={}),
        CorpusRow(chunk_id="e::0", doc_id="e", text="emoji 🐟 line\u2028separator", title="", source=""),
    ]
    corpus = ChunkCorpus(rows)
    corpus.save(tmp_path / "c")
    raw = (tmp_path / "c" / "corpus.jsonl").read_text(encoding="utf-8")
    assert "Grüße" in raw  # stored readable, not \u-escaped
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.startswith(".")]  # no temp file left
    loaded = ChunkCorpus.load(tmp_path / "c")
    assert len(loaded) == 3
    for want, got in zip(rows, loaded.rows):
        assert got.chunk_id == want.chunk_id and got.doc_id == want.doc_id and got.text == want.text
        assert got.title == want.title and got.source == want.source
        assert got.metadata == (want.metadata or {})
    assert loaded.row_of("zh::0") == 1
    p = loaded.passage(0, 0.5, "x")
    assert (p.doc_id, p.score, p.retriever, p.metadata["tags"]) == ("ü", 0.5, "x", ["a", "ß"])


def test_corpus_from_chunks_applies_titles_and_sources() -> None:
    chunks = [Chunk(chunk_id="a::0", doc_id="a", text="alpha", metadata={"k": "v"}),
              Chunk(chunk_id="b::0", doc_id="b", text="beta")]
    corpus = ChunkCorpus.from_chunks(chunks, titles={"a": "Title A"}, sources={"b": "/b.txt"})
    assert corpus.rows[0].title == "Title A" and corpus.rows[0].source == ""
    assert corpus.rows[1].title == "" and corpus.rows[1].source == "/b.txt"
    with pytest.raises(ValueError):
        ChunkCorpus.from_texts(["x", "y"], ids=["only-one"])


def test_index_text_adds_title_unless_text_starts_with_it() -> None:
    corpus = ChunkCorpus([
        CorpusRow(chunk_id="1", doc_id="1", text="Body text here.", title="My Title"),
        CorpusRow(chunk_id="2", doc_id="2", text="My Title\nBody text here.", title="My Title"),
        CorpusRow(chunk_id="3", doc_id="3", text="No title at all."),
    ])
    assert corpus.index_texts() == ["My Title\nBody text here.", "My Title\nBody text here.", "No title at all."]


def test_parse_filters() -> None:
    assert parse_filters([]) == {}
    assert parse_filters(["collection=papers", " lang = en ", "collection=notes", "expr=a=b", "empty="]) == {
        "collection": ["papers", "notes"], "lang": ["en"], "expr": ["a=b"], "empty": [""]}
    for bad in ("novalue", "=x", "  =x"):
        with pytest.raises(QueryError, match="key=value"):
            parse_filters(["ok=1", bad])


def test_filter_mask_rejects_empty_key() -> None:
    corpus = ChunkCorpus.from_texts(["a"])
    assert corpus.filter_mask(None) is None and corpus.filter_mask({}) is None
    with pytest.raises(QueryError):
        corpus.filter_mask({"": "x"})


# --- HybridRetriever ----------------------------------------------------------------------------


def _p(chunk_id: str, score: float, retriever: str = "fake") -> Passage:
    return Passage(chunk_id=chunk_id, doc_id=chunk_id.split("::")[0], text=f"text of {chunk_id}", score=score,
                   retriever=retriever)


class FakeRetriever:
    """Returns a fixed ranked list (cut at top_k) and records the arguments it got."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        self.passages = list(passages)
        self.calls: list[dict[str, Any]] = []

    def run_batch(self, queries: Sequence[str], *, top_k: int | None = None,
                  filters: Any = None) -> list[list[Passage]]:
        self.calls.append({"queries": list(queries), "top_k": top_k, "filters": filters})
        return [self.passages[:top_k] for _ in queries]

    def to_config(self) -> dict[str, Any]:
        return {"type": "fake", "init": {}}


def test_rrf_fused_score_is_sum_of_weight_over_k_plus_rank() -> None:
    a = FakeRetriever([_p("x", 9.0), _p("y", 5.0), _p("z", 1.0)])
    b = FakeRetriever([_p("z", 0.9), _p("w", 0.8), _p("x", 0.1)])
    hybrid = HybridRetriever(retrievers=[a, b], fusion="rrf", weights=[2.0, 0.5], rrf_k=10, top_k=10)
    got = hybrid.run("q")
    expected = {
        "x": 2.0 / 11 + 0.5 / 13,
        "y": 2.0 / 12,
        "z": 2.0 / 13 + 0.5 / 11,
        "w": 0.5 / 12,
    }
    assert [p.chunk_id for p in got] == sorted(expected, key=lambda c: -expected[c])
    for p in got:
        assert p.score == pytest.approx(expected[p.chunk_id], rel=1e-12)
        assert p.retriever == "hybrid" and p.text == f"text of {p.chunk_id}"
    assert len({p.chunk_id for p in got}) == len(got)  # each chunk once


def test_rrf_default_weights_and_top_k() -> None:
    a = FakeRetriever([_p("x", 1.0), _p("y", 0.5)])
    b = FakeRetriever([_p("y", 3.0), _p("x", 2.0)])
    hybrid = HybridRetriever(retrievers=[a, b])  # rrf_k=60, weights 1
    got = hybrid.run("q", top_k=1)
    assert len(got) == 1
    assert got[0].score == pytest.approx(1 / 61 + 1 / 62)


def test_weighted_fusion_uses_min_max_per_list() -> None:
    a = FakeRetriever([_p("x", 10.0), _p("y", 6.0), _p("z", 2.0)])
    b = FakeRetriever([_p("y", 0.9), _p("z", 0.7), _p("w", 0.4)])
    hybrid = HybridRetriever(retrievers=[a, b], fusion="weighted", weights=[1.0, 3.0])
    got = {p.chunk_id: p.score for p in hybrid.run("q")}
    # a: x=1, y=0.5, z=0 ; b: y=1, z=0.6, w=0
    assert got == pytest.approx({"x": 1.0, "y": 0.5 + 3.0, "z": 0.0 + 3.0 * 0.6, "w": 0.0})
    assert [p.chunk_id for p in hybrid.run("q")][:3] == ["y", "z", "x"]


def test_weighted_fusion_single_item_and_equal_scores() -> None:
    a = FakeRetriever([_p("x", 4.0)])
    b = FakeRetriever([_p("y", 2.0), _p("z", 2.0)])
    got = {p.chunk_id: p.score for p in HybridRetriever(retrievers=[a, b], fusion="weighted").run("q")}
    assert got == pytest.approx({"x": 1.0, "y": 1.0, "z": 1.0})
    assert HybridRetriever(retrievers=[a], fusion="weighted").fuse([[]], top_k=5) == []


def test_candidate_k_is_honoured() -> None:
    a = FakeRetriever([_p(f"a{i}", 10.0 - i) for i in range(10)])
    b = FakeRetriever([_p(f"a{9 - i}", 10.0 - i) for i in range(10)])
    hybrid = HybridRetriever(retrievers=[a, b], candidate_k=3, top_k=10)
    got = hybrid.run("q", filters={"k": "v"})
    assert a.calls[-1]["top_k"] == 3 and b.calls[-1]["top_k"] == 3
    assert a.calls[-1]["filters"] == {"k": "v"}
    assert {p.chunk_id for p in got} == {"a0", "a1", "a2", "a9", "a8", "a7"}
    hybrid.run("q", top_k=5)  # a larger top_k asks each retriever for at least that many
    assert a.calls[-1]["top_k"] == 5


def test_run_batch_fuses_each_query_separately() -> None:
    class PerQuery(FakeRetriever):
        def run_batch(self, queries, *, top_k=None, filters=None):
            return [[_p(f"{q}-doc", 1.0)] for q in queries]

    hybrid = HybridRetriever(retrievers=[PerQuery([]), PerQuery([])])
    out = hybrid.run_batch(["q1", "q2"])
    assert [[p.chunk_id for p in ps] for ps in out] == [["q1-doc"], ["q2-doc"]]


@pytest.mark.parametrize("kwargs", [
    {"weights": [1.0]},
    {"weights": [1.0, 2.0, 3.0]},
    {"fusion": "borda"},
    {"rrf_k": -1},
    {"candidate_k": 0},
    {"top_k": 0},
])
def test_hybrid_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        HybridRetriever(retrievers=[FakeRetriever([]), FakeRetriever([])], **kwargs)
    with pytest.raises(ConfigError):
        HybridRetriever(retrievers=[])


def test_unknown_fusion_error_names_it() -> None:
    with pytest.raises(ConfigError, match="borda"):
        HybridRetriever(retrievers=[FakeRetriever([])], fusion="borda")


def test_hybrid_config_round_trip_with_real_retrievers() -> None:
    hybrid = HybridRetriever(retrievers=[BM25Retriever(k1=1.1), BM25Retriever(stemmer=None)], fusion="weighted",
                             weights=[0.3, 0.7], rrf_k=5, candidate_k=7, top_k=4)
    config = hybrid.to_config()
    rebuilt = Component.from_config(config)
    assert isinstance(rebuilt, HybridRetriever)
    assert rebuilt.to_config() == config
    assert [type(r) for r in rebuilt.retrievers] == [BM25Retriever, BM25Retriever]
    assert [r.to_config() for r in rebuilt.retrievers] == [r.to_config() for r in hybrid.retrievers]
    assert HybridRetriever.from_config(config).to_config() == config
    corpus = ChunkCorpus.from_texts(["cats purr", "dogs bark", "dogs and cats"])
    for r in hybrid.retrievers + rebuilt.retrievers:
        r.index(corpus)
    assert rebuilt.run("dogs") == hybrid.run("dogs")


# --- FAISS index factory ------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "kind"), [(1, "flat"), (49_999, "flat"), (50_000, "hnsw"), (999_999, "hnsw"),
                                         (1_000_000, "ivf"), (5_000_000, "ivf")])
def test_choose_kind_thresholds(n: int, kind: str) -> None:
    assert fi.choose_kind(n) == kind
    assert fi.choose_kind(n, "ivfpq") == "ivfpq"  # an explicit kind wins


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="annoy"):
        fi.choose_kind(10, "annoy")
    with pytest.raises(ConfigError, match="annoy"):
        DenseRetriever(index="annoy")
    with pytest.raises(ConfigError, match="tpu"):
        fi.build_index(np.eye(4, dtype="float32"), device="tpu")


def test_ivf_lists_bounds() -> None:
    assert fi.ivf_lists(1) == 1
    assert fi.ivf_lists(100) == 2            # capped by FAISS's 39 training points per cell
    assert fi.ivf_lists(1_000_000) == 4000   # about 4 * sqrt(n)


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    base = _unit(rng, 4000, 32)
    # queries near corpus points (as real queries are near their answers), plus a few random ones
    near = base[:150] + 0.3 / np.sqrt(32) * rng.standard_normal((150, 32)).astype("float32")
    queries = np.vstack([near, _unit(rng, 50, 32)]).astype("float32")
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = np.argmax(queries @ base.T, axis=1)
    return base, queries, truth


@pytest.fixture(scope="module")
def built(vectors) -> dict[str, Any]:
    base = vectors[0]
    return {kind: fi.build_index(base, kind=kind, threads=1) for kind in ("flat", "hnsw", "ivf", "ivfpq", "ivfsq8")}


@pytest.mark.parametrize(("kind", "min_recall"), [("flat", 1.0), ("hnsw", 0.9), ("ivf", 1.0), ("ivfpq", 0.9),
                                                   ("ivfsq8", 0.97)])
def test_build_index_recall_of_true_nearest_neighbour(vectors, built, kind: str, min_recall: float) -> None:
    base, queries, truth = vectors
    index = built[kind]
    assert fi.describe(index) == kind
    assert index.ntotal == len(base)
    nprobe = index.nlist if kind in fi.IVF_KINDS else None  # nprobe = nlist is an exhaustive scan
    scores, ids = fi.search(index, queries, 10, nprobe=nprobe)
    assert ids.shape == (len(queries), 10)
    if kind == "ivfpq":  # compressed codes: the true neighbour must be in the top 10
        recall = np.mean([truth[i] in ids[i] for i in range(len(queries))])
    else:
        recall = np.mean(ids[:, 0] == truth)
    assert recall >= min_recall, f"{kind} recall {recall}"
    if kind == "flat":
        np.testing.assert_allclose(scores[:, 0], (queries @ base.T).max(axis=1), rtol=1e-5)
        assert np.all(np.diff(scores, axis=1) <= 1e-6)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfpq", "ivfsq8"])
def test_search_with_allowed_ids_returns_only_allowed(vectors, built, kind: str) -> None:
    base, queries, _ = vectors
    rng = np.random.default_rng(1)
    allowed = np.sort(rng.choice(len(base), 300, replace=False))
    nprobe = built[kind].nlist if kind in fi.IVF_KINDS else None
    scores, ids = fi.search(built[kind], queries[:40], 10, allowed=allowed, nprobe=nprobe)
    returned = ids[ids >= 0]
    assert returned.size > 0
    assert set(returned.tolist()) <= set(allowed.tolist())
    if kind in ("flat", "ivf"):  # exact kinds: the best allowed row comes first
        best = allowed[np.argmax(queries[:40] @ base[allowed].T, axis=1)]
        assert np.array_equal(ids[:, 0], best)
    # fewer allowed rows than k: the rest is padded with -1, never a disallowed id
    few = np.array([3, 17], dtype="int64")
    _, ids = fi.search(built[kind], queries[:5], 10, allowed=few, nprobe=nprobe)
    assert set(ids[ids >= 0].tolist()) <= {3, 17}


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfpq", "ivfsq8"])
@pytest.mark.parametrize("mapped", [False, True], ids=["read", "memory-mapped"])
def test_save_load_index_round_trip(tmp_path, vectors, built, kind: str, mapped: bool) -> None:
    _, queries, _ = vectors
    path = tmp_path / f"{kind}.faiss"
    fi.save_index(built[kind], path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the temp file was renamed
    loaded = fi.load_index(path, mmap_min_bytes=0 if mapped else 2**62)
    assert fi.describe(loaded) == kind
    nprobe = built[kind].nlist if kind in fi.IVF_KINDS else None
    s1, i1 = fi.search(built[kind], queries[:20], 5, nprobe=nprobe)
    s2, i2 = fi.search(loaded, queries[:20], 5, nprobe=nprobe)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2)
    if mapped:  # the vectors or cells stay in the file, not copied into memory
        import faiss

        if kind in fi.IVF_KINDS:
            assert type(faiss.downcast_InvertedLists(loaded.invlists)).__name__ == "OnDiskInvertedLists"
        else:
            storage = faiss.downcast_index(loaded.storage) if kind == "hnsw" else loaded
            assert not storage.codes.is_owned


def test_cuda_without_gpu_is_a_config_error_naming_faiss_gpu() -> None:
    import faiss

    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        pytest.skip("a GPU build of faiss with a visible GPU is present")
    with pytest.raises(ConfigError, match="faiss-gpu"):
        fi.build_index(np.eye(8, dtype="float32"), kind="flat", device="cuda")


# --- DenseRetriever without a model -------------------------------------------------------------

N_DENSE, DIM = 300, 16


@pytest.fixture()
def dense_setup(monkeypatch):
    rng = np.random.default_rng(5)
    emb = _unit(rng, N_DENSE, DIM)
    metas = [{"group": ["even", "odd"][i % 2], "bucket": str(i % 7)} for i in range(N_DENSE)]
    corpus = ChunkCorpus.from_texts([f"text {i}" for i in range(N_DENSE)], ids=[f"r{i}" for i in range(N_DENSE)],
                                    metadatas=metas)
    queries = _unit(rng, 3, DIM)
    retriever = DenseRetriever(model="minilm-l6", top_k=8)
    retriever.index(corpus, embeddings=emb)
    calls: list[list[str]] = []

    def fake_encode(texts):
        calls.append(list(texts))
        return queries[:len(texts)].copy()

    monkeypatch.setattr(retriever.embedder, "encode_queries", fake_encode)
    return retriever, emb, queries, fake_encode


def test_dense_run_orders_by_cosine(dense_setup) -> None:
    retriever, emb, queries, _ = dense_setup
    got = retriever.run("anything")
    sims = emb @ queries[0]
    expected = np.argsort(-sims)[:8]
    assert [p.doc_id for p in got] == [f"r{i}" for i in expected]
    np.testing.assert_allclose([p.score for p in got], sims[expected], rtol=1e-5)
    assert all(p.retriever == "dense" for p in got)
    assert len(retriever.run("x", top_k=3)) == 3
    assert retriever.index_kind == "flat"
    batch = retriever.run_batch(["a", "b", "c"], top_k=2)
    assert [p.doc_id for p in batch[2]] == [f"r{i}" for i in np.argsort(-(emb @ queries[2]))[:2]]


@pytest.mark.parametrize("filters", [
    {"group": "odd"},
    {"group": "even", "bucket": ["1", "3"]},
    {"bucket": "6"},
    {"doc_id": ["r5", "r10", "r299"]},
    {"group": "none-such"},
])
def test_dense_filters_exact_and_faiss_paths_agree(dense_setup, monkeypatch, filters) -> None:
    retriever, emb, queries, _ = dense_setup
    mask = retriever.corpus.filter_mask(filters)
    allowed = np.flatnonzero(mask)
    exact = retriever.run_batch(["a", "b"], top_k=8, filters=filters)
    monkeypatch.setattr(dense_module, "EXACT_FILTER_MAX", 0)
    via_faiss = retriever.run_batch(["a", "b"], top_k=8, filters=filters)
    for q, (e_list, f_list) in enumerate(zip(exact, via_faiss)):
        sims = emb[allowed] @ queries[q]
        expected = [f"r{allowed[i]}" for i in np.argsort(-sims)[:8]]
        assert [p.doc_id for p in e_list] == expected
        assert [p.doc_id for p in f_list] == expected
        np.testing.assert_allclose([p.score for p in e_list], [p.score for p in f_list], rtol=1e-5)
        assert all(mask[int(p.doc_id[1:])] for p in e_list + f_list)


def test_dense_faiss_selector_path_on_hnsw(monkeypatch) -> None:
    rng = np.random.default_rng(9)
    emb = _unit(rng, 500, DIM)
    corpus = ChunkCorpus.from_texts([str(i) for i in range(500)], metadatas=[{"m": i % 5} for i in range(500)])
    retriever = DenseRetriever(index="hnsw")
    retriever.index(corpus, embeddings=emb)
    assert retriever.index_kind == "hnsw"
    q = _unit(rng, 1, DIM)
    monkeypatch.setattr(retriever.embedder, "encode_queries", lambda texts: q)
    monkeypatch.setattr(dense_module, "EXACT_FILTER_MAX", 0)
    got = retriever.run("x", top_k=5, filters={"m": 2})
    assert got and all(int(p.doc_id) % 5 == 2 for p in got)
    allowed = np.arange(2, 500, 5)
    assert got[0].doc_id == str(allowed[np.argmax(emb[allowed] @ q[0])])


def test_dense_save_load_round_trip_with_mmap(dense_setup, tmp_path, monkeypatch) -> None:
    retriever, emb, queries, fake_encode = dense_setup
    retriever.save(tmp_path / "dense")
    assert {p.name for p in (tmp_path / "dense").iterdir()} == {
        "index.faiss", "embeddings.npy", "corpus.jsonl", "dense_config.json"}
    loaded = DenseRetriever.load(tmp_path / "dense", threads=2)
    assert loaded.to_config()["init"]["threads"] == 2
    assert loaded.to_config()["init"]["top_k"] == 8
    assert isinstance(loaded.embeddings, np.memmap)
    np.testing.assert_array_equal(np.asarray(loaded.embeddings), emb)
    monkeypatch.setattr(loaded.embedder, "encode_queries", fake_encode)
    assert loaded.run("a") == retriever.run("a")
    assert loaded.run("a", filters={"group": "odd"}) == retriever.run("a", filters={"group": "odd"})
    monkeypatch.setattr(dense_module, "EXACT_FILTER_MAX", 0)
    assert loaded.run("a", filters={"bucket": "2"}) == retriever.run("a", filters={"bucket": "2"})


def test_dense_without_stored_embeddings_uses_faiss_for_filters(dense_setup, tmp_path, monkeypatch) -> None:
    _, emb, queries, fake_encode = dense_setup
    corpus = dense_setup[0].corpus
    retriever = DenseRetriever(store_embeddings=False, top_k=8)
    retriever.index(corpus, embeddings=emb)
    retriever.save(tmp_path)
    assert not (tmp_path / "embeddings.npy").exists()
    loaded = DenseRetriever.load(tmp_path)
    assert loaded.embeddings is None
    monkeypatch.setattr(loaded.embedder, "encode_queries", fake_encode)
    got = loaded.run("a", filters={"group": "even"})
    allowed = np.arange(0, N_DENSE, 2)
    assert [p.doc_id for p in got] == [f"r{allowed[i]}" for i in np.argsort(-(emb[allowed] @ queries[0]))[:8]]


def test_dense_errors(dense_setup, tmp_path) -> None:
    retriever = dense_setup[0]
    for empty in ("", "  "):
        with pytest.raises(QueryError):
            retriever.run(empty)
    with pytest.raises(IndexStateError):
        DenseRetriever().run("x")
    with pytest.raises(IndexStateError):
        DenseRetriever.load(tmp_path)
    with pytest.raises(ValueError):
        DenseRetriever().index(ChunkCorpus.from_texts(["a", "b"]), embeddings=np.zeros((3, 4), dtype="float32"))
    with pytest.raises(ConfigError, match="tpu"):
        DenseRetriever(device="tpu")


def test_dense_empty_corpus_returns_nothing(monkeypatch) -> None:
    retriever = DenseRetriever()
    retriever.index(ChunkCorpus([]), embeddings=np.zeros((0, 4), dtype="float32"))
    monkeypatch.setattr(retriever.embedder, "encode_queries",
                        lambda texts: pytest.fail("no query should be embedded for an empty corpus"))
    assert retriever.run("anything") == []
    assert retriever.index_kind == "empty"


# --- CrossEncoderReranker ordering (no model) ---------------------------------------------------


def _passages() -> list[Passage]:
    return [_p("a", 3.0, "bm25"), _p("b", 2.0, "bm25"), _p("c", 1.0, "")]


def test_rerank_order_without_fusion_sorts_by_score() -> None:
    reranker = CrossEncoderReranker()
    got = reranker.order(_passages(), [0.1, 0.9, 0.5])
    assert [(p.chunk_id, p.score) for p in got] == [("b", 0.9), ("c", 0.5), ("a", 0.1)]
    assert [p.retriever for p in got] == ["bm25+rerank", "rerank", "bm25+rerank"]


@pytest.mark.parametrize(("weight", "expected"), [
    # cross-encoder ranks: b=1, c=2, a=3; first-stage ranks: a=1, b=2, c=3; rrf_k=1
    (0.0, {"b": 1 / 2, "c": 1 / 3, "a": 1 / 4}),
    (1.0, {"b": 1 / 2 + 1 / 3, "a": 1 / 4 + 1 / 2, "c": 1 / 3 + 1 / 4}),
    (3.0, {"a": 1 / 4 + 3 / 2, "b": 1 / 2 + 3 / 3, "c": 1 / 3 + 3 / 4}),
])
def test_rerank_order_with_rrf_blends_first_stage(weight: float, expected: dict[str, float]) -> None:
    reranker = CrossEncoderReranker(fusion="rrf", first_stage_weight=weight, rrf_k=1)
    got = reranker.order(_passages(), [0.1, 0.9, 0.5])
    assert [p.chunk_id for p in got] == list(expected)
    for p in got:
        assert p.score == pytest.approx(expected[p.chunk_id])


def test_rerank_run_batch_with_stubbed_scores() -> None:
    reranker = CrossEncoderReranker(top_k=2)
    seen: list[tuple[str, str]] = []

    def fake_score(pairs):
        seen.extend(pairs)
        return [float(len(text)) for _, text in pairs]

    reranker.score = fake_score  # type: ignore[method-assign]
    titled = Passage(chunk_id="t", doc_id="t", text="short", score=1.0, title="A long title")
    plain = Passage(chunk_id="p", doc_id="p", text="a much longer text body", score=2.0)
    out = reranker.run_batch(["q1", "q2"], [[plain, titled, _p("x", 0.1)], []])
    assert seen[1] == ("q1", "A long title\nshort")
    assert [p.chunk_id for p in out[0]] == ["p", "t"]
    assert out[1] == []
    with pytest.raises(ValueError):
        reranker.run_batch(["q1"], [])


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"fusion": "weighted"}, "weighted"),
    ({"max_length": 4}, "4"),
    ({"max_length": 1024}, "1024"),
    ({"batch_size": 0}, "0"),
])
def test_rerank_config_errors(kwargs: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        CrossEncoderReranker(**kwargs)


def test_zscore_fusion_standardises_each_list() -> None:
    from pilotfish.retrievers.hybrid import HybridRetriever
    from pilotfish.types import Passage

    a = [Passage("x", "x", "", 10.0), Passage("y", "y", "", 0.0)]          # z: +1, -1
    b = [Passage("y", "y", "", 0.9), Passage("z", "z", "", 0.5), Passage("x", "x", "", 0.1)]  # z: +1.22, 0, -1.22
    h = HybridRetriever.__new__(HybridRetriever)  # fuse() needs no retrievers
    h.fusion, h.weights, h.rrf_k = "zscore", [1.0, 1.0], 60
    fused = h.fuse([a, b], top_k=3)
    scores = {p.chunk_id: p.score for p in fused}
    assert scores["y"] == pytest.approx(-1 + 1.224745, abs=1e-4)
    assert scores["x"] == pytest.approx(1 - 1.224745, abs=1e-4)
    assert scores["z"] == pytest.approx(0.0, abs=1e-9)
    assert [p.chunk_id for p in fused] == ["y", "z", "x"]
