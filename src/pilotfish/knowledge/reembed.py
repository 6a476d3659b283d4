"""reembed(): rebuild a knowledge base's dense index with another embedding model, as a new index generation.

Every chunk is embedded again with the new model (no vector of the old model is reused) into a fresh
generation folder; then one SQL transaction switches the `embedding_model` setting and bumps the index
generation. A crash or a kill at any point before that commit leaves the old generation serving, with
the old model; the half-written folder is removed by the next ingest or reembed. Later ingests embed
new chunks with the stored model, which is the resolved folder of a trained model, never a name that
may be re-pointed.

Test hook: ``PILOTFISH_REEMBED_PAUSE=SECONDS`` sleeps that long after each embedded batch, so a test can
kill the process while it embeds.

>>> import pathlib, tempfile
>>> from pilotfish.knowledge.base import KnowledgeBase
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "note.txt").write_text("Pilot fish swim ahead of sharks.")
>>> kb = KnowledgeBase.open(root / "kb", create=True)
>>> _ = kb.ingest([root / "note.txt"])
>>> report = reembed(kb, "minilm-l6")
>>> report.chunks, report.generation, kb.search("who swims ahead of sharks?", mode="dense")[0].doc_id
(1, 2, 'note.txt')
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from pilotfish.errors import ConfigError, KnowledgeBaseError
from pilotfish.knowledge.index_build import build_indexes, corpus_from
from pilotfish.knowledge.ingest import Progress, _Silent

PAUSE_ENV = "PILOTFISH_REEMBED_PAUSE"


@dataclass(frozen=True)
class ReembedReport:
    model: str  # the stored setting: a packaged name or a resolved folder
    name: str  # the model as given
    previous: str  # the setting it replaced
    chunks: int
    generation: int
    seconds: float


class _Paced:
    """Passes progress on, sleeping PILOTFISH_REEMBED_PAUSE seconds after each embedded batch (a test hook)."""

    def __init__(self, progress: Progress, pause: float) -> None:
        self.progress, self.pause, self.embedding = progress, pause, False

    def stage(self, name: str, total: int | None) -> None:
        self.embedding = name.startswith("Embedding")
        self.progress.stage(name, total)

    def advance(self, n: int = 1) -> None:
        self.progress.advance(n)
        if self.embedding and self.pause > 0:
            time.sleep(self.pause)


def reembed(kb: Any, model: str, *, progress: Progress | None = None) -> ReembedReport:
    """Re-embed every chunk of `kb` (a `KnowledgeBase`) with `model` (packaged name, registered name or folder)
    and switch the knowledge base to it; see the module docstring for the guarantees."""
    from pilotfish.knowledge.base import embedder_setting
    from pilotfish.models.embedding import Embedder

    started = time.perf_counter()
    progress = progress or _Silent()
    if not kb.settings["dense"]:
        raise KnowledgeBaseError(f"{kb.directory} has no dense index (created with dense=False): there is nothing "
                                 "to re-embed; ingest into a new --kb folder to get one")
    pinned = embedder_setting(model)
    try:
        pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    except ValueError:
        raise ConfigError(f"{PAUSE_ENV} must be a number of seconds") from None
    progress.stage(f"Loading embedding model {model}", None)
    _ = Embedder(model=pinned["embedding_model"]).dimension  # a model that cannot load fails before any write
    store = kb.store
    with store.transaction() as session:
        current = kb.index_generation(session=session)
        if current == 0:
            raise KnowledgeBaseError(f"{kb.directory} is empty: add documents with `pilotfish ingest PATH --kb "
                                     f"{kb.directory}`")
        stored = {**kb.settings, **store.get_meta_in(session, "settings", {})}
        # A write first, so that (on SQLite) no other ingest commits a generation while this one is built.
        store.set_meta(session, "reembed", {"model": pinned["embedding_model"], "from_generation": current})
        session.flush()
        corpus = corpus_from(store, session)
        generation = current + 1
        build_indexes(kb, corpus, generation, _Paced(progress, pause), model=pinned["embedding_model"])
        settings = {**stored, **pinned}
        store.set_meta(session, "settings", settings)
        store.set_meta(session, "index_generation", generation)
    kb.settings = settings
    kb.cleanup_generations(keep=generation)
    kb.reload()
    return ReembedReport(model=pinned["embedding_model"], name=model, previous=str(stored["embedding_model"]),
                         chunks=len(corpus), generation=generation, seconds=time.perf_counter() - started)
