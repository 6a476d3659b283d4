"""EntityLinker: find the knowledge graph's entities a question is about, without any marking in the question.

Mentions come from every word n-gram that is an entity's name or alias (case-exact, then normalised) and
from spaCy's named entities, which also look up names by BM25 and fuzzy match (a misspelt or partial name).
Each (mention, entity) candidate is scored from small signals: how it matched, how long the mention is,
whether its words are stop words, whether they are capitalised where the rest of the question is not,
whether spaCy saw an entity there, how similar the question is to the entity's neighbourhood (MiniLM), and
the entity's degree. The best candidates whose mentions do not overlap are the links.

A question that marks its entity in brackets (`what did [Tom Hanks] act in`) links that name directly.

>>> from pilotfish.graphs.graph import KnowledgeGraph
>>> g = KnowledgeGraph.from_triples([(1, "Big", "starred_actors", "Tom Hanks"), (2, "Big", "release_year", "1988"),
...                                  (3, "Heat", "directed_by", "Michael Mann")])
>>> linker = EntityLinker(ner=False, context=False)
>>> [(e.mention, e.entity) for e in linker.link("which films did Tom Hanks star in", g)]
[('Tom Hanks', 'Tom Hanks')]
>>> linker.link("what is the weather like", g)
[]
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import asdict, dataclass
from typing import Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError
from pilotfish.graphs.graph import KnowledgeGraph, normalise

__all__ = ["EntityLinker", "LinkedEntity"]

_BRACKETS = re.compile(r"\[([^\[\]]+)\]")
# words that ask rather than name: a mention made only of these is most likely not an entity
_QUESTION_WORDS = frozenset("""what which who whom whose when where why how is are was were be been do does did
done have has had the a an of in on at to for from by with about as and or not no it its this that these those
there their they them he she his her i you we my your our me us any some all many much more most one ones also
can could would should will shall may might must film films movie movies show shows book books
""".split())
# weights of the signals (set on MetaQA's training split of dev questions; BENCHMARKS.md, Knowledge graphs)
WEIGHTS = {"match": 1.0, "length": 0.3, "stop": 1.2, "capital": 0.45, "ner": 0.2, "inside": 0.5, "context": 0.5,
           "degree": 0.15}


@dataclass(frozen=True)
class LinkedEntity:
    """A mention of the question linked to an entity, its score and why (the signals that made it)."""

    mention: str
    entity: str
    index: int  # the entity's row in the graph
    score: float
    start: int  # the mention's characters in the question
    end: int
    why: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["score"] = round(self.score, 4)
        del out["index"]
        return out


@dataclass
class _Candidate:
    start: int  # token positions [start, end)
    end: int
    entity: int
    match: float
    how: str
    features: dict[str, float] | None = None
    score: float = 0.0


class EntityLinker(Component):
    """`link(question, graph)` -> the linked entities, best first, mentions not overlapping."""

    def __init__(self, *, max_ngram: int = 10, ner: bool = True, fuzzy: bool = True, context: bool = True,
                 max_entities: int = 3, min_score: float = 0.8, candidates: int = 8,
                 embedding_model: str = "minilm-l6", ner_model: str = "spacy-sm") -> None:
        if max_ngram < 1 or max_entities < 1 or candidates < 1:
            raise ConfigError("max_ngram, max_entities and candidates must be at least 1")
        self._config = {"max_ngram": max_ngram, "ner": ner, "fuzzy": fuzzy, "context": context,
                        "max_entities": max_entities, "min_score": min_score, "candidates": candidates,
                        "embedding_model": embedding_model, "ner_model": ner_model}
        self.max_ngram, self.max_entities, self.min_score = max_ngram, max_entities, min_score
        self.ner, self.fuzzy, self.context, self.candidates = ner, fuzzy, context, candidates
        self.embedding_model, self.ner_model = embedding_model, ner_model
        self._lock = threading.Lock()
        self._nlp: Any = None
        self._embedder: Any = None
        # per graph (the last one linked against): BM25 over its names, and its entities' neighbourhood vectors
        self._graph: tuple[KnowledgeGraph, _NameIndex, dict[int, Any]] | None = None

    # -- the public operations ------------------------------------------------------------------
    def link(self, question: str, graph: KnowledgeGraph, *, alternatives: float | None = None) -> list[LinkedEntity]:
        """The entities `question` is about (at most `max_entities`), best first; [] when none scores
        `min_score`. With `alternatives`, other entities of a chosen mention that score within that much of it
        follow (a film and a tag both called "Heat": the relation paths decide)."""
        marked = _BRACKETS.search(question)
        if marked:
            return self._marked(question, marked, graph)
        tokens, candidates = self._scored(question, graph)
        if not candidates:
            return []
        return self._choose(question, tokens, candidates, graph, alternatives)

    def candidates_of(self, question: str, graph: KnowledgeGraph) -> list[dict[str, Any]]:
        """Every scored candidate with its signals, best first (for looking into the linker's choices)."""
        tokens, candidates = self._scored(question, graph)
        return [{"mention": question[tokens[c.start][0]:tokens[c.end - 1][1]], "entity": graph.names[c.entity],
                 "score": round(c.score, 4), "how": c.how, **{k: round(v, 3) for k, v in (c.features or {}).items()}}
                for c in sorted(candidates, key=lambda c: -c.score)]

    def _scored(self, question: str, graph: KnowledgeGraph) -> tuple[list[tuple[int, int, str]], list[_Candidate]]:
        """The question's word tokens and every candidate (exact n-grams, then names near spaCy's entities),
        scored."""
        tokens = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\w+", question)]
        candidates = self._exact(question, tokens, graph)
        spans = self._ner_spans(question, tokens) if self.ner and tokens else []
        if self.fuzzy:
            covered = {(c.start, c.end) for c in candidates}
            for span in spans:
                if span not in covered:
                    candidates += self._fuzzy(tokens, span, graph)
        if candidates:
            self._score(question, tokens, candidates, spans, graph)
        return tokens, candidates

    # -- candidates -----------------------------------------------------------------------------
    def _marked(self, question: str, marked: re.Match[str], graph: KnowledgeGraph) -> list[LinkedEntity]:
        name = marked.group(1).strip()
        start = marked.start(1) + marked.group(1).index(name)
        found = graph.index_of.get(name)
        how = "marked in brackets, exact name"
        if found is None:
            options = graph.by_key.get(normalise(name), [])
            found = max(options, key=graph.degree) if options else None
            how = "marked in brackets, normalised name"
        if found is None:
            return []
        return [LinkedEntity(mention=name, entity=graph.names[found], index=found, score=1.0, start=start,
                             end=start + len(name), why=how)]

    def _exact(self, question: str, tokens: list[tuple[int, int, str]], graph: KnowledgeGraph) -> list[_Candidate]:
        """Every n-gram that is a name or an alias: 1.0 when its characters equal the name, else 0.85."""
        keys = [normalise(t) for _, _, t in tokens]
        found: list[_Candidate] = []
        for n in range(min(self.max_ngram, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                key = " ".join(k for k in keys[i:i + n] if k)
                entities = graph.by_key.get(key)
                if not entities:
                    continue
                text = question[tokens[i][0]:tokens[i + n - 1][1]]
                for entity in entities:
                    exact = graph.names[entity] == text or text in graph.aliases.get(entity, ())
                    found.append(_Candidate(i, i + n, entity, 1.0 if exact else 0.85,
                                            "exact name" if exact else "normalised name"))
        return found

    def _fuzzy(self, tokens: list[tuple[int, int, str]], span: tuple[int, int],
               graph: KnowledgeGraph) -> list[_Candidate]:
        """Names close to a named entity's words: BM25 over the names, then a fuzzy ratio decides."""
        from rapidfuzz import fuzz

        query = normalise(" ".join(t for _, _, t in tokens[span[0]:span[1]]))
        if not query:
            return []
        index, keys = self._name_index(graph)
        found: list[_Candidate] = []
        for row in index.query(query, self.candidates):
            key = keys[row]
            ratio = fuzz.ratio(query, key) / 100
            part = len(query) >= 4 and set(query.split()) < set(key.split())  # "Zemeckis" of "Robert Zemeckis"
            if ratio >= 0.85 or part:
                how = f"fuzzy {ratio:.2f}" if ratio >= 0.85 else "part of the name"
                for entity in graph.by_key[key]:
                    found.append(_Candidate(span[0], span[1], entity, 0.8 * ratio if ratio >= 0.85 else 0.65, how))
        return found

    def _cached(self, graph: KnowledgeGraph) -> tuple[KnowledgeGraph, _NameIndex, dict[int, Any]]:
        """What is kept for `graph`; a new graph (a new ingest's generation) starts afresh."""
        with self._lock:
            if self._graph is None or self._graph[0] is not graph:
                self._graph = (graph, _NameIndex(list(graph.by_key)), {})
            return self._graph

    def _name_index(self, graph: KnowledgeGraph) -> tuple[Any, list[str]]:
        index = self._cached(graph)[1]
        return index, index.keys

    def _ner_spans(self, question: str, tokens: list[tuple[int, int, str]]) -> list[tuple[int, int]]:
        """spaCy's named entities as token spans of ours (none when the model is not installed)."""
        nlp = self._spacy()
        if nlp is None:
            return []
        spans = []
        for ent in nlp(question).ents:
            inside = [i for i, (a, b, _) in enumerate(tokens) if a >= ent.start_char and b <= ent.end_char]
            if inside and ent.label_ not in ("CARDINAL", "ORDINAL", "QUANTITY", "PERCENT", "MONEY", "TIME"):
                spans.append((inside[0], inside[-1] + 1))
        return spans

    def _spacy(self) -> Any:
        if self._nlp is None:
            with self._lock:
                if self._nlp is None:
                    self._nlp = _load_spacy(self.ner_model)
        return self._nlp or None

    # -- scoring --------------------------------------------------------------------------------
    def _score(self, question: str, tokens: list[tuple[int, int, str]], candidates: list[_Candidate],
               spans: list[tuple[int, int]], graph: KnowledgeGraph) -> None:
        words = [t for _, _, t in tokens]
        # capitals say "a name" only where the rest of the question is mostly lower case
        informative = sum(w[:1].islower() for w in words) >= len(words) / 2
        most = max((graph.degree(c.entity) for c in candidates), default=1)
        for c in candidates:
            # a question word counts as a name's word where it is capitalised mid-question ("The Descent")
            content = [w for i, w in enumerate(words[c.start:c.end], c.start) if w.lower() not in _QUESTION_WORDS
                       or (informative and i > 0 and w[:1].isupper())]
            capital = (sum(w[:1].isupper() or w[:1].isdigit() for w in content) / len(content)
                       if informative and content else 0.0)
            ner = float((c.start, c.end) in spans)
            # longest match: a mention inside another name's mention is most likely part of that name
            inside = any(o.start <= c.start and c.end <= o.end and o.end - o.start > c.end - c.start
                         and o.match >= 0.85 for o in candidates)
            c.features = {"match": c.match, "length": min(len(content), 5), "stop": -float(not content),
                          "capital": capital,
                          "ner": ner, "inside": -float(inside), "context": 0.0,
                          "degree": math.log1p(graph.degree(c.entity)) / math.log1p(max(most, 1))}
        if self.context:
            self._add_context(question, candidates, graph)
        for c in candidates:
            assert c.features is not None
            c.score = sum(WEIGHTS[k] * v for k, v in c.features.items())

    def _add_context(self, question: str, candidates: list[_Candidate], graph: KnowledgeGraph) -> None:
        """Cosine between the question and each leading candidate's neighbourhood, in words."""
        import numpy as np

        for c in candidates:  # a first ranking without context picks whom to embed
            c.score = sum(WEIGHTS[k] * v for k, v in (c.features or {}).items())
        ranked = sorted(candidates, key=lambda c: -c.score)[:self.candidates]
        embedder = self._embedding()
        profiles = self._cached(graph)[2]
        missing = list(dict.fromkeys(c.entity for c in ranked if c.entity not in profiles))
        if missing:
            for e, v in zip(missing, embedder.encode_documents([profile(graph, e) for e in missing])):
                profiles[e] = v
        q = embedder.encode_queries([question])[0]
        for c in ranked:
            assert c.features is not None
            c.features["context"] = float(np.dot(q, profiles[c.entity]))

    def _embedding(self) -> Any:
        if self._embedder is None:
            from pilotfish.models.embedding import Embedder

            self._embedder = Embedder(model=self.embedding_model)
        return self._embedder

    def _choose(self, question: str, tokens: list[tuple[int, int, str]], candidates: list[_Candidate],
                graph: KnowledgeGraph, alternatives: float | None = None) -> list[LinkedEntity]:
        chosen: list[_Candidate] = []
        ranked = sorted(candidates, key=lambda c: (-c.score, -graph.degree(c.entity)))
        for c in ranked:
            if c.score < self.min_score or len(chosen) == self.max_entities:
                break
            if all(c.end <= o.start or c.start >= o.end for o in chosen):
                chosen.append(c)
        if alternatives is not None:
            others = [c for c in ranked if c not in chosen and c.score >= self.min_score and any(
                (c.start, c.end) == (o.start, o.end) and c.score >= o.score - alternatives for o in chosen)]
            chosen += list({c.entity: c for c in others if c.entity not in {o.entity for o in chosen}}.values())
        out = []
        for c in chosen:
            f = c.features or {}
            why = [c.how] + [f"{k} {f[k]:.2f}" for k in ("capital", "ner", "context") if f.get(k)]
            out.append(LinkedEntity(mention=question[tokens[c.start][0]:tokens[c.end - 1][1]],
                                    entity=graph.names[c.entity], index=c.entity, score=c.score,
                                    start=tokens[c.start][0], end=tokens[c.end - 1][1], why=", ".join(why)))
        return out


def profile(graph: KnowledgeGraph, entity: int, *, limit: int = 12) -> str:
    """An entity in words for the context signal: its name, then its relations and a few neighbours."""
    parts = [graph.names[entity]]
    for edge in graph.neighbourhood(entity, limit=limit):
        parts.append(f"{edge['step'].lstrip('~').replace('_', ' ')} {edge['entity']}")
    return "; ".join(parts)


class _NameIndex:
    """BM25 over the normalised names (bm25s), for candidates that are not an exact n-gram."""

    def __init__(self, keys: list[str]) -> None:
        import bm25s

        from pilotfish.retrievers.bm25 import calm_bm25s_logger

        calm_bm25s_logger()
        self.keys = keys
        self._index = bm25s.BM25()
        self._index.index(bm25s.tokenize(keys, stopwords=None, show_progress=False), show_progress=False)

    def query(self, text: str, k: int) -> list[int]:
        rows, scores = self._index.retrieve([text.split()], k=min(k, len(self.keys)), show_progress=False)
        return [int(r) for r, s in zip(rows[0], scores[0]) if s > 0]


def _load_spacy(name: str) -> Any:
    """spaCy with the registry's NER model, or False when either is missing (linking then uses n-grams only)."""
    import logging

    try:
        import spacy

        from pilotfish.models import model_path

        return spacy.load(str(model_path(name)), disable=["parser", "lemmatizer"])
    except Exception as err:  # spaCy not installed, or the model not pulled
        logging.getLogger(__name__).info("entity linking without NER: %s", err)
        return False
