"""Split documents into chunks of whole sentences, measured in tokens.

`SentenceChunker` packs sentences greedily up to `chunk_tokens`, repeats up to `overlap_tokens` of the
previous chunk's trailing sentences at the start of the next one, and cuts a sentence that alone exceeds
`chunk_tokens` at token boundaries. Every chunk is an exact slice of the document text:
`document.text[chunk.start_char:chunk.end_char] == chunk.text`.

>>> from pilotfish.types import Document
>>> chunker = SentenceChunker(chunk_tokens=16, overlap_tokens=5)
>>> text = "Pilot fish swim ahead. Sharks follow them. They share food. Nobody minds. Then all rest."
>>> for c in chunker.chunk(Document(doc_id="d1", text=text)):
...     print(c.chunk_id, c.n_tokens, repr(c.text))
d1::0 16 'Pilot fish swim ahead. Sharks follow them. They share food. Nobody minds.'
d1::1 7 'Nobody minds. Then all rest.'
"""

from __future__ import annotations

import logging
import re
import threading
from itertools import accumulate
from pathlib import Path
from typing import Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError
from pilotfish.text import sentence_spans, split_sentences
from pilotfish.types import Chunk, Document

__all__ = ["SentenceChunker", "split_sentences"]

logger = logging.getLogger(__name__)

_WORD_TOKEN = re.compile(r"\w+|[^\w\s]")
# A token is rarely longer than 16 characters, so a window of 16 * chunk_tokens characters holds more than
# a chunk's worth of text while keeping what the tokenizer sees at once small.
_CHARS_PER_TOKEN = 16
_COUNT_BATCH = 256  # sentences tokenised per call

class SentenceChunker(Component):
    """Token-aware chunker that packs whole sentences up to `chunk_tokens`, with `overlap_tokens` of
    trailing sentences repeated at the start of the next chunk.

    `tokenizer` is "words" (tokens are `\\w+|[^\\w\\s]`, no model needed) or a directory holding a Hugging
    Face `tokenizer.json` (e.g. the embedding model's), loaded on first use; special tokens are not counted.
    """

    def __init__(self, *, chunk_tokens: int = 200, overlap_tokens: int = 30, tokenizer: str = "words",
                 min_chunk_tokens: int = 20) -> None:
        for name, value in (("chunk_tokens", chunk_tokens), ("overlap_tokens", overlap_tokens),
                            ("min_chunk_tokens", min_chunk_tokens)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        if chunk_tokens < 16:
            raise ConfigError(f"chunk_tokens must be at least 16, got {chunk_tokens}")
        if not 0 <= overlap_tokens < chunk_tokens:
            raise ConfigError(f"overlap_tokens must be >= 0 and < chunk_tokens ({chunk_tokens}), got {overlap_tokens}")
        if min_chunk_tokens < 0:
            raise ConfigError(f"min_chunk_tokens must be >= 0, got {min_chunk_tokens}")
        if not isinstance(tokenizer, str) or not tokenizer.strip():
            raise ConfigError(f"tokenizer must be 'words' or a directory holding tokenizer.json, got {tokenizer!r}")
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.min_chunk_tokens = min_chunk_tokens
        self.tokenizer = tokenizer
        self._config = {"chunk_tokens": chunk_tokens, "overlap_tokens": overlap_tokens,
                        "tokenizer": tokenizer, "min_chunk_tokens": min_chunk_tokens}
        self._exact_sums = tokenizer == "words"  # word counts of adjacent sentences add up exactly
        self._hf_tokenizer: Any = None
        self._lock = threading.Lock()

    # --- tokenizer ------------------------------------------------------------------------------------

    def _load_tokenizer(self) -> Any:
        if self._hf_tokenizer is None:
            with self._lock:
                if self._hf_tokenizer is None:
                    from tokenizers import Tokenizer

                    location = Path(self.tokenizer).expanduser()
                    file = location / "tokenizer.json" if location.is_dir() else location
                    if not file.is_file():
                        raise ConfigError(f"tokenizer must be 'words' or a directory holding tokenizer.json; "
                                          f"not found: {file}")
                    tok = Tokenizer.from_file(str(file))
                    tok.no_truncation()  # a truncating tokenizer would under-count long text
                    tok.no_padding()
                    logger.debug("loaded tokenizer from %s", file)
                    self._hf_tokenizer = tok
        return self._hf_tokenizer

    def _count_batch(self, texts: list[str]) -> list[int]:
        if self._exact_sums:
            return [len(_WORD_TOKEN.findall(t)) for t in texts]
        if not texts:
            return []
        encodings = self._load_tokenizer().encode_batch(texts, add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def _count(self, text: str) -> int:
        return self._count_batch([text])[0]

    def _token_offsets(self, text: str) -> list[tuple[int, int]]:
        if self._exact_sums:
            return [m.span() for m in _WORD_TOKEN.finditer(text)]
        offsets = self._load_tokenizer().encode(text, add_special_tokens=False).offsets
        return [(a, b) for a, b in offsets if b > a]

    # --- chunking -------------------------------------------------------------------------------------

    def _split_long(self, text: str, start: int, end: int) -> list[tuple[int, int, int]]:
        """Cut one over-long sentence into pieces of at most chunk_tokens, preferring whitespace cuts.

        The sentence is tokenised one window of `_CHARS_PER_TOKEN * chunk_tokens` characters at a time
        (a 50 MB line without a full stop would otherwise be tokenised whole); each window's last piece
        is redone at the start of the next window, so pieces come out as if the sentence were cut whole."""
        window = _CHARS_PER_TOKEN * self.chunk_tokens
        pieces: list[tuple[int, int, int]] = []
        while start < end:
            stop = end
            if end - start > window:
                space = max(text.rfind(" ", start + window // 2, start + window),
                            text.rfind("\n", start + window // 2, start + window))
                stop = space if space > start else start + window
            found = self._split_window(text, start, stop)
            if stop == end or len(found) < 2:
                pieces.extend(found)
                start = stop
            else:
                pieces.extend(found[:-1])
                start = found[-1][0]
            while start < end and text[start].isspace():
                start += 1
        return pieces

    def _split_window(self, text: str, start: int, end: int) -> list[tuple[int, int, int]]:
        offsets = [(start + a, start + b) for a, b in self._token_offsets(text[start:end])]
        pieces, pos, limit = [], 0, self.chunk_tokens
        while pos < len(offsets):
            cut = min(pos + limit, len(offsets))
            if cut < len(offsets):
                gaps = [t for t in range(cut, pos + limit // 2, -1) if offsets[t][0] > offsets[t - 1][1]]
                newline = [t for t in gaps if "\n" in text[offsets[t - 1][1]:offsets[t][0]]]
                cut = (newline or gaps or [cut])[0]
            while True:
                a, b = offsets[pos][0], offsets[cut - 1][1]
                n = cut - pos if self._exact_sums else self._count(text[a:b])
                if n <= limit or cut - pos <= 1:
                    break
                cut = max(pos + 1, cut - max(1, n - limit))  # a re-tokenised slice can count more
            pieces.append((a, b, n))
            pos = cut
        return pieces

    def chunk(self, document: Document) -> list[Chunk]:
        """Split one document; chunk ids are f"{doc_id}::{index}"."""
        text = document.text
        stripped = text.strip()
        if not stripped:
            return []
        first = len(text) - len(text.lstrip())
        whole = (first, first + len(stripped))
        if len(stripped) <= 8 * self.chunk_tokens:  # cheap enough to try the whole text as one chunk
            n_whole = self._count(stripped)
            if n_whole <= self.chunk_tokens:
                return [self._make(document, 0, whole, n_whole)]

        units: list[tuple[int, int, int]] = []
        spans, window = sentence_spans(text), _CHARS_PER_TOKEN * self.chunk_tokens
        for start in range(0, len(spans), _COUNT_BATCH):  # batches keep the tokenizer's memory bounded
            batch = spans[start:start + _COUNT_BATCH]
            counts = iter(self._count_batch([text[a:b] for a, b in batch if b - a <= window]))
            for a, b in batch:
                n = next(counts) if b - a <= window else None  # longer than a window: surely over-long
                units.extend(self._split_long(text, a, b) if n is None or n > self.chunk_tokens else [(a, b, n)])
        prefix = [0, *accumulate(u[2] for u in units)]

        def measure(i: int, j: int) -> int:  # tokens of units i..j inclusive, as one slice
            if self._exact_sums:
                return prefix[j + 1] - prefix[i]
            return self._count(text[units[i][0]:units[j][1]])

        groups: list[tuple[int, int, int]] = []  # (first unit, last unit, n_tokens)
        i, prev_end, limit = 0, -1, self.chunk_tokens
        while i < len(units):
            j = i
            while j + 1 < len(units) and prefix[j + 2] - prefix[i] <= limit:
                j += 1
            n = measure(i, j)
            while n > limit:  # subword tokenizers: a slice may count more than its parts
                if j > max(i, prev_end + 1):
                    j -= 1
                elif i < j:
                    i += 1
                else:
                    break
                n = measure(i, j)
            groups.append((i, j, n))
            if j == len(units) - 1:
                break
            k, overlap = j + 1, 0
            while k - 1 > i and overlap + units[k - 1][2] <= self.overlap_tokens:
                k -= 1
                overlap += units[k][2]
            while k <= j and overlap + units[j + 1][2] > limit:
                overlap -= units[k][2]
                k += 1
            i, prev_end = k, j

        if len(groups) > 1 and groups[-1][2] < self.min_chunk_tokens:
            merged = measure(groups[-2][0], groups[-1][1])
            if merged <= limit:
                groups[-2:] = [(groups[-2][0], groups[-1][1], merged)]
        return [self._make(document, index, (units[a][0], units[b][1]), n)
                for index, (a, b, n) in enumerate(groups)]

    @staticmethod
    def _make(document: Document, index: int, span: tuple[int, int], n_tokens: int) -> Chunk:
        start, end = span
        return Chunk(chunk_id=f"{document.doc_id}::{index}", doc_id=document.doc_id,
                     text=document.text[start:end], index=index, start_char=start, end_char=end,
                     n_tokens=n_tokens, metadata=dict(document.metadata))

    def run(self, document: Document) -> list[Chunk]:
        return self.run_batch([document])[0]

    def run_batch(self, documents: list[Document]) -> list[list[Chunk]]:
        return [self.chunk(document) for document in documents]
