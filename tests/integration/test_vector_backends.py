"""One contract for every vector backend: FAISS files and Milvus Lite (in this process, in a tmp folder).

Each test runs on both backends and holds them to the same answers: top-k ids and scores, filters exactly as
`ChunkCorpus.filter_mask` reads them, isolation between knowledge bases, re-indexing a changed chunk, a
save/load round trip and `vectors(rows)`. The last tests are backend-specific: memory-mapped embeddings, and
a Milvus that does not answer, which must leave the knowledge base as it was.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pilotfish.errors import BackendUnavailableError
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.retrievers import index as faiss_index
from pilotfish.retrievers import milvus as milvus_module
from pilotfish.retrievers.corpus import ChunkCorpus, CorpusRow
from pilotfish.retrievers.dense import DenseRetriever

pytestmark = pytest.mark.integration
pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

N, DIM = 240, 16
BACKENDS = ["faiss", "milvus-lite"]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "faiss" if request.param == "faiss" else f"milvus:///{tmp_path / 'vectors.db'}"


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _corpus(texts: list[str] | None = None) -> ChunkCorpus:
    """N rows with scalar, numeric and list-valued metadata, titles and sources (as an ingest sets them)."""
    texts = texts or [f"text {i}" for i in range(N)]
    return ChunkCorpus([
        CorpusRow(chunk_id=f"r{i}", doc_id=f"r{i}", text=texts[i], title=f"Title {i % 6}", source=f"/data/f{i % 9}.md",
                  metadata={"group": ["even", "odd"][i % 2], "bucket": i % 7, "tags": [f"t{i % 3}", f"u{i % 5}"],
                            "quote": 'say "hi"\\' if i % 11 == 0 else "plain", "odd key.x": str(i % 4)})
        for i in range(N)])


@pytest.fixture()
def setup(url: str) -> tuple[DenseRetriever, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    emb, queries = _unit(rng, N), _unit(rng, 3)
    retriever = DenseRetriever(top_k=8, vectors=url)
    retriever.index(_corpus(), embeddings=emb)
    return retriever, emb, queries


def _expected(emb: np.ndarray, queries: np.ndarray, mask: np.ndarray | None, k: int) -> list[list[tuple[str, float]]]:
    allowed = np.arange(len(emb)) if mask is None else np.flatnonzero(mask)
    out = []
    for q in queries:
        sims = emb[allowed] @ q
        top = np.argsort(-sims, kind="stable")[:k]
        out.append([(f"r{allowed[i]}", float(sims[i])) for i in top])
    return out


def _check(got: list[list], expected: list[list[tuple[str, float]]]) -> None:
    assert [[p.chunk_id for p in ps] for ps in got] == [[c for c, _ in e] for e in expected]
    for ps, e in zip(got, expected):
        np.testing.assert_allclose([p.score for p in ps], [s for _, s in e], atol=1e-4)


def test_same_top_k_ids_and_scores_with_minilm(url: str) -> None:
    texts = ["Pilot fish swim ahead of sharks.", "The stock market fell sharply on Monday.",
             "Cats purr when they are content.", "A steam engine turns heat into work.",
             "Bees make honey from nectar.", "The court ruled on the appeal.", "Volcanoes erupt molten rock.",
             "Tea is brewed from leaves.", "Glaciers carve valleys over millennia.", "Rust is iron oxide."]
    corpus = ChunkCorpus.from_texts(texts)
    retriever = DenseRetriever(model="minilm-l6", vectors=url)
    retriever.index(corpus)
    queries = ["which fish travel with sharks?", "shares dropped", "what do bees produce?"]
    emb = retriever.embedder.encode_documents(texts)
    expected = _expected(emb, retriever.embedder.encode_queries(queries), None, 4)
    got = retriever.run_batch(queries, top_k=4)
    assert [[p.chunk_id for p in ps] for ps in got] == [[str(int(c[1:])) for c, _ in e] for e in expected]
    np.testing.assert_allclose([[p.score for p in ps] for ps in got], [[s for _, s in e] for e in expected], atol=1e-4)
    assert got[0][0].text == texts[0] and retriever.run("tea leaves")[0].text == texts[7]


@pytest.mark.parametrize("filters", [
    {"group": "odd"},                                  # scalar metadata
    {"bucket": 3},                                     # a number compares as its string
    {"tags": "t1"},                                    # list-valued metadata: any element
    {"tags": ["t2", "u4"], "group": "even"},           # several values, several keys
    {"doc_id": ["r5", "r10", "r239"]},                 # top-level fields
    {"title": "Title 2", "source": ["/data/f1.md", "/data/f4.md"]},
    {"chunk_id": "r17"},
    {"quote": 'say "hi"\\'},                           # quotes and backslashes in a value
    {"odd key.x": "3"},                                # a key with a space and a dot
    {"group": "none-such"},                            # no match
    {"group": []},                                     # an empty allowed set
])
def test_filters_match_filter_mask(setup, filters) -> None:
    retriever, emb, queries = setup
    mask = retriever.corpus.filter_mask(filters)
    got = retriever.search_vectors(queries, top_k=8, filters=filters)
    _check(got, _expected(emb, queries, mask, 8))
    assert all(mask[int(p.chunk_id[1:])] for ps in got for p in ps)


def test_unfiltered_and_deep_searches(setup) -> None:
    retriever, emb, queries = setup
    _check(retriever.search_vectors(queries), _expected(emb, queries, None, 8))
    _check(retriever.search_vectors(queries[:1], top_k=N + 50), _expected(emb, queries[:1], None, N))


def test_vectors_of_rows(setup) -> None:
    retriever, emb, _ = setup
    np.testing.assert_allclose(retriever.vectors([5, 0, 239, 5]), emb[[5, 0, 239, 5]], atol=1e-6)


def test_save_load_round_trip(setup, tmp_path: Path) -> None:
    retriever, emb, queries = setup
    retriever.save(tmp_path / "dense")
    loaded = DenseRetriever.load(tmp_path / "dense")
    assert loaded.to_config() == retriever.to_config()
    for filters in (None, {"tags": "u3"}):
        assert loaded.search_vectors(queries, filters=filters) == retriever.search_vectors(queries, filters=filters)
    np.testing.assert_allclose(loaded.vectors([1, 2]), emb[[1, 2]], atol=1e-6)
    assert (loaded.embeddings is None) == (retriever.backend == "milvus")


def test_reindex_after_a_changed_chunk(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    table = {f"text {i}": v for i, v in enumerate(_unit(rng, N))}
    table["text 3, rewritten"] = _unit(rng, 1)[0]
    retriever = DenseRetriever(vectors=url)
    embedded: list[int] = []

    def encode(texts, progress=None):
        embedded.append(len(texts))
        return np.stack([table[t.split("\n")[-1]] for t in texts])  # the indexed text is "title\ntext"

    monkeypatch.setattr(retriever.embedder, "encode_documents", encode)
    first = _corpus()
    retriever.index(first)
    old = table["text 3"][None, :]
    assert retriever.search_vectors(old, top_k=1)[0][0].chunk_id == "r3"
    texts = [f"text {i}" for i in range(N)]
    texts[3] = "text 3, rewritten"
    if retriever.backend == "milvus":  # as a new process finds it: Milvus Lite starts collections released
        retriever._backend._client().release_collection(retriever._backend.collection)
        retriever = DenseRetriever(vectors=url)
        monkeypatch.setattr(retriever.embedder, "encode_documents", encode)
    retriever.index(_corpus(texts))
    milvus = retriever.backend == "milvus"
    assert retriever.embedded == (1 if milvus else N)  # Milvus keeps the vectors of unchanged chunks
    top = retriever.search_vectors(old, top_k=3)[0]
    assert [p.chunk_id for p in top].count("r3") <= 1  # the old vector of r3 is not found under its id
    if "r3" in [p.chunk_id for p in top]:
        hit = next(p for p in top if p.chunk_id == "r3")
        assert hit.score == pytest.approx(float(table["text 3, rewritten"] @ old[0]), abs=1e-4)
    emb = np.stack([table[t] for t in texts])
    _check(retriever.search_vectors(old, top_k=10), _expected(emb, old, None, 10))
    assert retriever.prune_stale() == (1 if milvus else 0)
    assert retriever.prune_stale() == 0
    _check(retriever.search_vectors(old, top_k=10), _expected(emb, old, None, 10))


def _kb(path: Path, url: str, docs: dict[str, str]) -> KnowledgeBase:
    folder = path.parent / f"{path.name}-docs"
    folder.mkdir()
    for name, text in docs.items():
        (folder / name).write_text(text)
    kb = KnowledgeBase.open(path, create=True, settings={"vectors": url, "tokenizer": "words"})
    kb.ingest([folder])
    return kb


def test_two_knowledge_bases_on_one_store_stay_apart(url: str, tmp_path: Path) -> None:
    a = _kb(tmp_path / "a", url, {"sharks.txt": "Pilot fish swim ahead of sharks in warm seas."})
    b = _kb(tmp_path / "b", url, {"tea.txt": "Green tea is brewed from the leaves of a shrub."})
    if url != "faiss":
        assert a.settings["vectors"] != b.settings["vectors"]  # same file, a collection each
    for kb, doc in ((a, "a-docs/sharks.txt"), (b, "b-docs/tea.txt")):
        found = kb.search("fish and sharks", mode="dense", top_k=5)
        assert [p.doc_id for p in found] == [doc]
        assert kb.similarity("sharks", found) is not None


# --- backend-specific ----------------------------------------------------------------------------

def test_faiss_memmap_is_added_in_slices_and_not_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    folder = tmp_path / "dense"
    folder.mkdir()
    emb = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=np.float32, shape=(N, DIM))
    emb[:] = _unit(rng, N)
    emb.flush()
    monkeypatch.setattr(faiss_index, "ADD_SLICE", 50)
    retriever = DenseRetriever()
    retriever.index(_corpus(), embeddings=emb)
    assert retriever.embeddings is emb
    before = (folder / "embeddings.npy").stat()
    retriever.save(folder)
    after = (folder / "embeddings.npy").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    q = _unit(rng, 2)
    _check(DenseRetriever.load(folder).search_vectors(q), _expected(np.asarray(emb), q, None, 10))
    elsewhere = tmp_path / "other"
    retriever.save(elsewhere)  # another folder: written
    np.testing.assert_array_equal(np.load(elsewhere / "embeddings.npy"), emb)


def test_milvus_inserts_a_memmap_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(12)
    emb = np.lib.format.open_memmap(tmp_path / "e.npy", mode="w+", dtype=np.float32, shape=(N, DIM))
    emb[:] = _unit(rng, N)
    monkeypatch.setattr(milvus_module, "INSERT_BATCH", 70)
    retriever = DenseRetriever(vectors=f"milvus:///{tmp_path / 'v.db'}")
    retriever.index(_corpus(), embeddings=emb)
    np.testing.assert_allclose(retriever.vectors(list(range(N))), emb, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _state(kb: KnowledgeBase) -> tuple:
    found = kb.search_batch(["fish and sharks", "tea leaves"], mode="dense", top_k=3)
    return kb.store.counts(), kb.index_generation(), [[(p.chunk_id, round(p.score, 5)) for p in ps] for ps in found]


def test_an_unreachable_milvus_leaves_the_knowledge_base_as_it_was(tmp_path: Path) -> None:
    kb = _kb(tmp_path / "kb", f"milvus:///{tmp_path / 'v.db'}", {"sharks.txt": "Pilot fish swim ahead of sharks.",
                                                                  "tea.txt": "Green tea is brewed from leaves."})
    before = _state(kb)
    lite = kb.settings["vectors"]
    down = f"milvus://127.0.0.1:{_free_port()}/{milvus_module.DEFAULT_COLLECTION}"
    with kb.store.transaction() as session:  # the server the knowledge base uses has gone away
        kb.store.set_meta(session, "settings", {**kb.settings, "vectors": down})
    kb = KnowledgeBase.open(tmp_path / "kb")
    (tmp_path / "kb-docs" / "new.txt").write_text("Volcanoes erupt molten rock.")
    started = time.perf_counter()
    with pytest.raises(BackendUnavailableError, match=f"Milvus at {down} does not answer.*server runs"):
        kb.ingest([tmp_path / "kb-docs"])
    assert time.perf_counter() - started < 10
    with kb.store.transaction() as session:
        kb.store.set_meta(session, "settings", {**kb.settings, "vectors": lite})
    assert _state(KnowledgeBase.open(tmp_path / "kb")) == before


def test_a_search_against_an_unreachable_milvus_names_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    retriever = DenseRetriever(vectors=f"milvus:///{tmp_path / 'v.db'}")
    retriever.index(_corpus(), embeddings=_unit(rng, N))
    retriever.save(tmp_path / "dense")
    queries = _unit(rng, 2)
    down = f"milvus://127.0.0.1:{_free_port()}"
    started = time.perf_counter()
    with pytest.raises(BackendUnavailableError, match=f"Milvus at {down} does not answer"):
        DenseRetriever.load(tmp_path / "dense", vectors=down).search_vectors(queries)
    assert time.perf_counter() - started < 10


@pytest.fixture()
def lite_kb_factory(tmp_path: Path) -> Callable[[str], KnowledgeBase]:
    return lambda name: _kb(tmp_path / name, f"milvus:///{tmp_path / 'shared.db'}", {"x.txt": f"{name} text"})


def test_milvus_ingest_reuses_and_prunes(lite_kb_factory, tmp_path: Path) -> None:
    kb = lite_kb_factory("kb")
    dense = kb.current_dense()
    assert dense is not None and dense.backend == "milvus" and dense.embeddings is None
    (tmp_path / "kb-docs" / "x.txt").write_text("kb text, changed")
    kb.ingest([tmp_path / "kb-docs"])  # cleanup_generations prunes the old chunk's vector
    dense = kb.current_dense()
    assert dense is not None and dense.prune_stale() == 0
    assert kb.search("changed", mode="dense")[0].text == "kb text, changed"
