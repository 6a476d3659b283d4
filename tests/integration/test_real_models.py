"""The packaged small models, loaded for real: embeddings, ONNX embeddings, the cross-encoder."""

from __future__ import annotations

import numpy as np
import pytest

from pilotfish.models.embedding import Embedder
from pilotfish.retrievers.corpus import ChunkCorpus
from pilotfish.retrievers.dense import DenseRetriever
from pilotfish.retrievers.rerank import CrossEncoderReranker
from pilotfish.types import Passage

pytestmark = pytest.mark.integration

TEXTS = [
    "The mitochondria is the powerhouse of the cell, producing ATP.",
    "The stock market fell sharply after the interest rate decision.",
    "A recipe for sourdough bread needs flour, water, salt and a starter.",
    "Volcanic eruptions release lava, ash and sulfur dioxide.",
]


@pytest.mark.parametrize("model", ["minilm-l6", "bge-small"])
def test_embedders_give_unit_vectors_that_rank_by_meaning(model: str) -> None:
    embedder = Embedder(model=model, batch_size=2)
    docs = embedder.encode_documents(TEXTS)
    assert docs.shape == (4, 384) and docs.dtype == np.float32
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
    queries = embedder.encode_queries(["which organelle makes energy for cells?", "shares dropped on wall street"])
    assert list((queries @ docs.T).argmax(axis=1)) == [0, 1]
    # Batching and length-sorting must not change what a vector means. (Dynamic int8 quantisation in
    # the ONNX model scales activations per batch, so bge-small vectors move slightly with the batch.)
    one_by_one = np.stack([embedder.encode_documents([t])[0] for t in TEXTS])
    cosines = (one_by_one * docs).sum(axis=1)
    assert cosines.min() > (0.9999 if model == "minilm-l6" else 0.99), cosines


def test_bge_query_prefix_is_applied() -> None:
    embedder = Embedder(model="bge-small")
    plain = embedder.encode_documents(["what is lava?"])[0]
    query = embedder.encode_queries(["what is lava?"])[0]
    assert not np.allclose(plain, query, atol=1e-3)


def test_dense_retriever_with_bge_small() -> None:
    retriever = DenseRetriever(model="bge-small")
    retriever.index(ChunkCorpus.from_texts(TEXTS, metadatas=[{"topic": t} for t in ("bio", "econ", "food", "geo")]))
    assert retriever.run("molten rock from a mountain", top_k=1)[0].doc_id == "3"
    assert retriever.run("molten rock", filters={"topic": ["bio", "food"]}, top_k=4)[0].doc_id in {"0", "2"}


def test_cross_encoder_puts_the_answer_first() -> None:
    reranker = CrossEncoderReranker(batch_size=2)
    passages = [Passage(chunk_id=str(i), doc_id=str(i), text=t, score=0.0) for i, t in enumerate(TEXTS)]
    ranked = reranker.run("what do volcanoes emit?", passages, top_k=2)
    assert [p.doc_id for p in ranked] == ["3", ranked[1].doc_id] and ranked[0].score > ranked[1].score
    assert ranked[0].retriever == "rerank"
    scores = reranker.score([("what do volcanoes emit?", TEXTS[3]), ("what do volcanoes emit?", TEXTS[2])])
    assert scores[0] > scores[1] + 3  # logits: a clear margin, not a coin flip


def test_sentence_compressor_keeps_the_answering_sentences() -> None:
    from pilotfish.retrievers.compress import SentenceCompressor

    passages = [Passage("c1", "d1", "Paris is the capital of France. Bread is baked there every morning. "
                                    "The Seine flows through Paris before reaching the sea.", 1.0, title="Paris"),
                Passage("c2", "d2", "Cats sleep sixteen hours a day. Dogs were domesticated long ago.", 0.9)]
    out = SentenceCompressor(keep=1).compress("Which river flows through Paris?", passages)
    assert [(p.chunk_id, p.text) for p in out] == [("c1", "The Seine flows through Paris before reaching the sea.")]
