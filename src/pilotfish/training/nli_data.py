"""NLI training data: human-labelled pairs, and FactCC-style pairs synthesised from real sentences.

Labels are `entailment`, `neutral`, `contradiction`. Synthesis takes documents (lists of sentences)
and makes, from a window of consecutive sentences as the premise:
  entailment     a sentence of the window, or that sentence with a trailing clause dropped
  contradiction  a sentence of the window with a number, year, named entity or negation changed
  neutral        a sentence from another document, or from the same document outside the window

>>> docs = [["Ada Lovelace was born in 1815 in London.", "She wrote the first published program."],
...         ["The Thames flows through London.", "It is 346 kilometres long."]]
>>> pairs = synthesize(docs, per_document=4, seed=0)
>>> sorted({p.label for p in pairs}) == sorted(LABELS)
True
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pilotfish.errors import ConfigError
from pilotfish.jsonl import read_jsonl
from pilotfish.models.nli import LABELS  # the model's logits order is the data's label order

_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
_ENTITY = re.compile(r"\b(?:[A-Z][a-z]+(?:\s+(?:of|the|de|von|van)\s+)?)(?:\s*[A-Z][a-z]+)*\b")
_AUX = re.compile(r"\b(is|was|are|were|has|had|have|can|could|will|would|does|did|should|must)\b")
_NEGATED = re.compile(r"\b(is|was|are|were|has|had|have|can|could|will|would|does|did|should|must) not\b")
_STARTERS = {"The", "A", "An", "In", "On", "At", "It", "He", "She", "They", "This", "These", "Those", "His", "Her",
             "Its", "Their", "After", "Before", "During", "When", "While", "As", "By", "For", "From", "With"}


FIELDS = ("premise", "hypothesis", "label")


@dataclass(frozen=True)
class NLIPair:
    """A labelled pair; `target`, when set, is a teacher's P(entailment) that trains instead of `label`."""

    premise: str
    hypothesis: str
    label: str
    source: str = ""
    target: float | None = None


def load_pairs(paths: Iterable[str | Path], *, source: str | None = None) -> list[NLIPair]:
    """Pairs from JSONL(.gz) files of {"premise", "hypothesis", "label"}; a bad line names its file and number."""
    pairs: list[NLIPair] = []
    for path in map(Path, paths):
        for number, record in read_jsonl(path, error=ConfigError, on_bad_line=_stop_at(path)):
            if not isinstance(record, dict):
                raise ConfigError(f"{path}:{number}: need an object with premise, hypothesis and label, "
                                  f"got {type(record).__name__}")
            missing = [k for k in FIELDS if k not in record]
            if missing:
                raise ConfigError(f"{path}:{number}: need premise, hypothesis and label (no {', '.join(missing)})")
            premise, hypothesis, label = (record[k] for k in FIELDS)
            if not isinstance(premise, str) or not isinstance(hypothesis, str):
                raise ConfigError(f"{path}:{number}: premise and hypothesis must be strings")
            if label not in LABELS:
                raise ConfigError(f"{path}:{number}: label {label!r} is not one of {', '.join(LABELS)}")
            if premise.strip() and hypothesis.strip():
                pairs.append(NLIPair(premise.strip(), hypothesis.strip(), label, source or path.name))
    return pairs


def _stop_at(path: Path) -> Callable[[int, str], None]:
    """An `on_bad_line` that stops the read with a ConfigError naming `path:line`, as this module's errors do."""
    def stop(number: int, reason: str) -> None:
        raise ConfigError(f"{path}:{number}: {reason}")
    return stop


def synthesize(documents: Sequence[Sequence[str]], *, per_document: int = 3, window: int = 3,
               seed: int = 0) -> list[NLIPair]:
    """About `per_document` pairs of each label from every document with at least one usable sentence."""
    rng = random.Random(seed)
    entities = [e for doc in documents for s in doc for e in _entities(s)]
    pairs: list[NLIPair] = []
    for d, doc in enumerate(documents):
        sentences = [s.strip() for s in doc if 6 <= len(s.split()) <= 60]
        if not sentences:
            continue
        for _ in range(per_document):
            start = rng.randrange(len(sentences))
            span = sentences[start:start + window]
            premise = " ".join(span)
            chosen = rng.choice(span)
            pairs.append(NLIPair(premise, _entailed(chosen, rng), "entailment", "synthetic"))
            contradiction = _contradict(chosen, entities, rng)
            if contradiction is not None:
                pairs.append(NLIPair(premise, contradiction, "contradiction", "synthetic"))
            outside = [s for i, s in enumerate(sentences) if not start <= i < start + window]
            if outside and rng.random() < 0.5:
                pairs.append(NLIPair(premise, rng.choice(outside), "neutral", "synthetic"))
            elif len(documents) > 1:
                other = documents[rng.choice([i for i in range(len(documents)) if i != d])]
                usable = [s for s in other if 6 <= len(s.split()) <= 60]
                if usable:
                    pairs.append(NLIPair(premise, rng.choice(usable).strip(), "neutral", "synthetic"))
    return pairs


def _entailed(sentence: str, rng: random.Random) -> str:
    """The sentence itself, or without a trailing clause ("X did Y, which Z" -> "X did Y.")."""
    head, comma, _ = sentence.rpartition(", ")
    if comma and len(head.split()) >= 5 and rng.random() < 0.5 and not head.lower().endswith((" and", " or")):
        return head.rstrip(" ,;") + "."
    return sentence


def _contradict(sentence: str, entities: Sequence[str], rng: random.Random) -> str | None:
    """The sentence with one fact changed; None when nothing in it can be changed safely."""
    moves = []
    if _YEAR.search(sentence):
        moves.append(lambda: _YEAR.sub(lambda m: str(int(m.group()) + rng.choice([-7, -3, -2, 2, 4, 9])),
                                       sentence, count=1))
    elif _NUMBER.search(sentence):
        moves.append(lambda: _NUMBER.sub(lambda m: _other_number(m.group(), rng), sentence, count=1))
    own = _entities(sentence)
    if own and entities:
        def swap() -> str:
            old = rng.choice(own)
            candidates = [e for e in entities if e != old and e not in sentence]
            return sentence.replace(old, rng.choice(candidates), 1) if candidates else sentence
        moves.append(swap)
    if _NEGATED.search(sentence):
        moves.append(lambda: _NEGATED.sub(lambda m: m.group(1), sentence, count=1))
    elif _AUX.search(sentence):
        moves.append(lambda: _AUX.sub(lambda m: m.group(1) + " not", sentence, count=1))
    rng.shuffle(moves)
    for move in moves:
        changed = move()
        if changed != sentence:
            return changed
    return None


def _other_number(text: str, rng: random.Random) -> str:
    value = float(text.replace(",", ""))
    factor = rng.choice([0.5, 2, 3, 10]) if value > 3 else rng.choice([2, 3, 5])
    new = value * factor if rng.random() < 0.5 or value < 2 else value / factor
    return str(int(new)) if "." not in text else f"{new:.1f}"


def _entities(sentence: str) -> list[str]:
    """Capitalised spans that are not just the sentence's first word."""
    found = []
    for match in _ENTITY.finditer(sentence):
        span = match.group().strip()
        if match.start() == 0 and span.split()[0] in _STARTERS:
            continue
        if len(span) > 2:
            found.append(span)
    return found
