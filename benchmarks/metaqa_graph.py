"""MetaQA (WikiMovies) over its knowledge graph: pilotfish's graph path against text RAG and a closed-book LLM.

    python benchmarks/metaqa_graph.py [--per-hop N] [--llm-per-hop M] [--configs a,b,...] [--no-append]

Data (under the benchmark data folder): metaqa/kb_rebuilt.txt.gz (128,185 triples, about 96% of the original)
and the vanilla dev questions for 1, 2 and 3 hops (`question with [entity]<TAB>answer1|answer2`). Every fifth
dev question (line number divisible by 5, counting from 0) trains the path scorer, the way `pilotfish train
paths` does; the rest is the test set, from which --per-hop questions per hop (seeded) are drawn, and from
those the first --llm-per-hop for the configurations that call an LLM.

Configurations, each on the same questions in this one run:
  graph-direct        `pilotfish ingest --kind triples` + the answer graph's graph nodes with the trained scorer,
                      direct answers (no LLM call); brackets removed, so the linker must find the entity
  graph-direct-marked the same with the [entity] brackets given (the linker takes the marked name)
  graph-llm           the graph nodes with direct = false: qwen2.5-1.5b reads the best path's triples (short style)
  text-rag            pilotfish's basic pipeline (hybrid search, qwen2.5-1.5b, short style) over one verbalised
                      document per entity (each entity's triples as sentences)
  closed-1.5b         qwen2.5-1.5b with no evidence, asked for the same JSON short answer
  graph-direct-embedding  graph-direct with the untrained MiniLM path scorer (no labelled questions)
  graph-direct-cross  graph-direct with the untrained cross-encoder path scorer (--llm-per-hop questions)

hits@1: the graph configurations' top-ranked entity is a gold answer; for the LLM configurations the first
name of the short answer (split at commas, "and", "|") is one, SQuAD-normalised. The ceiling beside each
hop is the share of those test questions with a gold answer among the end entities of any path of up to
that many steps from the topic entity (with the same hub pruning). Also: entity-linking accuracy (the
top linked entity is the bracketed one), p50/p95 of graph expansion plus path scoring per question, and
the seconds to ingest the whole graph.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from shared import DATA, OUT, append_history, closed_book, markdown_table  # noqa: E402

from pilotfish.evaluation.metrics import normalize_answer  # noqa: E402

METAQA = DATA / "metaqa"
WORK = OUT / "metaqa"
CONFIGS = ("graph-direct", "graph-direct-marked", "graph-llm", "text-rag", "closed-1.5b", "graph-direct-embedding",
           "graph-direct-cross")
DIRECT = ("graph-direct", "graph-direct-marked", "graph-direct-embedding")  # run on --per-hop questions
LLM = "qwen2.5-1.5b"
PUBLISHED = "KV-MemNN 96.2 / 82.7 / 48.9; GraftNet 97.0 / 94.8 / 77.7; EmbedKGQA 97.5 / 98.8 / 94.8; " \
            "StructGPT (ChatGPT) 97.1 / 97.3 / 87.0"


def questions(hop: int) -> list[tuple[int, str, list[str]]]:
    lines = gzip.open(METAQA / f"{hop}-hop" / "vanilla" / "qa_dev.txt.gz", "rt", encoding="utf-8").read().splitlines()
    return [(i, q, a.split("|")) for i, (q, a) in enumerate(line.split("\t") for line in lines)]


def unmarked(question: str) -> str:
    return re.sub(r"\[([^\]]+)\]", r"\1", question)


def first_name_hit(text: str, golds: list[str]) -> bool:
    from pilotfish.prompts.builder import strip_citations

    first = re.split(r",|\band\b|\|", strip_citations(text))[0]
    wanted = {normalize_answer(g) for g in golds}
    return normalize_answer(first) in wanted or normalize_answer(text) in wanted


def build_kbs(configs: list[str]) -> dict[str, Any]:
    """The graph knowledge base (timed ingest) and, for text-rag, the verbalised one."""
    from pilotfish.knowledge.base import KnowledgeBase

    WORK.mkdir(parents=True, exist_ok=True)
    made: dict[str, Any] = {}
    folder = WORK / "graph-kb"
    fresh = not folder.exists()
    kb = KnowledgeBase.open(folder, create=True, settings={"dense": False})
    start = time.perf_counter()
    report = kb.ingest_triples([METAQA / "kb_rebuilt.txt.gz"])
    made["ingest_seconds"] = round(time.perf_counter() - start, 2) if fresh else None
    made["triples"], made["graph"] = report.total_triples, kb
    if "text-rag" in configs:
        text = WORK / "text-kb"
        if not text.exists():
            docs = WORK / "entities.jsonl"
            graph = kb.graph()
            with docs.open("w", encoding="utf-8") as fh:
                for i, name in enumerate(graph.names):
                    facts = [f"{e['entity']} {e['step'][1:].replace('_', ' ')} {name}." if e["step"].startswith("~")
                             else f"{name} {e['step'].replace('_', ' ')} {e['entity']}."
                             for e in graph.neighbourhood(i, limit=200)]
                    fh.write(json.dumps({"id": f"e{i}", "title": name, "text": " ".join(facts)}) + "\n")
            KnowledgeBase.open(text, create=True).ingest([docs], id_field="id")
        made["text"] = KnowledgeBase.open(text)
    return made


def train_scorer(graph: Any) -> tuple[Any, dict[str, Any]]:
    from pilotfish.graphs.scorers import TrainedPathScorer
    from pilotfish.training.paths import label_questions

    folder = WORK / "path-scorer"
    if (folder / "paths.json").exists():
        scorer = TrainedPathScorer.load(folder)
        return scorer, scorer.card
    train = [(i, unmarked(q), a) for hop in (1, 2, 3) for i, q, a in questions(hop) if i % 5 == 0]
    start = time.perf_counter()
    labelled = label_questions(train, graph)
    scorer = TrainedPathScorer.fit([q for q, _ in labelled.examples], [p for _, p in labelled.examples])
    scorer.card |= {"train_questions": len(train), "labelled": len(labelled.examples),
                    "minutes": round((time.perf_counter() - start) / 60, 2)}
    scorer.save(folder)
    return scorer, scorer.card


def pipeline(kb: Any, spec: dict[str, Any]) -> Any:
    from pilotfish.answer import build

    return build(spec, kb)


def run_config(config: str, items: list[tuple[int, int, str, list[str]]], made: dict[str, Any], scorer_dir: Path,
               graph: Any) -> list[dict[str, Any]]:
    """Rows {hop, line, hit, seconds, ...}; rows are kept in WORK/rows-CONFIG.jsonl and a re-run resumes."""
    rows_file = WORK / f"rows-{config}.jsonl"
    done = {(r["hop"], r["line"]): r for r in map(json.loads, rows_file.read_text().splitlines())} \
        if rows_file.exists() else {}
    todo = [it for it in items if (it[0], it[1]) not in done]
    answer = _answerer(config, made, scorer_dir) if todo else None
    with rows_file.open("a", encoding="utf-8") as fh:
        for n, (hop, line, question, golds) in enumerate(todo, 1):
            asked = question if config == "graph-direct-marked" else unmarked(question)
            start = time.perf_counter()
            row = {"hop": hop, "line": line, **answer(asked, golds)}
            row["seconds"] = round(time.perf_counter() - start, 4)
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            done[(hop, line)] = row
            if n % 100 == 0 or config in ("graph-llm", "text-rag", "closed-1.5b") and n % 10 == 0:
                print(f"  {config}: {n}/{len(todo)}", flush=True)
    return [done[(it[0], it[1])] for it in items]


def _answerer(config: str, made: dict[str, Any], scorer_dir: Path) -> Any:
    if config == "closed-1.5b":
        from pilotfish.llms import resolve_llm

        ask = closed_book(resolve_llm(LLM))

        def closed(question: str, golds: list[str]) -> dict[str, Any]:
            text, _, _ = ask(question)
            return {"answer": text, "hit": first_name_hit(text, golds)}
        return closed
    if config == "text-rag":
        pipe = pipeline(made["text"], {"answer": {"llm": LLM, "style": "short"}, "retrieve": {"mode": "hybrid"}})

        def rag(question: str, golds: list[str]) -> dict[str, Any]:
            a = pipe.run(question)
            return {"answer": a.text, "hit": first_name_hit(a.text, golds)}
        return rag
    direct = config != "graph-llm"
    scorer = {"graph-direct-embedding": "embedding", "graph-direct-cross": "cross-encoder"}.get(config, str(scorer_dir))
    pipe = pipeline(made["graph"], {"answer": {"llm": LLM, "style": "short"},
                                    "graph": {"scorer": scorer, "direct": direct}})

    def graph_answer(question: str, golds: list[str]) -> dict[str, Any]:
        a = pipe.run(question)
        found = a.graph or {}
        top = (found.get("answers") or [None])[0]
        hit = (top in set(golds)) if direct else first_name_hit(a.text, golds)
        linked = [p["entity"] for p in found.get("paths", [])[:1]]  # the entity whose path answered
        paths = [s for s in a.trace if s.node == "graph_paths"]
        return {"answer": a.text, "hit": bool(hit), "linked": linked[:1], "path": (found.get("paths") or [{}])[0]
                .get("path"), "graph_seconds": round(paths[0].seconds, 4) if paths else None}
    return graph_answer


def ceilings(items: list[tuple[int, int, str, list[str]]], graph: Any) -> dict[int, float]:
    from pilotfish.graphs.paths import enumerate_paths

    reached: dict[int, list[bool]] = {}
    for hop, _, question, golds in items:
        topic = re.search(r"\[([^\]]+)\]", question).group(1)  # type: ignore[union-attr]
        index = graph.index_of.get(topic)
        ends = set() if index is None else set().union(*enumerate_paths(graph, index, hops=hop).values())
        reached.setdefault(hop, []).append(bool(ends & set(golds)))
    return {hop: sum(v) / len(v) for hop, v in reached.items()}


def ms(seconds: list[float], q: float) -> float:
    """The q-quantile of sorted seconds, in milliseconds."""
    return seconds[min(len(seconds) - 1, int(q * len(seconds)))] * 1000 if seconds else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-hop", type=int, default=1000)
    parser.add_argument("--llm-per-hop", type=int, default=50)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration {unknown[0]}; known: {', '.join(CONFIGS)}")
    made = build_kbs(configs)
    graph = made["graph"].graph()
    scorer, card = train_scorer(graph)
    print(f"graph: {made['triples']} triples (ingest {made['ingest_seconds']} s); path scorer: {card}", flush=True)
    items = []
    for hop in (1, 2, 3):
        test = [(hop, i, q, a) for i, q, a in questions(hop) if i % 5]
        random.Random(hop).shuffle(test)
        items += test[:args.per_hop]
    llm_items = [it for hop in (1, 2, 3) for it in [x for x in items if x[0] == hop][:args.llm_per_hop]]
    ceiling = ceilings(items, graph)
    llm_ceiling = ceilings(llm_items, graph)
    results: dict[str, list[dict[str, Any]]] = {}
    for config in configs:
        chosen = items if config in DIRECT else llm_items
        results[config] = run_config(config, chosen, made, WORK / "path-scorer", graph)
    table_rows = []
    for config, rows in results.items():
        cells = []
        for hop in (1, 2, 3):
            mine = [r for r in rows if r["hop"] == hop]
            top = (ceiling if config in DIRECT else llm_ceiling)[hop]
            cells.append(f"{sum(r['hit'] for r in mine) / max(1, len(mine)):.3f} (ceiling {top:.3f}, n={len(mine)})")
        linked = [r for r in rows if "linked" in r]
        link = "-"
        if linked and config != "graph-direct-marked":
            gold = {(it[0], it[1]): re.search(r"\[([^\]]+)\]", it[2]).group(1)  # type: ignore[union-attr]
                    for it in items}
            link = f"{sum(r['linked'][:1] == [gold[(r['hop'], r['line'])]] for r in linked) / len(linked):.3f}"
        seconds = sorted(r["seconds"] for r in rows)
        graph_s = sorted(r["graph_seconds"] for r in rows if r.get("graph_seconds") is not None)
        table_rows.append((config, *cells, link, f"{ms(seconds, 0.5):.0f} / {ms(seconds, 0.95):.0f}",
                           f"{ms(graph_s, 0.5):.1f} / {ms(graph_s, 0.95):.1f}" if graph_s else "-"))
    table = markdown_table(("configuration", "1-hop hits@1", "2-hop hits@1", "3-hop hits@1", "linking accuracy",
                            "ms per question p50 / p95", "graph paths ms p50 / p95"), table_rows)
    notes = (f"Graph: {made['triples']} triples, ingested in {made['ingest_seconds']} s (`pilotfish ingest "
             f"--kind triples`, SQLite). Path scorer trained on {card.get('labelled')} labelled questions (every "
             f"fifth dev question) in {card.get('minutes')} min. Published hits@1 (1/2/3-hop, full KB): {PUBLISHED}.")
    print(table)
    print(notes)
    if not args.no_append:
        append_history("MetaQA knowledge-graph QA", table, notes, area="Knowledge graphs")


if __name__ == "__main__":
    main()
