"""SentenceChunker: exact offsets, token limits, overlap, sentence splitting, config round-trip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pilotfish.component import Component
from pilotfish.errors import ConfigError
from pilotfish.knowledge.chunking import SentenceChunker
from pilotfish.text import sentence_spans as _sentence_spans
from pilotfish.types import Document


def _tokenizer_dir() -> str:
    """The MiniLM tokenizer from the model cache (pulled by `make test`), or PILOTFISH_TEST_TOKENIZER_DIR."""
    if os.environ.get("PILOTFISH_TEST_TOKENIZER_DIR"):
        return os.environ["PILOTFISH_TEST_TOKENIZER_DIR"]
    from pilotfish.models import model_status

    status = model_status("minilm-l6")
    return str(status["path"]) if status["present"] else ""


TOKENIZER_DIR = _tokenizer_dir()

TEXT = " ".join(
    f"Sentence {i} tells how pilot fish number {i} swims ahead of the shark, e.g. near reefs." for i in range(30)
) + "\n\nA new paragraph starts here. Dr. Smith agrees with it! Does the shark mind? 3 fish said no."


def _words(text: str) -> int:
    import re

    return len(re.findall(r"\w+|[^\w\s]", text))


def _check_invariants(doc: Document, chunks: list, limit: int) -> None:
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert doc.text[c.start_char:c.end_char] == c.text
        assert c.chunk_id == f"{doc.doc_id}::{c.index}" and c.doc_id == doc.doc_id
        assert 0 < c.n_tokens <= limit
        assert c.metadata == doc.metadata and c.metadata is not doc.metadata


def test_config_validation_names_bad_value() -> None:
    with pytest.raises(ConfigError, match="chunk_tokens must be at least 16, got 8"):
        SentenceChunker(chunk_tokens=8)
    with pytest.raises(ConfigError, match="overlap_tokens .* got 50"):
        SentenceChunker(chunk_tokens=50, overlap_tokens=50)
    with pytest.raises(ConfigError, match="overlap_tokens .* got -1"):
        SentenceChunker(overlap_tokens=-1)
    with pytest.raises(ConfigError, match="tokenizer"):
        SentenceChunker(tokenizer="")
    with pytest.raises(ConfigError, match="chunk_tokens must be an integer"):
        SentenceChunker(chunk_tokens=100.0)  # type: ignore[arg-type]


def test_to_config_round_trips_and_init_does_no_io(tmp_path: Path) -> None:
    chunker = SentenceChunker(chunk_tokens=64, overlap_tokens=8, min_chunk_tokens=4)
    config = chunker.to_config()
    assert config == {"type": "pilotfish.knowledge.chunking.SentenceChunker",
                      "init": {"chunk_tokens": 64, "overlap_tokens": 8, "tokenizer": "words", "min_chunk_tokens": 4}}
    assert Component.from_config(config).to_config() == config
    lazy = SentenceChunker(tokenizer=str(tmp_path / "nowhere"))  # no error until first use
    with pytest.raises(ConfigError, match="tokenizer.json"):
        lazy.chunk(Document(doc_id="d", text="Some text."))


def test_short_document_is_one_chunk_and_empty_is_none() -> None:
    doc = Document(doc_id="d", text="\n  Pilot fish swim ahead. Sharks follow.  \n", metadata={"k": 1})
    [chunk] = SentenceChunker().chunk(doc)
    assert chunk.text == "Pilot fish swim ahead. Sharks follow."
    assert doc.text[chunk.start_char:chunk.end_char] == chunk.text
    assert (chunk.chunk_id, chunk.n_tokens, chunk.metadata) == ("d::0", 8, {"k": 1})
    assert SentenceChunker().chunk(Document(doc_id="e", text="  \n ")) == []


@pytest.mark.parametrize(("size", "overlap"), [(16, 0), (32, 8), (60, 30), (200, 30)])
def test_offsets_and_limits_hold(size: int, overlap: int) -> None:
    doc = Document(doc_id="doc", text=TEXT, metadata={"source": "x"})
    chunks = SentenceChunker(chunk_tokens=size, overlap_tokens=overlap, min_chunk_tokens=5).chunk(doc)
    assert len(chunks) > 1
    _check_invariants(doc, chunks, size)
    assert all(c.n_tokens == _words(c.text) for c in chunks)
    assert chunks[0].start_char == 0 and chunks[-1].end_char == len(doc.text)
    for prev, nxt in zip(chunks, chunks[1:]):  # no gaps: every character is covered
        assert nxt.start_char <= prev.end_char + 2


def test_overlap_repeats_trailing_sentences() -> None:
    doc = Document(doc_id="d", text=" ".join(f"Fish {i} swims here today." for i in range(20)))
    chunks = SentenceChunker(chunk_tokens=20, overlap_tokens=6, min_chunk_tokens=0).chunk(doc)
    assert len(chunks) > 2
    for prev, nxt in zip(chunks, chunks[1:]):
        last_sentence = prev.text[prev.text.rindex("Fish"):]
        assert nxt.text.startswith(last_sentence)
        assert nxt.start_char < prev.end_char
    no_overlap = SentenceChunker(chunk_tokens=20, overlap_tokens=0).chunk(doc)
    for prev, nxt in zip(no_overlap, no_overlap[1:]):
        assert nxt.start_char > prev.end_char


def test_long_single_sentence_is_split_by_tokens() -> None:
    text = " ".join(f"word{i}" for i in range(100)) + "."
    doc = Document(doc_id="long", text=text)
    chunks = SentenceChunker(chunk_tokens=16, overlap_tokens=4).chunk(doc)
    _check_invariants(doc, chunks, 16)
    assert len(chunks) >= 7
    joined = " ".join(c.text for c in chunks)
    assert all(f"word{i}" in joined for i in range(100))


def test_sentence_splitter_respects_abbreviations_and_paragraphs() -> None:
    text = ("Dr. Smith saw fish, e.g. this one and i.e. that one. Smith et al. Found more vs. less! "
            "\"Really?\" she asked. See Fig. 3 for details.\n\nnew paragraph without capital")
    sentences = [text[a:b] for a, b in _sentence_spans(text)]
    assert sentences == [
        "Dr. Smith saw fish, e.g. this one and i.e. that one.",
        "Smith et al. Found more vs. less!",
        "\"Really?\" she asked.",
        "See Fig. 3 for details.",
        "new paragraph without capital",
    ]


def test_tiny_last_chunk_kept_when_merge_would_exceed_limit() -> None:
    sentence = "Fish " + " ".join(["word"] * 16) + ". "  # 18 tokens
    doc = Document(doc_id="d", text=sentence * 3 + "Tail end.")
    chunks = SentenceChunker(chunk_tokens=20, overlap_tokens=0, min_chunk_tokens=10).chunk(doc)
    _check_invariants(doc, chunks, 20)
    assert len(chunks) == 4 and chunks[-1].text == "Tail end."


def test_run_batch() -> None:
    docs = [Document(doc_id="a", text="Alpha."), Document(doc_id="b", text=TEXT)]
    chunker = SentenceChunker(chunk_tokens=32, overlap_tokens=4)
    batches = chunker.run_batch(docs)
    assert len(batches) == 2 and len(batches[0]) == 1 and len(batches[1]) > 1
    assert chunker.run(docs[1]) == batches[1]


@pytest.mark.skipif(not (TOKENIZER_DIR and (Path(TOKENIZER_DIR) / "tokenizer.json").is_file()),
                    reason="set PILOTFISH_TEST_TOKENIZER_DIR to a directory with tokenizer.json")
def test_real_tokenizer_counts_and_limits() -> None:
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(Path(TOKENIZER_DIR) / "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    text = TEXT + " Unbelievably " + "antidisestablishmentarianism " * 40 + "héllo wörld ünïcode."
    doc = Document(doc_id="d", text=text)
    chunks = SentenceChunker(chunk_tokens=32, overlap_tokens=8, tokenizer=TOKENIZER_DIR).chunk(doc)
    _check_invariants(doc, chunks, 32)
    for c in chunks:
        assert c.n_tokens == len(reference.encode(c.text, add_special_tokens=False).ids)


@pytest.mark.parametrize("tokenizer", ["words", "real"])
def test_line_without_sentence_breaks_is_tokenised_a_window_at_a_time(tokenizer: str) -> None:
    # A 50 MB line without a full stop used to reach the tokenizer whole (gigabytes of token objects).
    if tokenizer == "real":
        if not (TOKENIZER_DIR and (Path(TOKENIZER_DIR) / "tokenizer.json").is_file()):
            pytest.skip("no real tokenizer in the model cache")
        tokenizer = TOKENIZER_DIR
    chunker = SentenceChunker(chunk_tokens=32, overlap_tokens=8, tokenizer=tokenizer)
    seen: list[int] = []
    count_batch, token_offsets = chunker._count_batch, chunker._token_offsets

    def counting(texts: list[str]) -> list[int]:
        seen.extend(len(t) for t in texts)
        return count_batch(texts)

    def offsets(text: str) -> list[tuple[int, int]]:
        seen.append(len(text))
        return token_offsets(text)

    chunker._count_batch, chunker._token_offsets = counting, offsets  # type: ignore[method-assign]
    text = " ".join(f"pilot{i % 97} fish" for i in range(20_000))  # about 250 kB, one "sentence"
    doc = Document(doc_id="line", text=text)
    chunks = chunker.chunk(doc)
    _check_invariants(doc, chunks, 32)
    assert max(seen) <= 16 * 32  # one window of the chunker's _CHARS_PER_TOKEN * chunk_tokens
    assert "pilot0 fish" in chunks[0].text and chunks[-1].text.endswith("pilot17 fish")  # 19_999 % 97 == 17
    # the windows do not change where pieces are cut: the same text cut whole gives the same chunks
    whole = SentenceChunker(chunk_tokens=32, overlap_tokens=8, tokenizer=chunker.tokenizer)
    whole._split_window(text, 0, len(text))  # warm-up: loads the tokenizer
    pieces = whole._split_window(text, 0, len(text))
    assert [(c.start_char, c.end_char) for c in chunks][:50] == [(a, b) for a, b, _ in pieces][:50]
