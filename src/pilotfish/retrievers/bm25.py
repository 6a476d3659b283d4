"""BM25Retriever: lexical search on bm25s, with stemming and stopwords, saved as plain files.

>>> from pilotfish.retrievers.bm25 import BM25Retriever
>>> from pilotfish.retrievers.corpus import ChunkCorpus
>>> r = BM25Retriever()
>>> r.index(ChunkCorpus.from_texts(["cats purr softly", "dogs bark loudly", "fish swim"]))
>>> r.run("why do dogs bark?")[0].doc_id
'1'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError, IndexStateError, QueryError
from pilotfish.retrievers.corpus import ChunkCorpus, Filters, write_atomic
from pilotfish.types import Passage

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

TOKENIZE_BLOCK = 10_000  # rows tokenized at a time while indexing

_EMPTY = object()  # stands for the index of an empty corpus
METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
CONFIG_FILE = "bm25_config.json"


class BM25Retriever(Component):
    """Okapi BM25 over a `ChunkCorpus`.

    `method` picks the BM25 variant (bm25s names; Lucene's is the default), `idf_method` its IDF
    (defaults to the method's). `method="atire", idf_method="robertson"` is rank-bm25's BM25Okapi.
    """

    def __init__(self, *, k1: float = 1.5, b: float = 0.75, method: str = "lucene", idf_method: str | None = None,
                 stemmer: str | None = "english", stopwords: str | None = "en", top_k: int = 10) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown BM25 method {method!r}; choose one of {', '.join(METHODS)}")
        if idf_method is not None and idf_method not in METHODS:
            raise ConfigError(f"unknown BM25 idf_method {idf_method!r}; choose one of {', '.join(METHODS)}")
        if k1 < 0 or not 0 <= b <= 1:
            raise ConfigError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        if stemmer is not None:
            import Stemmer  # PyStemmer: small C extension, cheap to import

            if stemmer not in Stemmer.algorithms():
                raise ConfigError(f"unknown stemmer {stemmer!r}; choose one of {', '.join(Stemmer.algorithms())}")
        self._config = {"k1": k1, "b": b, "method": method, "idf_method": idf_method, "stemmer": stemmer,
                        "stopwords": stopwords, "top_k": top_k}
        self.top_k = top_k
        self.corpus: ChunkCorpus | None = None
        self._bm25: Any = None
        self._stemmer: Any = None

    # -- tokens ---------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """The exact tokens that get indexed and searched (lower-cased, stopwords removed, stemmed)."""
        import bm25s

        if self._stemmer is None and self._config["stemmer"]:
            import Stemmer

            self._stemmer = Stemmer.Stemmer(self._config["stemmer"])
        tokenized = bm25s.tokenize(list(texts), lower=True, stopwords=self._config["stopwords"],
                                   stemmer=self._stemmer, return_ids=False, show_progress=False)
        return [list(t) for t in tokenized]

    # -- index ----------------------------------------------------------------------------------
    def index(self, corpus: ChunkCorpus) -> None:
        """Build the index over every row of `corpus`. Texts are tokenized a block at a time into token ids, so
        building holds one block of token strings, not the whole corpus's."""
        import bm25s

        vocab: dict[str, int] = {}
        ids: list[list[int]] = []
        for start in range(0, len(corpus), TOKENIZE_BLOCK):
            texts = [corpus.index_text(i) for i in range(start, min(start + TOKENIZE_BLOCK, len(corpus)))]
            ids += [[vocab.setdefault(t, len(vocab)) for t in tokens] for tokens in self.tokenize(texts)]
        if not vocab or not len(corpus):  # the token path handles an empty corpus or vocabulary
            self.index_tokens(corpus, [[] for _ in range(len(corpus))])
            return
        calm_bm25s_logger()
        bm25 = bm25s.BM25(k1=self._config["k1"], b=self._config["b"], method=self._config["method"],
                          idf_method=self._config["idf_method"])
        bm25.index((ids, vocab), show_progress=False)
        self._bm25, self.corpus = bm25, corpus

    def index_tokens(self, corpus: ChunkCorpus, tokens: list[list[str]]) -> None:
        import bm25s

        calm_bm25s_logger()
        if len(tokens) != len(corpus):
            raise ValueError(f"{len(tokens)} token lists for {len(corpus)} rows")
        if not len(corpus):  # bm25s cannot index nothing; an empty index answers every query with []
            self._bm25, self.corpus = _EMPTY, corpus
            return
        if tokens and not any(tokens):
            # bm25s cannot index an empty vocabulary (every row was empty or only stopwords); a token the
            # tokenizer never produces keeps the index valid, and every score stays 0.
            tokens = [["\x00"], *tokens[1:]]
        bm25 = bm25s.BM25(k1=self._config["k1"], b=self._config["b"], method=self._config["method"],
                          idf_method=self._config["idf_method"])
        bm25.index(tokens, show_progress=False)
        self._bm25, self.corpus = bm25, corpus

    # -- search ---------------------------------------------------------------------------------
    def scores(self, query: str, *, mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every row for `query` (0 where no query token occurs)."""
        import numpy as np

        bm25 = self._require_index()
        if bm25 is _EMPTY:
            return np.zeros(0, dtype=np.float32)
        vocab = bm25.vocab_dict
        ids = [vocab[t] for t in self.tokenize([query])[0] if t in vocab]
        if not ids:
            return np.zeros(len(self.corpus), dtype=np.float32)  # type: ignore[arg-type]
        weight = mask.astype(np.float32) if mask is not None else None
        return bm25.get_scores_from_ids(ids, weight_mask=weight)

    def run(self, query: str, *, top_k: int | None = None, filters: Filters | None = None) -> list[Passage]:
        return self.run_batch([query], top_k=top_k, filters=filters)[0]

    def run_batch(self, queries: Sequence[str], *, top_k: int | None = None,
                  filters: Filters | None = None) -> list[list[Passage]]:
        import numpy as np

        k = top_k or self.top_k
        corpus = self._require_corpus()
        mask = corpus.filter_mask(filters)
        out: list[list[Passage]] = []
        for query in queries:
            if not query or not query.strip():
                raise QueryError("empty query: give some words to search for")
            scores = self.scores(query, mask=mask)
            n = min(k, len(scores))
            if n == 0:
                out.append([])
                continue
            top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
            top = top[np.argsort(-scores[top], kind="stable")]
            passage = corpus.passage
            out.append([passage(i, s, "bm25") for i, s in zip(top.tolist(), scores[top].tolist()) if s > 0])
        return out

    # -- files ----------------------------------------------------------------------------------
    def save(self, directory: str | Path, *, include_corpus: bool = True) -> None:
        directory = Path(directory)
        bm25 = self._require_index()
        directory.mkdir(parents=True, exist_ok=True)
        if bm25 is not _EMPTY:
            bm25.save(str(directory))
        if include_corpus:
            self._require_corpus().save(directory)
        write_atomic(directory / CONFIG_FILE, json.dumps(self.to_config(), indent=1))

    @classmethod
    def load(cls, directory: str | Path, *, corpus: ChunkCorpus | None = None) -> BM25Retriever:
        import bm25s

        directory = Path(directory)
        if not (directory / CONFIG_FILE).exists():
            raise IndexStateError(f"no BM25 index in {directory}: build one first (pilotfish ingest ...)")
        retriever = cls.from_config(json.loads((directory / CONFIG_FILE).read_text()))
        calm_bm25s_logger()
        retriever.corpus = corpus if corpus is not None else ChunkCorpus.load(directory)
        retriever._bm25 = bm25s.BM25.load(str(directory), load_corpus=False) if len(retriever.corpus) else _EMPTY
        return retriever

    def _require_index(self) -> Any:
        if self._bm25 is None:
            raise IndexStateError("BM25Retriever has no index: call index(corpus) or BM25Retriever.load(dir)")
        return self._bm25

    def _require_corpus(self) -> ChunkCorpus:
        self._require_index()
        assert self.corpus is not None
        return self.corpus


def calm_bm25s_logger() -> None:
    # bm25s sets its own logger to DEBUG when imported; put it back under the application's control.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
