"""IngestStaging: the batches an ingest has read, chunked and embedded but not yet committed, kept on disk so
that an ingest killed halfway resumes from its last finished batch instead of from the start.

Each batch holds the documents and chunks of some records of one file (`batch-N.jsonl`) and the vectors of
its chunks (`batch-N.npy`, one row per chunk, in order). A batch is written to temporary names and renamed,
then `job.json` (which files, at which content hash, how many records are done) is replaced: a kill at any
moment leaves either the batch counted or not counted, never half of one. A staged file is keyed by its path
and content hash, so a file that changed since the interrupted run is read again from its start. The
staging folder is removed once the ingest commits.

>>> import tempfile, pathlib
>>> from pilotfish.types import Chunk, Document
>>> staging = IngestStaging(pathlib.Path(tempfile.mkdtemp()) / "staging", fingerprint={"chunk_tokens": 200})
>>> staging.records_done("a.jsonl", "hash1")
0
>>> doc = Document(doc_id="a1", text="Pilot fish.")
>>> staging.add_batch("a.jsonl", "hash1", [(doc, [Chunk(chunk_id="a1::0", doc_id="a1", text="Pilot fish.")])],
...                   vectors=None, records_done=1)
>>> IngestStaging(staging.directory, fingerprint={"chunk_tokens": 200}).records_done("a.jsonl", "hash1")
1
>>> [d.doc_id for d, _ in staging.documents("a.jsonl")]
['a1']
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotfish.errors import IndexStateError
from pilotfish.jsonl import read_jsonl
from pilotfish.retrievers.corpus import index_text_of, write_atomic
from pilotfish.types import Chunk, Document

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"


class IngestStaging:
    """The staging folder of one knowledge base. `fingerprint` (settings and ingest options) must equal the one
    the batches were made with, or they are discarded: chunks of another chunker or vectors of another model
    must never be committed."""

    def __init__(self, directory: Path, *, fingerprint: dict[str, Any]) -> None:
        self.directory = directory
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
        self.job: dict[str, Any] = {"fingerprint": self.fingerprint, "next_batch": 1, "files": {}}
        path = directory / JOB_FILE
        if path.exists():
            try:
                job = json.loads(path.read_text())
            except (OSError, ValueError):
                job = {}
            if job.get("fingerprint") == self.fingerprint:
                self.job = job
            else:
                logger.info("discarding staged batches of an earlier ingest with other settings")
                shutil.rmtree(directory, ignore_errors=True)

    # -- what an interrupted run left ---------------------------------------------------------------
    def records_done(self, key: str, content_hash: str) -> int:
        """How many records of file `key` (at `content_hash`) are staged already; 0 for a file staged at another
        hash (its stale batches are dropped)."""
        entry = self.job["files"].get(key)
        if entry is None:
            return 0
        if entry["hash"] != content_hash:
            self.discard(key)
            return 0
        return int(entry["records"])

    def is_complete(self, key: str, content_hash: str) -> bool:
        entry = self.job["files"].get(key)
        return bool(entry and entry["hash"] == content_hash and entry.get("complete"))

    def staged_files(self) -> list[str]:
        return list(self.job["files"])

    def resumed(self) -> tuple[int, int]:
        """(batches, records) found staged when this run began."""
        files = self.job["files"].values()
        return sum(len(f["batches"]) for f in files), sum(int(f["records"]) for f in files)

    # -- writing ----------------------------------------------------------------------------------
    def add_batch(self, key: str, content_hash: str, items: Sequence[tuple[Document, Sequence[Chunk]]], *,
                  vectors: np.ndarray | None, records_done: int) -> None:
        """Stage one batch of file `key`: its documents with their chunks, and their chunks' vectors."""
        self.directory.mkdir(parents=True, exist_ok=True)
        number = int(self.job["next_batch"])
        stem = self.directory / f"batch-{number:07d}"
        lines = [json.dumps({"doc": _doc_dict(doc), "chunks": [_chunk_dict(c) for c in chunks]}, ensure_ascii=False)
                 for doc, chunks in items]
        write_atomic(stem.with_suffix(".jsonl"), "".join(line + "\n" for line in lines))
        if vectors is not None:
            import numpy as np

            tmp = self.directory / f".{stem.name}.tmp.npy"
            np.save(tmp, np.ascontiguousarray(vectors, dtype=np.float32))
            os.replace(tmp, stem.with_suffix(".npy"))
        entry = self.job["files"].setdefault(key, {"hash": content_hash, "records": 0, "batches": []})
        entry["batches"].append(number)
        entry["records"] = records_done
        self.job["next_batch"] = number + 1
        self._save()

    def complete(self, key: str) -> None:
        """Mark file `key` as read to its end."""
        if key in self.job["files"]:
            self.job["files"][key]["complete"] = True
            self._save()

    def discard(self, key: str) -> None:
        """Forget file `key`'s batches (it failed, or changed since it was staged)."""
        entry = self.job["files"].pop(key, None)
        for number in entry["batches"] if entry else []:
            for suffix in (".jsonl", ".npy"):
                (self.directory / f"batch-{number:07d}{suffix}").unlink(missing_ok=True)
        if entry:
            self._save()

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.job = {"fingerprint": self.fingerprint, "next_batch": 1, "files": {}}

    # -- reading back --------------------------------------------------------------------------------
    def documents(self, key: str) -> Iterator[tuple[Document, list[Chunk]]]:
        """File `key`'s staged documents with their chunks, batch after batch."""
        for number in self.job["files"].get(key, {}).get("batches", []):
            path = self.directory / f"batch-{number:07d}.jsonl"
            for _, item in read_jsonl(path, error=IndexStateError):
                doc = _doc_from(item["doc"])
                yield doc, [Chunk(doc_id=doc.doc_id, **c) for c in item["chunks"]]

    def vector_batches(self) -> Iterator[tuple[list[str], np.ndarray]]:
        """(chunk texts as indexed, their vectors) of every staged batch that has vectors."""
        import numpy as np

        for entry in self.job["files"].values():
            for number in entry["batches"]:
                stem = self.directory / f"batch-{number:07d}"
                if not stem.with_suffix(".npy").exists():
                    continue
                texts = [index_text_of(item["doc"]["title"], c["text"])
                         for _, item in read_jsonl(stem.with_suffix(".jsonl"), error=IndexStateError)
                         for c in item["chunks"]]
                yield texts, np.load(stem.with_suffix(".npy"), mmap_mode="r")

    def _save(self) -> None:
        write_atomic(self.directory / JOB_FILE, json.dumps(self.job))


def _doc_dict(doc: Document) -> dict[str, Any]:
    return {"doc_id": doc.doc_id, "text": doc.text, "title": doc.title, "source": doc.source,
            "metadata": doc.metadata}


def _doc_from(d: dict[str, Any]) -> Document:
    return Document(doc_id=d["doc_id"], text=d["text"], title=d["title"], source=d["source"], metadata=d["metadata"])


def _chunk_dict(c: Chunk) -> dict[str, Any]:
    return {"chunk_id": c.chunk_id, "text": c.text, "index": c.index, "start_char": c.start_char,
            "end_char": c.end_char, "n_tokens": c.n_tokens, "metadata": c.metadata}
