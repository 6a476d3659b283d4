"""RayPipeline: an evaluation's questions answered on Ray actors (`pip install 'pilotfish[ray]'`).

Each actor calls `make()` once, a picklable factory that builds the pipeline the way the command does
(`build(spec, kb)`), and answers every question it is given with it. `RayPipeline.run(question)` hands the
question to an idle actor and waits for its `Answer`, so it drops in for a local pipeline: `evaluate(...,
concurrency=len(actors))` keeps every actor busy from its threads, and scores, orders and stores the
answers exactly as it does for a local pipeline.

>>> from pilotfish.evaluation.ray_pipeline import RayPipeline, eval_pipeline
>>> pipeline = RayPipeline(eval_pipeline("basic", "kb", ".pilotfish-eval"), address="auto", workers=2)  # doctest: +SKIP
>>> result = evaluate(pipeline, data, name="run", concurrency=pipeline.workers)                  # doctest: +SKIP
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError, PilotfishError
from pilotfish.knowledge.ray_batches import _cause, connect, import_ray, start_actors


def eval_pipeline(spec: Any, kb_folder: str | Path, output: str | Path, *, cache: bool = True) -> Callable[[], Any]:
    """The factory `eval run --ray` hands its workers: the pipeline as the command builds it in its own process,
    `build(spec, kb)` over the knowledge base in `kb_folder`, with (`cache`) its searches and every LLM call
    behind the disk caches in `output`."""
    return partial(_build_eval_pipeline, spec, str(kb_folder), str(output), cache)


def _build_eval_pipeline(spec: Any, kb_folder: str, output: str, cache: bool) -> Any:
    from pilotfish.answer import build
    from pilotfish.knowledge.base import KnowledgeBase

    base: Any = KnowledgeBase.open(kb_folder)
    if not cache:
        return build(spec, base)
    from pilotfish.evaluation.llm_cache import CachedKB, CachedLLM

    base = CachedKB(base, Path(output) / "search-cache.sqlite")
    return build(spec, base, wrap_llm=lambda llm: CachedLLM(llm, Path(output) / "llm-cache.sqlite"))


class _Answerer:
    """One actor: the pipeline, built once."""

    def __init__(self, make: Callable[[], Any], cwd: str | None) -> None:
        if cwd and os.path.isdir(cwd):  # a worker on the driver's machine reads relative paths as the driver does
            os.chdir(cwd)
        self.pipeline = make()

    def ready(self) -> bool:
        return True

    def run(self, question: str) -> Any:
        return self.pipeline.run(question)


class RayPipeline:
    """`run(question) -> Answer` on one of `workers` Ray actors (default: one per CPU of the cluster)."""

    def __init__(self, make: Callable[[], Any], *, address: str = "auto", workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"--ray-workers must be at least 1, got {workers}")
        import_ray()
        self.make, self.address, self._workers = make, address, workers
        self._idle: queue.Queue[Any] | None = None
        self._actors: list[Any] = []

    @property
    def workers(self) -> int:
        """How many actors answer (starts them)."""
        self.start()
        return len(self._actors)

    def start(self) -> None:
        """Connect to Ray and start the actors, each building its pipeline (the first `run` does it otherwise)."""
        if self._idle is not None:
            return
        ray = connect(self.address)
        self._actors = start_actors(ray, _Answerer, self._workers, self.make, os.getcwd())
        idle: queue.Queue[Any] = queue.Queue()
        for actor in self._actors:
            idle.put(actor)
        self._idle = idle

    def run(self, question: str) -> Any:
        import ray

        self.start()
        assert self._idle is not None
        actor = self._idle.get()
        try:
            return ray.get(actor.run.remote(question))
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, PilotfishError):  # as a local pipeline raises it: evaluate records it
                raise cause from None
            raise PilotfishError(f"a Ray worker failed on {question[:60]!r}: {_cause(err)}") from None
        except ray.exceptions.RayError as err:
            raise PilotfishError(f"a Ray worker was lost on {question[:60]!r}: {_cause(err)}") from None
        finally:
            self._idle.put(actor)

    def close(self) -> None:
        """Stop the actors (they also stop when this object is garbage-collected); the Ray runtime stays."""
        if self._actors:
            import ray

            for actor in self._actors:
                ray.kill(actor)
        self._idle, self._actors = None, []
