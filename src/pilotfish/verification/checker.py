"""NLIGroundednessChecker: check every claim of an answer against its evidence with a small NLI model.

Each sentence of the answer is a claim. It is scored against every evidence passage (long passages in
sentence windows) and keeps the best-supporting one. `supported` is that window's entailment
probability. A claim is `supported` at or above `threshold`, `contradicted` when some window
contradicts it at or above `contradiction`, else `unsupported`. A claim that cannot be checked (no
evidence, not English) is `unverifiable`, never "supported". A claim with a number that its evidence
passage never writes ("3.3" against "Release 3.4") is capped at `NUMBER_MISSING_CAP`, since the small
model barely tells such numbers apart. Long passages are also read in windows around the sentences that
share the most words with the claim (`focus`), so one line of a longer chunk can support a claim alone,
and against the best-matching sentences of the two best-matching passages joined (`bridge_premise`), so
a claim that needs two passages (a multi-hop answer) can be supported by both together. Numbers are
looked for in all the evidence.

With an `llm`, the checker is itself a cascade: claims whose NLI score falls inside `band` go to the
LLM as a yes/no judge scored by its probability of "Yes"; the clear cases never reach it.

>>> from pilotfish.verification.checker import NLIGroundednessChecker
>>> checker = NLIGroundednessChecker()
>>> v = checker.check("Paris is the capital of France. It has 80 million people.",
...                   ["Paris is the capital and largest city of France."])
>>> [c.label for c in v.claims], v.label
(['supported', 'unsupported'], 'unsupported')
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError
from pilotfish.llms.base import LLM, Usage
from pilotfish.models.nli import NLIModel, NLIScores
from pilotfish.types import Passage

CLAIM_LABELS = ("supported", "unsupported", "contradicted", "unverifiable")
JUDGE_SYSTEM = "You check whether a claim is supported by the evidence. Answer Yes or No."
JUDGE_USER = "Evidence:\n{evidence}\n\nClaim: {claim}\n\nIs the claim supported by the evidence? Answer Yes or No."
SHORT_CLAIM_WORDS = 4  # answers this short are read as "the answer to QUESTION is ANSWER"
JUDGE_EVIDENCE_CHARS = 3000
NUMBER_MISSING_CAP = 0.05  # P(supported) of a claim with a number its evidence does not contain


@dataclass
class ClaimVerdict:
    """One claim's check: label, P(supported), NLI probabilities and which passage supports it best."""

    claim: str
    label: str
    supported: float
    scores: dict[str, float] = field(default_factory=dict)
    passage: int | None = None
    judge: str = "nli"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"supported": round(self.supported, 4)}


@dataclass
class Verdict:
    """The answer's check: the weakest claim decides `supported`; any contradiction makes it `contradicted`."""

    label: str
    supported: float
    claims: list[ClaimVerdict]
    reason: str = ""
    usage: Usage = field(default_factory=Usage)

    @property
    def unsupported(self) -> list[ClaimVerdict]:
        return [c for c in self.claims if c.label != "supported"]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "supported": round(self.supported, 4), "reason": self.reason,
                "claims": [c.to_dict() for c in self.claims], "usage": self.usage.to_dict()}


# "According to the evidence, X" claims X: the lead-in about the sources only confuses the NLI model
_LEAD_IN = re.compile(r"^(?:according to|based on|as (?:stated|mentioned) in)\s+(?:the\s+)?(?:information\s+|text\s+)?"
                      r"(?:evidence|passages?|information|context|documents?|sources?|text)"
                      r"(?:\s+(?:provided|given))?(?:\s+in\s+the\s+(?:evidence|passages?|documents?))?\s*,\s*", re.I)


def split_claims(text: str) -> list[str]:
    """The sentences of an answer, citation markers and lead-ins about the sources removed, with sentencex's
    English rules.

    >>> split_claims("According to the evidence, Paris is in France [1]. Based on the information provided in "
    ...              "the evidence, it is big.")
    ['Paris is in France.', 'it is big.']
    """
    import sentencex

    from pilotfish.prompts.builder import strip_citations

    claims = [_LEAD_IN.sub("", s.strip()) for s in sentencex.segment("en", strip_citations(text))]
    return [c for c in claims if any(ch.isalnum() for ch in c)]


_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
_NUMBER_WORDS = {w: str(n) for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def numbers_in(text: str) -> set[str]:
    """The numbers of `text` as written ("3.4", "2022", "1000" for "1,000"), number words up to twenty as digits.

    >>> sorted(numbers_in("Release 3.4 came out on 7 April 2022 with three fixes and 1,000 tests."))
    ['1000', '2022', '3', '3.4', '7']
    """
    found = {m.group().replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", m.group()) else m.group()
             for m in _NUMBER.finditer(text)}
    return found | {_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in _NUMBER_WORDS}


def missing_numbers(claim: str, evidence: str) -> list[str]:
    """Numbers of the claim that the evidence never writes (a claim "tmux 3.3" against "Release 3.4")."""
    have = numbers_in(evidence)
    return sorted(n for n in numbers_in(claim) - have if not any(h.startswith(n) or n.startswith(h) for h in have
                                                                  if len(h) >= 4 and len(n) >= 4))


def bridge_premise(passages: Sequence[str], hypothesis: str) -> tuple[str, int] | None:
    """The best-matching sentence of each of the two passages that match the hypothesis best, joined in
    passage order, and the index of the better one; None when fewer than two passages match.

    A multi-hop claim ("the team's conference was called X") is supported by two passages together
    and by neither alone.

    >>> bridge_premise(["Ann was born in Oslo. She paints.", "Rain fell.", "Oslo is the capital of Norway."],
    ...                "Ann was born in the capital of Norway.")
    ('Ann was born in Oslo. Oslo is the capital of Norway.', 0)
    """
    from pilotfish.models.nli import word_overlap
    from pilotfish.text import split_sentences

    best: list[tuple[int, int, str]] = []  # (overlap, passage, sentence)
    for j, passage in enumerate(passages):
        sentences = split_sentences(passage)
        if sentences:
            overlap = word_overlap(sentences, hypothesis)
            k = max(range(len(sentences)), key=overlap.__getitem__)
            if overlap[k]:
                best.append((overlap[k], j, sentences[k]))
    if len(best) < 2:
        return None
    top = sorted(best, key=lambda b: (-b[0], b[1]))[:2]
    return " ".join(s for _, _, s in sorted(top, key=lambda b: b[1])), top[0][1]


def as_claim(claim: str, question: str | None) -> str:
    """A short answer ("1969") becomes a sentence the NLI model can read, using its question."""
    if question and question.strip() and len(claim.split()) <= SHORT_CLAIM_WORDS:
        return f'The answer to "{question.strip()}" is {claim.strip().rstrip(".")}.'
    return claim


def language_problem(text: str) -> str | None:
    """Why `text` cannot be checked by an English model, or None. Short or mixed text passes."""
    letters = sum(ch.isalpha() for ch in text)
    if letters < 20:
        return None
    if sum(ch.isalpha() and ch.isascii() for ch in text) / letters < 0.6:
        return "the text is mostly in a non-Latin script; the NLI model reads English only"
    import py3langid

    language, _ = py3langid.classify(text)
    if language != "en" and letters >= 40 and _english_share(text) < 0.1:
        return f"the text looks like '{language}', not English; the NLI model reads English only"
    return None


_COMMON = frozenset("the of and to in is was a for on that by with as at from it are be this which or an his "
                    "her their not has have were had its also but".split())


def _english_share(text: str) -> float:
    words = [w.strip(".,;:!?\"'()").lower() for w in text.split()]
    return sum(w in _COMMON for w in words) / max(1, len(words))


class NLIGroundednessChecker(Component):
    """Claim-level groundedness with the packaged NLI model, and an optional LLM judge for the uncertain band."""

    def __init__(self, *, model: str = "nli-small", threshold: float = 0.5, contradiction: float = 0.5,
                 llm: LLM | None = None, band: tuple[float, float] = (0.1, 0.9), max_length: int = 256,
                 threads: int | None = None, focus: int = 2) -> None:
        for name, value in (("threshold", threshold), ("contradiction", contradiction)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {value}")
        low, high = band
        if not 0.0 <= low <= high <= 1.0:
            raise ConfigError(f"band must be (low, high) with 0 <= low <= high <= 1, got {band}")
        self._config = {"model": model, "threshold": threshold, "contradiction": contradiction,
                        "band": [low, high], "max_length": max_length, "threads": threads, "focus": focus,
                        "llm": getattr(llm, "name", None)}
        self.threshold, self.contradiction, self.band, self.llm = threshold, contradiction, (low, high), llm
        self.focus = focus  # sentences around which extra windows are scored (see NLIModel.windows)
        self.nli = NLIModel(model, max_length=max_length, threads=threads)

    @classmethod
    def from_thresholds(cls, path: str | Path, **kwargs: Any) -> NLIGroundednessChecker:
        """A checker with the thresholds that `save_thresholds` (or `pilotfish check --calibrate`) wrote."""
        try:
            saved = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read checker thresholds from {path}: {err}") from err
        keys = ("threshold", "contradiction", "band")
        return cls(**{k: (tuple(saved[k]) if k == "band" else saved[k]) for k in keys if k in saved} | kwargs)

    @classmethod
    def default(cls, **kwargs: Any) -> NLIGroundednessChecker:
        """A checker with the thresholds calibrated for its model (a `thresholds.json` beside it), if any."""
        from pilotfish.models import model_path

        saved = Path(model_path(kwargs.get("model", "nli-small"))) / "thresholds.json"
        return cls.from_thresholds(saved, **kwargs) if saved.is_file() else cls(**kwargs)

    def save_thresholds(self, path: str | Path, **extra: Any) -> None:
        data = {"threshold": self.threshold, "contradiction": self.contradiction, "band": list(self.band),
                "model": self._config["model"]} | extra
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    def check(self, answer: str, evidence: Sequence[str | Passage], *, question: str | None = None) -> Verdict:
        """Check each sentence of `answer` against `evidence`; see the module docstring for the labels."""
        claims = split_claims(answer)
        if not claims:
            return Verdict("unverifiable", 0.0, [], reason="the answer has no sentence to check")
        verdicts, usage = self.check_claims([(evidence, c, question) for c in claims])
        return summarise(verdicts, usage)

    def check_claims(self, items: Sequence[tuple[Sequence[str | Passage], str, str | None]]
                     ) -> tuple[list[ClaimVerdict], Usage]:
        """Verdicts for (evidence, claim, question) items, batched through the NLI model in one go."""
        texts = [[p.text if isinstance(p, Passage) else str(p) for p in evidence] for evidence, _, _ in items]
        verdicts: list[ClaimVerdict | None] = [None] * len(items)
        jobs: list[tuple[int, int, str, str]] = []  # (item, passage, premise, hypothesis)
        for i, ((_, claim, question), passages) in enumerate(zip(items, texts)):
            passages = [p for p in passages if p.strip()]
            problem = None if passages else "no evidence was given, so nothing can support the claim"
            problem = problem or language_problem(claim) or next(filter(None, map(language_problem, passages)), None)
            if problem:
                verdicts[i] = ClaimVerdict(claim, "unverifiable", 0.0, reason=problem)
                continue
            hypothesis = as_claim(claim, question)
            jobs += [(i, j, p, hypothesis) for j, p in enumerate(texts[i]) if p.strip()]
            bridge = bridge_premise(texts[i], hypothesis) if self.focus else None
            if bridge is not None:
                jobs.append((i, bridge[1], bridge[0], hypothesis))
        windows = self.nli.predict_windows([(p, h) for _, _, p, h in jobs], focus=self.focus)
        best: dict[int, tuple[NLIScores, int]] = {}  # per claim: the most entailing window and its passage
        worst: dict[int, float] = {}  # per claim: the strongest contradiction in any window
        for (i, j, _, _), group in zip(jobs, windows):
            top = max(group, key=lambda s: s.entailment)
            if i not in best or top.entailment > best[i][0].entailment:
                best[i] = (top, j)
            worst[i] = max(worst.get(i, 0.0), *(s.contradiction for s in group))
        usage = Usage()
        for i, (top, j) in best.items():
            claim = items[i][1]
            verdict = ClaimVerdict(claim, "", top.entailment, top.as_dict() | {"max_contradiction": round(worst[i], 4)},
                                   passage=j)
            missing = missing_numbers(claim, " ".join(texts[i] + [items[i][2] or ""]))  # the question's own count
            if missing:  # the small NLI model hardly tells 3.3 from 3.4; a number must be in the evidence
                verdict.supported = min(verdict.supported, NUMBER_MISSING_CAP)
                verdict.reason = f"{', '.join(missing)} not in the evidence"
            low, high = self.band
            if self.llm is not None and not missing and low <= top.entailment < high:
                verdict.supported, used = self._judge(texts[i][j], as_claim(claim, items[i][2]))
                verdict.judge, usage = "llm", usage + used
            verdict.label = self._label(verdict.supported, worst[i], verdict.judge)
            verdicts[i] = verdict
        return [v for v in verdicts if v is not None], usage

    def _label(self, supported: float, contradiction: float, judge: str) -> str:
        if supported >= self.threshold:
            return "supported"
        if judge == "nli" and contradiction >= self.contradiction:
            return "contradicted"
        return "unsupported"

    def _judge(self, evidence: str, claim: str) -> tuple[float, Usage]:
        """P(Yes) from the LLM: one forward pass when the backend exposes option probabilities."""
        assert self.llm is not None
        messages = [{"role": "system", "content": JUDGE_SYSTEM},
                    {"role": "user", "content": JUDGE_USER.format(evidence=evidence[:JUDGE_EVIDENCE_CHARS],
                                                                  claim=claim)}]
        option_probs = getattr(self.llm, "option_probs", None)
        if option_probs is not None:
            probs, usage = option_probs(messages, ["Yes", "No"])
            return probs["Yes"], usage
        reply = self.llm.generate(messages, max_tokens=3)[0]  # backends without probabilities: a hard 0/1
        return (1.0 if reply.text.strip().lower().startswith("yes") else 0.0), reply.usage


def calibrate_threshold(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float, float]:
    """The `supported` threshold with the best balanced accuracy on labelled scores, and that accuracy."""
    positives, negatives = sum(labels), len(labels) - sum(labels)
    if not positives or not negatives:
        raise ConfigError("calibration needs both supported and unsupported examples")
    best = (0.5, -1.0)
    for cut in sorted(set(scores)):
        tpr = sum(s >= cut and y for s, y in zip(scores, labels)) / positives
        tnr = sum(s < cut and not y for s, y in zip(scores, labels)) / negatives
        if (tpr + tnr) / 2 > best[1]:
            best = (cut, (tpr + tnr) / 2)
    return round(best[0], 4), best[1]


def summarise(claims: list[ClaimVerdict], usage: Usage | None = None) -> Verdict:
    """The answer-level verdict from its claims."""
    checkable = [c for c in claims if c.label != "unverifiable"]
    if not checkable:
        reasons = sorted({c.reason for c in claims if c.reason})
        return Verdict("unverifiable", 0.0, claims, reason="; ".join(reasons), usage=usage or Usage())
    supported = min(c.supported for c in checkable)
    labels = {c.label for c in claims}
    label = next(x for x in ("contradicted", "unsupported", "unverifiable", "supported") if x in labels)
    count = sum(c.label == "supported" for c in claims)
    return Verdict(label, supported, claims, reason=f"{count} of {len(claims)} claims supported by the evidence",
                   usage=usage or Usage())
