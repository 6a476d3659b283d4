"""AnswerVerifier: what the answer graph does with an NLI verdict.

Actions, chosen per pipeline:
  accept    keep the answer, attach the verdict (per-claim labels in the answer and its trace)
  drop      remove the unsupported sentences; nothing left -> abstain
  rewrite   the small LLM rewrites the answer keeping only what the evidence supports, then re-checks
  retrieve  search again with the unsupported claims as queries and regenerate (at most `retries`
            times), then drop what is still unsupported
  abstain   an answer that is not supported becomes an honest "cannot answer from the documents";
            `basis` says what "supported" means for the whole answer: every claim supported (weakest,
            the default), or the best-supported claim, or the claims' mean support, at or above
            `abstain_below` (default: the checker's threshold); `when = "single-hop"` checks only
            questions that the decomposer's rule gate reads as one fact, since a multi-hop answer is
            often true while no passage entails it alone (BENCHMARKS.md, Verification)

>>> from pilotfish.verification.repair import AnswerVerifier
>>> verifier = AnswerVerifier(action="drop")                           # loads nothing yet
>>> answer = "Paris is in France. It has 80 million people."
>>> verdict = verifier.check("Where is Paris?", answer, ["Paris is the capital and largest city of France."])
>>> verdict.label, verifier.apply(answer, verdict)[:2]
('unsupported', ('Paris is in France.', 'dropped 1 unsupported claim(s)'))
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.llms.base import LLM, Usage
from pilotfish.prompts.builder import ABSTAIN_TEXT, is_abstention
from pilotfish.types import Passage
from pilotfish.verification.checker import NLIGroundednessChecker, Verdict

ACTIONS = ("accept", "drop", "rewrite", "retrieve", "abstain")
BASES = ("weakest", "best", "mean")
WHEN = ("always", "single-hop")
REWRITE_SYSTEM = ("You edit answers so that they say only what the evidence supports. Keep the citation "
                  "markers like [1]. If nothing is supported, reply exactly: I cannot answer this from the "
                  "documents.")
REWRITE_USER = ("Evidence:\n{evidence}\n\nQuestion: {question}\n\nAnswer to edit: {answer}\n\n"
                "These parts are not supported by the evidence: {claims}\n\nThe edited answer:")


class AnswerVerifier:
    """Check an answer with an `NLIGroundednessChecker` and act on the verdict (see the module docstring)."""

    def __init__(self, checker: NLIGroundednessChecker | None = None, *, action: str = "drop", retries: int = 1,
                 rewrite_llm: LLM | None = None, basis: str = "weakest", abstain_below: float | None = None,
                 when: str = "always") -> None:
        if action not in ACTIONS:
            raise ConfigError(f"unknown verify action {action!r}: use one of {', '.join(ACTIONS)}")
        if basis not in BASES:
            raise ConfigError(f"unknown verify basis {basis!r}: use one of {', '.join(BASES)}")
        if when not in WHEN:
            raise ConfigError(f"unknown verify when {when!r}: use one of {', '.join(WHEN)}")
        if abstain_below is not None and not 0.0 <= abstain_below <= 1.0:
            raise ConfigError(f"abstain_below must be a probability in [0, 1], got {abstain_below}")
        self.basis, self.abstain_below, self.when = basis, abstain_below, when
        if not 0 <= retries <= 3:
            raise ConfigError(f"retries must be between 0 and 3 (each one re-runs retrieval and the LLM), "
                              f"got {retries}")
        self.checker = checker or NLIGroundednessChecker()
        self.action, self.retries, self.rewrite_llm = action, retries, rewrite_llm

    def check(self, question: str, text: str, passages: Sequence[Passage]) -> Verdict | None:
        """The verdict on an answer, or None for an abstention (nothing to check)."""
        if is_abstention(text):
            return None
        return self.checker.check(text, passages, question=question)

    def skips(self, question: str) -> str | None:
        """Why this verifier leaves the question's answer unchecked (`when = "single-hop"`), or None."""
        if self.when == "single-hop":
            from pilotfish.prompts.decompose import gate_reasons

            reasons = gate_reasons(question)
            if reasons:
                return f"not checked: the question looks multi-hop ({'; '.join(reasons)})"
        return None

    def wants_retry(self, verdict: Verdict | None, loops: int) -> bool:
        return (self.action == "retrieve" and verdict is not None and verdict.label != "supported"
                and loops < self.retries)

    def retry_queries(self, question: str, verdict: Verdict) -> list[str]:
        """The question plus each unsupported claim, as new search queries."""
        return [question] + [c.claim for c in verdict.unsupported if c.label != "unverifiable"]

    def apply(self, text: str, verdict: Verdict | None, *, question: str = "",
              passages: Sequence[Passage] = (), llm: LLM | None = None) -> tuple[str, str, Usage]:
        """(new text, what was done, usage of any LLM call) for `verdict` under this verifier's action."""
        if verdict is None or verdict.label == "supported" or self.action == "accept":
            return text, "accepted", Usage()
        if verdict.label == "unverifiable" and self.action != "abstain":
            return text, f"kept unchecked: {verdict.reason}", Usage()
        if self.action == "abstain":
            return self._abstain(text, verdict)
        if self.action == "rewrite":
            return self._rewrite(text, verdict, question, passages, llm)
        unsupported = [c.claim for c in verdict.unsupported if c.label != "unverifiable"]
        kept, dropped = drop_claims(text, unsupported), len(unsupported)
        if not kept:
            return ABSTAIN_TEXT, f"abstained: none of the {dropped} claim(s) is supported", Usage()
        return kept, f"dropped {dropped} unsupported claim(s)", Usage()

    def _abstain(self, text: str, verdict: Verdict) -> tuple[str, str, Usage]:
        if self.basis == "weakest" and self.abstain_below is None:
            return ABSTAIN_TEXT, f"abstained: {verdict.reason}", Usage()
        scores = [c.supported for c in verdict.claims if c.label != "unverifiable"]
        if not scores:  # nothing the model can read (another language, no evidence): not a reason to abstain
            return text, f"kept unchecked: {verdict.reason}", Usage()
        pick = {"weakest": min, "best": max, "mean": lambda v: sum(v) / len(v)}[self.basis]
        score = pick(scores)
        cut = self.checker.threshold if self.abstain_below is None else self.abstain_below
        if score >= cut:
            return text, f"accepted: {self.basis} claim support {score:.2f} >= {cut}", Usage()
        return ABSTAIN_TEXT, f"abstained: {self.basis} claim support {score:.2f} < {cut} ({verdict.reason})", Usage()

    def _rewrite(self, text: str, verdict: Verdict, question: str, passages: Sequence[Passage],
                 llm: LLM | None) -> tuple[str, str, Usage]:
        writer = self.rewrite_llm or llm
        if writer is None:
            raise ConfigError("the rewrite action needs an LLM: give rewrite_llm")
        evidence = "\n".join(f"[{i}] {p.text}" for i, p in enumerate(passages, 1))
        claims = "; ".join(c.claim for c in verdict.unsupported)
        reply = writer.generate([{"role": "system", "content": REWRITE_SYSTEM},
                                 {"role": "user", "content": REWRITE_USER.format(
                                     evidence=evidence, question=question, answer=text, claims=claims)}],
                                max_tokens=256)[0]
        rewritten = reply.text.strip()
        again = self.check(question, rewritten, passages)
        if again is not None and again.label != "supported":  # the rewrite still says too much: keep what holds
            rewritten = drop_claims(rewritten, [c.claim for c in again.unsupported
                                                if c.label != "unverifiable"]) or ABSTAIN_TEXT
        return rewritten or ABSTAIN_TEXT, "rewrote the unsupported claim(s)", reply.usage


def drop_claims(text: str, claims: Sequence[str]) -> str:
    """`text` without the sentences whose citation-free form is one of `claims`."""
    import sentencex

    from pilotfish.verification.checker import split_claims

    unwanted = {_key(c) for c in claims}
    kept = [s.strip() for s in sentencex.segment("en", text)
            if split_claims(s) and _key(" ".join(split_claims(s))) not in unwanted]
    return " ".join(kept).strip()


def _key(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


def verify_summary(verdict: Verdict | None, action: str) -> dict[str, Any]:
    """What the answer and its trace keep of a verification."""
    if verdict is None:
        return {"label": "abstained", "action": action, "claims": []}
    return verdict.to_dict() | {"action": action}
