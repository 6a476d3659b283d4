"""Labelling questions with their relation paths, for `pilotfish train paths`.

A line `{"question", "answers"}` names no path; the graph finds it. From the question's linked entity every
path of up to `hops` steps is followed, and the path whose end entities best match the answers (F1) is the
question's path. When several match equally well (a director who also wrote all his films), the path that
wins most often over the whole file is taken. Questions whose best path scores under `min_f1` are left out.

>>> from pilotfish.graphs.graph import KnowledgeGraph
>>> g = KnowledgeGraph.from_triples([(1, "Big", "directed_by", "Penny Marshall"), (2, "Big", "release_year", "1988"),
...                                  (3, "Heat", "directed_by", "Michael Mann"), (4, "Heat", "release_year", "1995")])
>>> found = label_questions([(1, "who directed [Big]", ["Penny Marshall"]), (2, "when was [Heat] out", ["1995"]),
...                          (3, "who made [Nothing]", ["x"])], g)
>>> found.examples
[('who directed [ENT]', ('directed_by',)), ('when was [ENT] out', ('release_year',))]
>>> found.skipped
[(3, 'no entity of the graph is linked')]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pilotfish.graphs.graph import KnowledgeGraph
from pilotfish.graphs.linker import EntityLinker
from pilotfish.graphs.paths import enumerate_paths, mask_mention

__all__ = ["LabelledPaths", "label_questions"]


@dataclass
class LabelledPaths:
    examples: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (masked question, path)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, why)
    f1: list[float] = field(default_factory=list)  # each kept example's match of ends and answers


def label_questions(records: Iterable[tuple[int, str, Sequence[str]]], graph: KnowledgeGraph, *,
                    linker: EntityLinker | None = None, hops: int = 3, min_f1: float = 0.5,
                    progress: Callable[[int], Any] | None = None) -> LabelledPaths:
    """(line, question, answers) records -> (masked question, path) examples; see the module docstring."""
    linker = linker or EntityLinker(context=False)
    pending: list[tuple[str, list[tuple[str, ...]], float]] = []
    out = LabelledPaths()
    for line, question, answers in records:
        if progress is not None:
            progress(1)
        linked = linker.link(question, graph)
        if not linked:
            out.skipped.append((line, "no entity of the graph is linked"))
            continue
        gold = set(answers)
        best, tied = 0.0, []
        for path, ends in enumerate_paths(graph, linked[0].index, hops=hops).items():
            hit = len(ends & gold)
            f1 = 2 * hit / (len(ends) + len(gold)) if hit else 0.0
            if f1 > best + 1e-9:
                best, tied = f1, [path]
            elif f1 and abs(f1 - best) <= 1e-9:
                tied.append(path)
        if best < min_f1:
            out.skipped.append((line, f"no path of up to {hops} steps reaches the answers (best F1 {best:.2f})"))
            continue
        pending.append((mask_mention(question, linked[0]), tied, best))
    wins = Counter(p for _, tied, _ in pending for p in tied)
    for masked, tied, f1 in pending:
        out.examples.append((masked, max(tied, key=lambda p: (wins[p], -len(p)))))
        out.f1.append(f1)
    return out


def evaluate_scorer(scorer: Any, records: Sequence[tuple[int, str, Sequence[str]]], graph: KnowledgeGraph, *,
                    hops: int = 3, linker: EntityLinker | None = None,
                    progress: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """hits@1 of the graph path with `scorer` on (line, question, answers) records: the top answer is one of them."""
    from pilotfish.graphs.paths import PathRetriever

    linker = linker or EntityLinker(context=False)
    retriever = PathRetriever(scorer=scorer, hops=hops)
    hits = linked = 0
    for _, question, answers in records:
        result = retriever.retrieve(question, graph, linker)
        linked += bool(result.entities)
        hits += bool(result.answers) and result.answers[0] in set(answers)
        if progress is not None:
            progress(1)
    n = max(1, len(records))
    return {"questions": len(records), "hits_at_1": round(hits / n, 4), "linked": round(linked / n, 4)}
