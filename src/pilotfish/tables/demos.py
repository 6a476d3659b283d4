"""SQLDemoPool: question/SQL pairs from a JSONL file, the few most like a new question picked as demonstrations.

Lines are `{"question": ..., "sql": ...}` (other fields are kept, e.g. the database they ran on). The pool is
indexed with BM25 over the questions on first use; `select(question, k)` returns the `k` most similar pairs,
never the question itself (a pool may hold the very question being asked).

>>> pool = SQLDemoPool([{"question": "How many singers are there?", "sql": "SELECT COUNT(*) FROM singer"},
...                     {"question": "List the stadium names.", "sql": "SELECT name FROM stadium"}])
>>> [d["sql"] for d in pool.select("How many concerts are there?", k=1)]
['SELECT COUNT(*) FROM singer']
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError


class SQLDemoPool:
    """Demonstrations for the SQL writer; `from_file(path)` reads a JSONL pool."""

    def __init__(self, pairs: Sequence[dict[str, Any]]) -> None:
        for n, pair in enumerate(pairs, 1):
            if not (isinstance(pair, dict) and isinstance(pair.get("question"), str)
                    and isinstance(pair.get("sql"), str) and pair["question"].strip() and pair["sql"].strip()):
                raise ConfigError(f'SQL demonstration {n} needs a non-empty "question" and "sql", got {pair!r}')
        self.pairs = list(pairs)
        self._bm25: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path) -> SQLDemoPool:
        from pilotfish.jsonl import read_jsonl

        if not Path(path).is_file():
            raise ConfigError(f"SQL demonstration pool {path} does not exist; give a JSONL file of "
                              '{"question", "sql"} lines')
        pool = cls([value for _, value in read_jsonl(path, error=ConfigError)])
        if not pool.pairs:
            raise ConfigError(f'SQL demonstration pool {path} is empty; write one {{"question", "sql"}} per line')
        return pool

    def select(self, question: str, k: int = 2) -> list[dict[str, Any]]:
        if k < 1 or not self.pairs:
            return []
        scores = self._index().scores(question)
        asked = " ".join(question.lower().split())
        order = sorted(range(len(self.pairs)), key=lambda i: -float(scores[i]))
        return [self.pairs[i] for i in order if " ".join(self.pairs[i]["question"].lower().split()) != asked][:k]

    def _index(self) -> Any:
        with self._lock:
            if self._bm25 is None:
                from pilotfish.retrievers.bm25 import BM25Retriever
                from pilotfish.retrievers.corpus import ChunkCorpus, CorpusRow

                bm25 = BM25Retriever(stopwords=None)  # "how many", "which" carry the shape of the SQL
                bm25.index(ChunkCorpus([CorpusRow(chunk_id=str(i), doc_id=str(i), text=p["question"], title="",
                                                  source="", metadata={}) for i, p in enumerate(self.pairs)]))
                self._bm25 = bm25
            return self._bm25
