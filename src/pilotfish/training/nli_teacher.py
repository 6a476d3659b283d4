"""Claim/evidence pairs from your own passages, labelled by an LLM teacher, to distil into the NLI model.

From each sampled passage (a knowledge-base chunk) come claims of three kinds, as in the synthetic NLI
data (`nli_data.synthesize`): one of its sentences (perhaps trimmed), that sentence with a fact changed,
and a sentence from another passage (of the same document or another one). The kind is only a prior:
the teacher, an LLM asked whether the passage supports the claim, gives each pair its label, P("Yes"),
in one forward pass (`option_probs`). Labels are saved to a JSONL file as they come, so an interrupted
run resumes where it stopped.

>>> passages = [("d1", "Aspirin lowers fever in adults. It was first made in 1897 by Felix Hoffmann."),
...             ("d2", "Vitamin D is made in the skin under sunlight. Deficiency weakens bones in children.")]
>>> pairs = claim_pairs(passages, per_passage=1, seed=0)
>>> sorted({p.kind for p in pairs}) <= ["contradiction", "entailment", "neutral"], pairs[0].premise == passages[0][1]
(True, True)
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.training.nli_data import _contradict, _entailed, _entities

logger = logging.getLogger(__name__)

MIN_WORDS, MAX_WORDS = 6, 60  # sentences outside this range make poor claims
# Scraped abstracts often lose the space after a full stop ("disabilities.A line scan"): restore it
# before splitting, or a whole abstract reads as one sentence.
_GLUED = re.compile(r"(?<=[a-z)\]%0-9])\.(?=[A-Z][a-z])")


@dataclass(frozen=True)
class ClaimPair:
    """A passage, a claim about it, how the claim was made, and (once labelled) the teacher's P(supported)."""

    premise: str
    hypothesis: str
    kind: str
    doc_id: str = ""
    teacher: float | None = None

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.premise}\x00{self.hypothesis}".encode()).hexdigest()[:20]


def sample_passages(rows: Sequence[Any], n: int, *, seed: int = 0, min_words: int = 30) -> list[tuple[str, str]]:
    """(doc_id, text) of `n` passages drawn at random (fixed by `seed`) from corpus rows of at least
    `min_words` words; all of them when there are fewer. The first `n` of a larger draw are the same."""
    usable = [(r.doc_id, r.text) for r in rows if len(r.text.split()) >= min_words]
    if not usable:
        raise ConfigError(f"no passage has {min_words} words or more: ingest your documents first")
    random.Random(seed).shuffle(usable)  # a larger n extends a smaller one's sample, so cached labels stay useful
    return usable[:n]


def claim_pairs(passages: Sequence[tuple[str, str]], *, per_passage: int = 1, seed: int = 0) -> list[ClaimPair]:
    """About `per_passage` claims of each kind from every (doc_id, passage text) with a usable sentence."""
    from pilotfish.text import split_sentences

    rng = random.Random(seed)
    split = [(doc, text, [s.strip() for s in split_sentences(_GLUED.sub(". ", text))
                          if MIN_WORDS <= len(s.split()) <= MAX_WORDS]) for doc, text in passages]
    entities = [e for _, _, sentences in split for s in sentences for e in _entities(s)]
    by_doc: dict[str, list[int]] = {}
    for i, (doc, _, _) in enumerate(split):
        by_doc.setdefault(doc, []).append(i)
    usable = [i for i, (_, _, sentences) in enumerate(split) if sentences]
    pairs: list[ClaimPair] = []
    for i in usable:
        doc, text, sentences = split[i]
        for _ in range(per_passage):
            chosen = rng.choice(sentences)
            pairs.append(ClaimPair(text, _entailed(chosen, rng), "entailment", doc))
            changed = _contradict(chosen, entities, rng)
            if changed is not None:
                pairs.append(ClaimPair(text, changed, "contradiction", doc))
            # A sentence of the same document is on topic yet often unsupported: the hard kind of neutral.
            siblings = [j for j in by_doc[doc] if j != i and split[j][2]]
            others = siblings if siblings and rng.random() < 0.5 else [j for j in usable if split[j][0] != doc]
            if others:
                pairs.append(ClaimPair(text, rng.choice(split[rng.choice(others)][2]), "neutral", doc))
    return pairs


def teacher_label(pairs: Sequence[ClaimPair], llm: Any, *, cache: str | Path | None = None,
                  max_chars: int = 3000, progress: Callable[[int], None] | None = None,
                  deadline: float | None = None) -> list[ClaimPair]:
    """The pairs with `teacher` set to the LLM's P("Yes"), reusing and extending the JSONL `cache`.

    Stops early (returning the pairs labelled so far) at `deadline` (a `time.monotonic()` value).
    """
    from pilotfish.verification.checker import JUDGE_SYSTEM, JUDGE_USER

    if getattr(llm, "option_probs", None) is None:
        raise ConfigError(f"the teacher {getattr(llm, 'model', llm)!r} cannot give option probabilities; use a "
                          "local model (e.g. qwen2.5-1.5b) as the teacher")
    known = read_labels(cache) if cache else {}
    labelled: list[ClaimPair] = []
    sink = open(cache, "a", encoding="utf-8") if cache else None  # noqa: SIM115  (closed below)
    if sink is not None and sink.tell() > 0 and not _ends_with_newline(Path(cache)):  # type: ignore[arg-type]
        sink.write("\n")  # a run killed mid-line: start the next label on a line of its own
    try:
        for pair in pairs:
            if pair.key in known:
                labelled.append(ClaimPair(**{**asdict(pair), "teacher": known[pair.key]}))
            else:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                messages = [{"role": "system", "content": JUDGE_SYSTEM},
                            {"role": "user", "content": JUDGE_USER.format(evidence=pair.premise[:max_chars],
                                                                          claim=pair.hypothesis)}]
                probs, _ = llm.option_probs(messages, ["Yes", "No"])
                labelled.append(ClaimPair(**{**asdict(pair), "teacher": round(float(probs["Yes"]), 5)}))
                if sink is not None:
                    sink.write(json.dumps({"key": pair.key, **asdict(labelled[-1])}) + "\n")
                    sink.flush()
            if progress:
                progress(1)
    finally:
        if sink is not None:
            sink.close()
    return labelled


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def read_labels(path: str | Path) -> dict[str, float]:
    """Teacher labels saved by `teacher_label`, by pair key; a missing file is empty, a torn last line skipped."""
    path = Path(path)
    if not path.is_file():
        return {}
    labels: dict[str, float] = {}
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
            labels[record["key"]] = float(record["teacher"])
        except (ValueError, KeyError, TypeError):
            logger.warning("%s line %d is not a teacher label; skipped", path, number)
    return labels
