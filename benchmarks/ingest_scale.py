"""Ingest throughput against the physical limit, and peak memory as the corpus grows.

    python benchmarks/ingest_scale.py [--fractions 0.25,0.5,1] [--no-append]

The corpus is every text corpus in the benchmark data, each passage once (deduplicated by text): SciFact's
abstracts, the pooled paragraphs of HotpotQA-500, MuSiQue-210 and 2Wiki-500, and Climate-FEVER's evidence
sentences, shuffled with a fixed seed so that each prefix mixes them all. For each fraction of it, `pilotfish
ingest` (MiniLM, the default settings) runs in a fresh process and its peak resident memory is measured; so is
that of a fresh `pilotfish search` over the result, which loads the same model and the whole index: the
difference is what ingest holds beyond the index itself (target: flat within 10% across fractions). On the
full corpus, the chunks' texts are then embedded by sentence-transformers' `encode` alone (the physical
limit: the model, same batch size) and ingest's chunks/s is set against it (target: ingest within 1.15x).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import DATA, ROOT, append_history, beir, markdown_table, qa_set  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.integration.test_ingest_memory import run_measured  # noqa: E402


def all_passages() -> list[dict[str, str]]:
    """Every passage of the benchmark text corpora once, as {"_id", "title", "text"}, shuffled (seed 0)."""
    seen: set[str] = set()
    out: list[dict[str, str]] = []

    def add(source: str, doc_id: str, title: str, text: str) -> None:
        key = " ".join(text.split()).lower()
        if key and key not in seen:
            seen.add(key)
            out.append({"_id": f"{source}:{doc_id}", "title": title, "text": text})

    corpus, _, _ = beir("scifact")
    for d in corpus:
        add("scifact", d["doc_id"], d.get("title", ""), d["text"])
    for name in ("hotpotqa", "musique", "2wiki"):
        for d in qa_set(name).corpus or []:
            add(name, d["doc_id"], d["title"], d["text"])
    with gzip.open(DATA / "halluc" / "climate-fever.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            for ev in json.loads(line)["evidences"]:
                add("climate-fever", ev["evidence_id"], ev["article"], ev["evidence"])
    random.Random(0).shuffle(out)
    return out


def sizes(passages: list[dict[str, str]]) -> str:
    by_source: dict[str, int] = {}
    for p in passages:
        source = p["_id"].split(":", 1)[0]
        by_source[source] = by_source.get(source, 0) + 1
    return ", ".join(f"{k} {v:,}" for k, v in by_source.items())


def measured(args: list[str], workdir: Path) -> tuple[str, float, float]:
    start = time.perf_counter()
    code, out, err, peak = run_measured([sys.executable, "-m", "pilotfish.cli", *args], workdir)
    if code != 0:
        raise SystemExit(f"pilotfish {' '.join(args)} failed ({code}): {err[-2000:]}")
    return out, time.perf_counter() - start, peak


def direct_encode(kb: Path) -> tuple[int, float]:
    """(chunks, seconds) of sentence-transformers encoding the KB's chunk texts as ingest embeds them."""
    from sentence_transformers import SentenceTransformer

    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.models import model_path

    texts = KnowledgeBase.open(kb).corpus().index_texts()
    model = SentenceTransformer(str(model_path("minilm-l6")), device="cpu")
    model.encode(texts[:64], batch_size=32)  # warm-up, as ingest's model is warm after its first batch
    start = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    return len(texts), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fractions", default="0.25,0.5,1")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    passages = all_passages()
    print(f"corpus: {len(passages):,} passages ({sizes(passages)})", flush=True)
    rows, throughput = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for fraction in (float(f) for f in args.fractions.split(",")):
            part = passages[: int(len(passages) * fraction)]
            file = Path(tmp) / f"corpus-{fraction}.jsonl"
            file.write_text("".join(json.dumps(p) + "\n" for p in part))
            kb = Path(tmp) / f"kb-{fraction}"
            out, seconds, ingest_peak = measured(["ingest", str(file), "--kb", str(kb), "--json"], Path(tmp))
            chunks = json.loads(out)["total_chunks"]
            _, _, search_peak = measured(["search", "pilot fish", "--kb", str(kb), "-k", "3"], Path(tmp))
            rows.append((f"{fraction:.0%}", f"{len(part):,}", f"{chunks:,}", f"{seconds:.0f}",
                         f"{chunks / seconds:.1f}", f"{ingest_peak:,.0f}", f"{search_peak:,.0f}",
                         f"{ingest_peak - search_peak:,.0f}"))
            print(rows[-1], flush=True)
            if fraction == 1:
                n, encode_seconds = direct_encode(kb)
                throughput = (chunks / seconds, n / encode_seconds)
    table = markdown_table(["share", "passages", "chunks", "ingest s", "chunks/s", "ingest peak MB",
                            "search peak MB (the index)", "beyond the index MB"], rows)
    notes = f"Corpus: {len(passages):,} passages ({sizes(passages)})."
    if throughput:
        notes += (f" Throughput on the full corpus: ingest {throughput[0]:.1f} chunks/s, sentence-transformers "
                  f"`encode` alone {throughput[1]:.1f} chunks/s: ingest takes {throughput[1] / throughput[0]:.2f}x "
                  "the model's own time (the command's whole wall time, model load included).")
    print(table)
    print(notes)
    if not args.no_append:
        append_history("Ingest throughput and memory by corpus size", table, notes, area="Speed")


if __name__ == "__main__":
    main()
