"""GraphEvidence: the triples of a graph path as numbered evidence for the prompt and the NLI checker, each
cited as `kb:<triple id>`, and the direct answer that names a path's end entities.

>>> from pilotfish.graphs.paths import GraphPath
>>> path = GraphPath(entity="Tom Hanks", steps=("~starred_actors", "directed_by"), score=0.9,
...                  answers=["Penny Marshall"], triples=[
...     {"id": 7, "subject": "Big", "relation": "starred_actors", "object": "Tom Hanks"},
...     {"id": 8, "subject": "Big", "relation": "directed_by", "object": "Penny Marshall"}], routes=[[7, 8]])
>>> [p.text for p in GraphEvidence().passages(path)]
['Big — starred_actors — Tom Hanks', 'Big — directed_by — Penny Marshall']
>>> GraphEvidence().direct_answer(path)
'Penny Marshall [1][2].'
"""

from __future__ import annotations

from typing import Any

from pilotfish.graphs.paths import GraphPath
from pilotfish.types import Passage

__all__ = ["GraphEvidence", "triple_text"]

SOURCE = "knowledge graph"


def triple_text(triple: dict[str, Any]) -> str:
    """`Forrest Gump — directed_by — Robert Zemeckis`."""
    return f"{triple['subject']} — {triple['relation']} — {triple['object']}"


class GraphEvidence:
    """Passages for a path's triples (as many as the `PathRetriever` kept: its `evidence`, and always the first
    answer's whole route), and a direct answer naming up to `answers` entities."""

    def __init__(self, *, answers: int = 10) -> None:
        self.answers = answers

    def passages(self, path: GraphPath) -> list[Passage]:
        return [Passage(chunk_id=f"kb:{t['id']}", doc_id=f"kb:{t['id']}", text=triple_text(t), score=path.score,
                        source=SOURCE, title=t["subject"], retriever="graph",
                        metadata={"kind": "graph", "triple": t["id"], "path": list(path.steps)})
                for t in path.triples]

    def direct_answer(self, path: GraphPath) -> str:
        """The path's end entities, each with the markers of the triples that reach it (passages numbered as
        `passages` numbers them); "and N more" when the path reaches more than `answers`."""
        marker = {t["id"]: n for n, t in enumerate(path.triples, 1)}
        named = []
        for answer, route in zip(path.answers, path.routes):
            if len(named) == self.answers:
                break
            named.append(answer + " " + "".join(f"[{marker[i]}]" for i in route if i in marker))
        more = len(path.answers) - len(named)
        if more:
            named.append(f"{more} more")
        text = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
        return text.rstrip() + "."
