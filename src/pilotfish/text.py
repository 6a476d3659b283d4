"""Sentence splitting, shared by the chunker, the claim checker, compression and citation.

Abbreviations and initials do not end a sentence; blank lines always do.

>>> split_sentences("Dr. Smith arrived. He met J. K. Rowling. Then all rest.")
['Dr. Smith arrived.', 'He met J. K. Rowling.', 'Then all rest.']
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\v]*\n\s*")
_OPENERS = "\"'\u201c\u2018(["
_INITIALS = re.compile(r"(?:[a-z]\.)+")
_ABBREVIATIONS = frozenset(
    "mr. mrs. ms. dr. prof. sr. jr. st. mt. vs. al. fig. figs. eq. eqs. ref. refs. no. nos. vol. vols. "
    "pp. ch. sec. cf. approx. ca. resp. dept. gen. gov. col. lt. sgt. capt. rev. inc. ltd. co. corp.".split()
)


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, with the chunker's rules (abbreviations and initials do not end one)."""
    return [text[start:end] for start, end in sentence_spans(text)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of sentences, whitespace trimmed; splits at sentence ends and blank lines."""
    cuts = {0, len(text)}
    cuts.update(m.end() for m in _PARAGRAPH_BREAK.finditer(text))
    for match in _SENTENCE_END.finditer(text):
        nxt = match.end()
        while nxt < len(text) and text[nxt] in _OPENERS:
            nxt += 1
        if nxt >= len(text) or not (text[nxt].isupper() or text[nxt].isdigit()):
            continue
        if text[match.start():match.end()].rstrip().rstrip("\"'\u201d\u2019)]") == ".":
            word_start = match.start()
            while word_start > 0 and not text[word_start - 1].isspace():
                word_start -= 1
            word = text[word_start:match.start() + 1].lstrip(_OPENERS).lower()
            if word in _ABBREVIATIONS or _INITIALS.fullmatch(word):
                continue
        cuts.add(match.end())
    spans = []
    bounds = sorted(cuts)
    for start, end in zip(bounds, bounds[1:]):
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            spans.append((start, end))
    return spans
