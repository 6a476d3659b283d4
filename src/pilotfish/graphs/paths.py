"""PathRetriever: relation paths of up to three hops from the linked entities, scored against the question.

From each linked entity, paths grow one step (a relation, forward or backward) at a time. Every path of every
length is a candidate; the `beam` best of each length (by the scorer's prefix score) grow further. An entity
with more than `max_fanout` edges is an end, never a way through (a genre shared by 4,000 films), and a path
whose entities outnumber `max_frontier` stops growing. The question's own entity is never an answer, nor a
way through ("films that share actors with Heat" are reached through Heat's actors, not through Heat again). The
end entities of the best path, with the triples that reach them, are the answers.

>>> from pilotfish.graphs.graph import KnowledgeGraph
>>> from pilotfish.graphs.linker import EntityLinker
>>> g = KnowledgeGraph.from_triples([(1, "Big", "starred_actors", "Tom Hanks"),
...     (2, "Big", "directed_by", "Penny Marshall"), (3, "Splash", "starred_actors", "Tom Hanks"),
...     (4, "Splash", "directed_by", "Ron Howard")])
>>> scorer = FixedPathScorer({("~starred_actors", "directed_by"): 1.0})
>>> found = PathRetriever(scorer=scorer).retrieve("who directed the films Tom Hanks starred in", g,
...                                               EntityLinker(ner=False, context=False))
>>> found.answers, found.paths[0].steps
(['Penny Marshall', 'Ron Howard'], ('~starred_actors', 'directed_by'))
>>> [t["id"] for t in found.paths[0].triples]
[1, 2, 3, 4]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pilotfish.component import Component
from pilotfish.errors import ConfigError
from pilotfish.graphs.graph import KnowledgeGraph
from pilotfish.graphs.linker import EntityLinker, LinkedEntity

__all__ = ["FixedPathScorer", "GraphPath", "GraphResult", "PathRetriever", "PathScorer", "enumerate_paths",
           "mask_mention"]

MASK = "[ENT]"


class PathScorer(Protocol):
    """Scores relation paths (step names) for a question whose entity mention is masked. `prefix` asks how
    likely each path is to start the answer's path rather than to be it."""

    def score(self, question: str, paths: Sequence[tuple[str, ...]], *, prefix: bool = False) -> list[float]: ...


class FixedPathScorer:
    """Scores from a table (for tests and rules): unknown paths score 0; a prefix scores its best extension."""

    def __init__(self, scores: Mapping[tuple[str, ...], float]) -> None:
        self.scores = dict(scores)

    def score(self, question: str, paths: Sequence[tuple[str, ...]], *, prefix: bool = False) -> list[float]:
        if not prefix:
            return [self.scores.get(tuple(p), 0.0) for p in paths]
        return [max((s for k, s in self.scores.items() if k[:len(p)] == tuple(p)), default=0.0) for p in paths]


@dataclass
class _Walk:
    """A relation path being grown. Each layer holds the entities reached at that hop (sorted), and for each
    the entity before it, the triple row that led there, and how many routes reach it."""

    entity: int
    steps: tuple[int, ...]
    layers: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]  # (entities, previous, rows, routes)

    @property
    def ends(self) -> np.ndarray:
        return self.layers[-1][0]


@dataclass(frozen=True)
class GraphPath:
    """A scored relation path from a linked entity: its end entities (best supported first) and the triples
    that reach them."""

    entity: str
    steps: tuple[str, ...]
    score: float
    answers: list[str]
    triples: list[dict[str, Any]] = field(default_factory=list)
    routes: list[list[int]] = field(default_factory=list)  # the triple ids that reach each of the first answers

    def to_dict(self, answers: int = 10) -> dict[str, Any]:
        return {"entity": self.entity, "path": list(self.steps), "score": round(self.score, 4),
                "answers": self.answers[:answers], "answer_count": len(self.answers),
                "triples": [t["id"] for t in self.triples]}


@dataclass(frozen=True)
class GraphResult:
    """What the graph found for a question: the linked entities, the ranked paths and the ranked answers."""

    entities: list[LinkedEntity]
    paths: list[GraphPath]

    @property
    def answers(self) -> list[str]:
        """The best path's end entities, best supported first."""
        return self.paths[0].answers if self.paths else []

    @property
    def best(self) -> GraphPath | None:
        return self.paths[0] if self.paths else None

    def to_dict(self) -> dict[str, Any]:
        return {"answers": self.answers[:20], "paths": [p.to_dict() for p in self.paths],
                "entities": [e.to_dict() for e in self.entities]}


class PathRetriever(Component):
    """`retrieve(question, graph, linker)` -> a `GraphResult`; `scorer` ranks the paths (see `graphs.scorers`)."""

    def __init__(self, *, scorer: PathScorer | None = None, hops: int = 3, beam: int = 8, max_fanout: int = 500,
                 max_frontier: int = 5000, top_paths: int = 5, evidence: int = 20, link_margin: float = 0.3) -> None:
        if not 1 <= hops <= 3:
            raise ConfigError(f"hops must be 1, 2 or 3, got {hops}")
        if beam < 1 or max_fanout < 1 or max_frontier < 1 or top_paths < 1 or evidence < 1:
            raise ConfigError("beam, max_fanout, max_frontier, top_paths and evidence must be at least 1")
        self._config = {"hops": hops, "beam": beam, "max_fanout": max_fanout, "max_frontier": max_frontier,
                        "top_paths": top_paths, "evidence": evidence, "link_margin": link_margin}
        self.hops, self.beam, self.max_fanout, self.max_frontier = hops, beam, max_fanout, max_frontier
        self.top_paths, self.evidence, self.link_margin = top_paths, evidence, link_margin
        self._scorer = scorer

    @property
    def scorer(self) -> PathScorer:
        if self._scorer is None:
            from pilotfish.graphs.scorers import EmbeddingPathScorer

            self._scorer = EmbeddingPathScorer()
        return self._scorer

    def retrieve(self, question: str, graph: KnowledgeGraph, linker: EntityLinker | None = None, *,
                 entities: Sequence[LinkedEntity] | None = None) -> GraphResult:
        """Link (unless `entities` are given), grow and score the paths, and rank their end entities."""
        if entities is None:
            entities = (linker or EntityLinker()).link(question, graph, alternatives=self.link_margin)
        entities = list(entities)
        if not entities:
            return GraphResult(entities=[], paths=[])
        top = entities[0].score
        paths: list[GraphPath] = []
        for linked in entities:
            if linked.score < top - self.link_margin:
                continue
            paths += self._paths_from(mask_mention(question, linked), linked, graph)
        paths.sort(key=lambda p: -p.score)
        return GraphResult(entities=entities, paths=paths[:self.top_paths])

    def _paths_from(self, masked: str, linked: LinkedEntity, graph: KnowledgeGraph) -> list[GraphPath]:
        scored: list[tuple[float, _Walk]] = []
        level = [_start(linked.index)]
        for hop in range(self.hops):
            grown = [w for walk in level for w in self._grow(walk, graph, hop)]
            if not grown:
                break
            names = [tuple(graph.step_name(s) for s in w.steps) for w in grown]
            exact = self.scorer.score(masked, names)
            scored += [(s, w) for s, w in zip(exact, grown) if len(_answers(w, linked.index))]
            if hop + 1 < self.hops:
                prefix = self.scorer.score(masked, names, prefix=True)
                ranked = sorted(zip(prefix, range(len(grown))), key=lambda x: -x[0])[:self.beam]
                level = [grown[i] for _, i in ranked if len(grown[i].ends) <= self.max_frontier]
        scored.sort(key=lambda x: -x[0])
        return [self._path(walk, score, linked, graph) for score, walk in scored[:self.top_paths]]

    def _grow(self, walk: _Walk, graph: KnowledgeGraph, hop: int) -> list[_Walk]:
        """Every one-step extension of `walk`, one per step, computed on the adjacency arrays at once."""
        ends = walk.ends
        if hop > 0:  # a hub ends a path, not a way through; nor does a path pass its own entity again
            ends = ends[(graph.degrees(ends) <= self.max_fanout) & (ends != walk.entity)]
        origin, steps, others, rows = graph.edges_of(ends)
        if not len(steps):
            return []
        order = np.lexsort((others, steps))
        origin, steps, others, rows = origin[order], steps[order], others[order], rows[order]
        grown = []
        bounds = np.flatnonzero(np.diff(steps)) + 1
        for a, b in zip([0, *bounds.tolist()], [*bounds.tolist(), len(steps)]):
            reached, first, routes = np.unique(others[a:b], return_index=True, return_counts=True)
            layer = (reached, origin[a:b][first], rows[a:b][first], routes)
            grown.append(_Walk(walk.entity, (*walk.steps, int(steps[a])), [*walk.layers, layer]))
        return grown

    def _path(self, walk: _Walk, score: float, linked: LinkedEntity, graph: KnowledgeGraph) -> GraphPath:
        reached, _, _, routes = walk.layers[-1]
        keep = reached != linked.index
        reached, routes = reached[keep].tolist(), routes[keep].tolist()
        ranked = [e for _, e in sorted(zip(routes, reached), key=lambda x: (-x[0], graph.names[x[1]]))]
        triples: dict[int, dict[str, Any]] = {}
        routes = []
        for end in ranked:
            route = _route(walk, end)
            if routes and len(triples | dict.fromkeys(route)) > self.evidence:
                break
            for row in route:
                triples.setdefault(row, graph.triple(row))
            routes.append([triples[row]["id"] for row in route])
        return GraphPath(entity=linked.entity, steps=tuple(graph.step_name(s) for s in walk.steps), score=score,
                         answers=[graph.names[e] for e in ranked], triples=list(triples.values()), routes=routes)


def _start(entity: int) -> _Walk:
    one = np.array([entity])
    return _Walk(entity, (), [(one, np.array([-1]), np.array([-1]), np.array([1]))])


def _answers(walk: _Walk, start: int) -> np.ndarray:
    return walk.ends[walk.ends != start]


def _route(walk: _Walk, end: int) -> list[int]:
    """The triple rows from the path's entity to `end`, in order."""
    rows, entity = [], end
    for reached, previous, row, _ in reversed(walk.layers[1:]):
        i = int(np.searchsorted(reached, entity))
        rows.append(int(row[i]))
        entity = int(previous[i])
    return rows[::-1]


def enumerate_paths(graph: KnowledgeGraph, entity: int, *, hops: int = 3, max_fanout: int = 500,
                    max_frontier: int = 5000) -> dict[tuple[str, ...], set[str]]:
    """Every relation path from `entity` (up to `hops`) and the names it reaches, without scoring (for
    labelling training questions: the path whose ends match the gold answers is the question's path)."""
    retriever = PathRetriever(hops=hops, max_fanout=max_fanout, max_frontier=max_frontier, scorer=FixedPathScorer({}))
    out: dict[tuple[str, ...], set[str]] = {}
    level = [_start(entity)]
    for hop in range(hops):
        grown = [w for walk in level for w in retriever._grow(walk, graph, hop)]
        for w in grown:
            ends = _answers(w, entity)
            if len(ends):
                out[tuple(graph.step_name(s) for s in w.steps)] = {graph.names[e] for e in ends.tolist()}
        level = [w for w in grown if len(w.ends) <= max_frontier]
    return out


def mask_mention(question: str, linked: LinkedEntity) -> str:
    """The question with the entity's mention replaced by a placeholder (the path depends on the wording,
    not on the name): "who directed [ENT]". Brackets around a marked mention go too."""
    start, end = linked.start, linked.end
    before, after = question[:start].rstrip(), question[end:].lstrip()
    if before.endswith("[") and after.startswith("]"):
        start, end = len(before) - 1, len(question) - len(after) + 1
    return f"{question[:start]}{MASK}{question[end:]}"
