"""KnowledgeGraph: entities, relations and triples in memory, as compressed adjacency arrays for fast expansion.

Every triple is an edge both ways: `Forrest Gump -directed_by-> Robert Zemeckis` is followed forward from
the film and backward (`~directed_by`) from the director. A step is a relation and a direction, coded as
`2 * relation + (1 if backward)`; each entity's edges are stored sorted by step, so the edges of one step
are one slice.

>>> g = KnowledgeGraph.from_triples([(1, "Forrest Gump", "directed_by", "Robert Zemeckis"),
...                                  (2, "Forrest Gump", "starred_actors", "Tom Hanks"),
...                                  (3, "Cast Away", "starred_actors", "Tom Hanks")])
>>> hanks = g.entity("tom hanks")
>>> [(g.step_name(s), g.names[o]) for s, o, _ in g.edges(hanks)]
[('~starred_actors', 'Forrest Gump'), ('~starred_actors', 'Cast Away')]
>>> g.degree(hanks), len(g), g.n_triples
(2, 4, 3)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pilotfish.errors import GraphError

__all__ = ["KnowledgeGraph", "normalise"]


def normalise(text: str) -> str:
    """A name as the alias index keys it: accents dropped, lower case, punctuation as spaces.

    >>> normalise("  Michèle  Mercier's Film!")
    'michele mercier s film'
    """
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).lower()
    return " ".join(re.sub(r"[^\w]+", " ", folded).split())


class KnowledgeGraph:
    """Entities (by name), relations and triples; `edges(entity)` gives (step, neighbour, triple row)."""

    def __init__(self, names: Sequence[str], relations: Sequence[str], subjects: np.ndarray, predicates: np.ndarray,
                 objects: np.ndarray, triple_ids: np.ndarray, aliases: Iterable[tuple[int, str]] = ()) -> None:
        self.names = list(names)
        self.relations = list(relations)
        self.subjects, self.predicates, self.objects = subjects, predicates, objects
        self.triple_ids = triple_ids
        self.index_of = {name: i for i, name in enumerate(self.names)}
        self.aliases: dict[int, list[str]] = {}
        for entity, alias in aliases:
            if alias != self.names[entity]:
                self.aliases.setdefault(entity, []).append(alias)
        self.by_key: dict[str, list[int]] = {}
        for i, name in enumerate(self.names):
            self.by_key.setdefault(normalise(name), []).append(i)
        for entity, names in self.aliases.items():
            for alias in names:
                entities = self.by_key.setdefault(normalise(alias), [])
                if entity not in entities:
                    entities.append(entity)
        self.by_key.pop("", None)
        self._row_of_id = {int(t): row for row, t in enumerate(triple_ids)}
        n = len(self.names)
        # each triple twice: subject -> object forward, object -> subject backward
        origin = np.concatenate([subjects, objects]).astype(np.int64)
        step = np.concatenate([predicates * 2, predicates * 2 + 1]).astype(np.int32)
        other = np.concatenate([objects, subjects]).astype(np.int32)
        row = np.concatenate([np.arange(len(subjects)), np.arange(len(subjects))]).astype(np.int64)
        order = np.lexsort((step, origin))
        self._step, self._other, self._row = step[order], other[order], row[order]
        self._ptr = np.zeros(n + 1, dtype=np.int64)
        np.add.at(self._ptr, origin + 1, 1)
        np.cumsum(self._ptr, out=self._ptr)

    @classmethod
    def from_triples(cls, triples: Iterable[tuple[int, str, str, str]],
                     aliases: Iterable[tuple[str, str]] = ()) -> KnowledgeGraph:
        """A graph from (triple id, subject, relation, object) names; a repeated triple counts once."""
        names: dict[str, int] = {}
        relations: dict[str, int] = {}
        rows = [(t, names.setdefault(s, len(names)), relations.setdefault(r, len(relations)),
                 names.setdefault(o, len(names))) for t, s, r, o in triples]
        alias_rows = [(names.setdefault(entity, len(names)), alias) for entity, alias in aliases]
        return cls.from_rows([(i, n) for n, i in names.items()], [(i, r) for r, i in relations.items()], rows,
                             alias_rows)

    @classmethod
    def from_rows(cls, entities: Iterable[tuple[int, str]], relations: Iterable[tuple[int, str]],
                  triples: Iterable[tuple[int, int, int, int]], aliases: Iterable[tuple[int, str]] = ()
                  ) -> KnowledgeGraph:
        """A graph from stored rows: (id, name) entities and relations, (id, subject, relation, object) triples
        by those ids, (entity id, alias) aliases. A triple stored twice (by two files) counts once."""
        names, entity_ids = [], {}
        for id_, name in entities:
            entity_ids[id_] = len(names)
            names.append(name)
        relation_names, relation_ids = [], {}
        for id_, name in relations:
            relation_ids[id_] = len(relation_names)
            relation_names.append(name)
        rows: dict[tuple[int, int, int], int] = {}
        for id_, s, r, o in triples:
            rows.setdefault((entity_ids[s], relation_ids[r], entity_ids[o]), id_)
        spo = np.array(list(rows) or np.zeros((0, 3)), dtype=np.int32).reshape(-1, 3)
        ids = np.array(list(rows.values()), dtype=np.int64)
        return cls(names, relation_names, spo[:, 0], spo[:, 1], spo[:, 2], ids,
                   [(entity_ids[e], alias) for e, alias in aliases])

    def __len__(self) -> int:
        return len(self.names)

    @property
    def n_triples(self) -> int:
        return len(self.triple_ids)

    def entity(self, name: str) -> int:
        """The entity called `name` (exactly, else by its normalised name or an alias); `GraphError` names the
        closest names when there is none."""
        if name in self.index_of:
            return self.index_of[name]
        found = self.by_key.get(normalise(name))
        if found:
            return max(found, key=self.degree)
        from rapidfuzz import process

        close = [c for c, _, _ in process.extract(normalise(name), list(self.by_key), limit=6)]
        names = list(dict.fromkeys(self.names[self.by_key[c][0]] for c in close))[:3]
        hint = f"; closest: {', '.join(names)}" if names else ""
        raise GraphError(f"no entity {name!r} in the knowledge graph{hint}")

    def degree(self, entity: int) -> int:
        return int(self._ptr[entity + 1] - self._ptr[entity])

    def degrees(self, entities: np.ndarray) -> np.ndarray:
        return self._ptr[entities + 1] - self._ptr[entities]

    def edges_of(self, entities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every edge of `entities` at once: (origin entity, step, neighbour, triple row) arrays."""
        starts, counts = self._ptr[entities], self.degrees(entities)
        total = int(counts.sum())
        # positions start_i .. start_i + count_i - 1 for every entity, without a Python loop
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        index = offsets + np.arange(total)
        return np.repeat(entities, counts), self._step[index], self._other[index], self._row[index]

    def edges(self, entity: int) -> list[tuple[int, int, int]]:
        """(step, neighbour, triple row) of every edge of `entity`, grouped by step."""
        a, b = self._ptr[entity], self._ptr[entity + 1]
        return list(zip(self._step[a:b].tolist(), self._other[a:b].tolist(), self._row[a:b].tolist()))

    def edge_arrays(self, entity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The same edges as three arrays (steps, neighbours, triple rows), without copying."""
        a, b = self._ptr[entity], self._ptr[entity + 1]
        return self._step[a:b], self._other[a:b], self._row[a:b]

    def step_name(self, step: int) -> str:
        """`directed_by` forward, `~directed_by` backward."""
        return ("~" if step % 2 else "") + self.relations[step // 2]

    def step_of(self, name: str) -> int:
        backward = name.startswith("~")
        relation = name.removeprefix("~")
        if relation not in self.relations:
            raise GraphError(f"no relation {relation!r} in the knowledge graph; known: {', '.join(self.relations)}")
        return 2 * self.relations.index(relation) + int(backward)

    def triple(self, row: int) -> dict[str, Any]:
        """Triple row `row` as {"id", "subject", "relation", "object"} (id: the stored triple's id)."""
        return {"id": int(self.triple_ids[row]), "subject": self.names[int(self.subjects[row])],
                "relation": self.relations[int(self.predicates[row])], "object": self.names[int(self.objects[row])]}

    def row_of(self, triple_id: int) -> int:
        return self._row_of_id[triple_id]

    def neighbourhood(self, entity: int, *, limit: int = 50) -> list[dict[str, Any]]:
        """Up to `limit` edges of `entity` as {"step", "entity", "triple"}, at most `limit // steps` per step first
        so that one crowded relation does not hide the others."""
        edges = self.edges(entity)
        steps = sorted({s for s, _, _ in edges})
        share = max(1, limit // max(1, len(steps)))
        picked = [e for s in steps for e in [x for x in edges if x[0] == s][:share]]
        chosen = set(picked)
        rest = [e for e in edges if e not in chosen]
        return [{"step": self.step_name(s), "entity": self.names[o], "triple": int(self.triple_ids[r])}
                for s, o, r in (picked + rest)[:limit]]
