"""The knowledge-graph commands end to end on a small triples file: `ingest --kind triples`, `kb link`, `kb show`,
`ask` answering a two-hop question from the graph with SmolLM2-135M reading the triples, and `train paths`.

Paths are scored by the default scorer (MiniLM); on this graph it ranks `~starred_actors -> directed_by` first
for the two-hop question (0.52 against 0.49 for the next path).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import run_cli
from .test_cli import assert_clean_error

pytestmark = pytest.mark.e2e

# triple ids follow the edges' order in the file: Forrest Gump|directed_by|Robert Zemeckis is kb:1
FILMS = """\
Forrest Gump|directed_by|Robert Zemeckis
Forrest Gump|starred_actors|Tom Hanks
Forrest Gump|release_year|1994
Forrest Gump|written_by|Eric Roth
Cast Away|directed_by|Robert Zemeckis
Cast Away|starred_actors|Tom Hanks
Cast Away|starred_actors|Helen Hunt
Cast Away|release_year|2000
Big|directed_by|Penny Marshall
Big|starred_actors|Tom Hanks
Big|release_year|1988
Heat|directed_by|Michael Mann
Heat|starred_actors|Al Pacino
Heat|starred_actors|Robert De Niro
Heat|release_year|1995
Robert Zemeckis|alias|Bob Zemeckis
"""
QUESTION = "who directed the films that Tom Hanks starred in"
TWO_HOPS = ["~starred_actors", "directed_by"]
TRAINING = [
    ("who directed Forrest Gump", ["Robert Zemeckis"]),
    ("who directed Big", ["Penny Marshall"]),
    ("who is the director of Heat", ["Michael Mann"]),
    ("which films did Tom Hanks star in", ["Forrest Gump", "Cast Away", "Big"]),
    ("what movies did Al Pacino act in", ["Heat"]),
    ("what films did Helen Hunt appear in", ["Cast Away"]),
    ("what did Eric Roth write", ["Forrest Gump"]),
]
WIDE = {"COLUMNS": "200"}  # table cells and long lines unwrapped


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=WIDE)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("graph")
    (folder / "films.txt").write_text(FILMS)
    first = cli("ingest", str(folder / "films.txt"), "--kind", "triples", "--kb", str(folder / "kb"), "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["triples"], report["total_triples"], report["total_entities"]) == (15, 15, 16)
    again = cli("ingest", str(folder / "films.txt"), "--kind", "triples", "--kb", str(folder / "kb"))
    assert again.returncode == 0 and "1 unchanged skipped" in again.stdout, again.stdout + again.stderr
    return folder / "kb"


@pytest.fixture(scope="module")
def trained(kb: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    folder = tmp_path_factory.mktemp("train")
    (folder / "qa.jsonl").write_text("".join(json.dumps({"question": q, "answers": a}) + "\n" for q, a in TRAINING))
    out = folder / "scorer"
    return cli("train", "paths", "--questions", str(folder / "qa.jsonl"), "--kb", str(kb), "--out", str(out)), out


def test_ingest_reports_a_bad_line_by_number_and_refuses_a_file_of_prose(tmp_path: Path) -> None:
    (tmp_path / "films.txt").write_text(FILMS + "Big|directed_by\n")
    partly = cli("ingest", str(tmp_path / "films.txt"), "--kind", "triples", "--kb", str(tmp_path / "kb"))
    assert partly.returncode == 3, partly.stderr
    assert "line 17: expected 3 fields separated by \"|\", found 2: 'Big|directed_by'" in partly.stderr
    assert "15 triples about 16 entities" in partly.stdout and "Traceback" not in partly.stderr

    (tmp_path / "notes.txt").write_text("Tom Hanks is an actor.\nHe starred in Big.\n")
    refused = cli("ingest", str(tmp_path / "notes.txt"), "--kind", "triples", "--kb", str(tmp_path / "prose"))
    assert refused.returncode == 1
    assert_clean_error(refused, "notes.txt: no triples found; line 1:", "Give lines subject|relation|object",
                       "nothing was ingested")
    assert "triples about" not in refused.stdout


def test_kb_link_prints_the_mention_entity_and_paths(kb: Path) -> None:
    shown = cli("kb", "link", QUESTION, "--kb", str(kb))
    assert shown.returncode == 0, shown.stderr
    rows = [" ".join(line.replace("│", " ").split()) for line in shown.stdout.splitlines()]
    assert any(r.startswith("Tom Hanks Tom Hanks ") and "exact name" in r for r in rows), shown.stdout
    assert any(r.startswith("Tom Hanks ~starred_actors -> directed_by ") and r.endswith(
        "Robert Zemeckis, Penny Marshall") for r in rows), shown.stdout

    found = json.loads(cli("kb", "link", QUESTION, "--kb", str(kb), "--json").stdout)
    assert [(e["mention"], e["entity"]) for e in found["entities"]] == [("Tom Hanks", "Tom Hanks")]
    assert found["paths"][0]["path"] == TWO_HOPS and found["answers"] == ["Robert Zemeckis", "Penny Marshall"]

    nothing = cli("kb", "link", "what is the weather like today", "--kb", str(kb))
    assert nothing.returncode == 1 and "Traceback" not in nothing.stderr
    assert "no entity of the knowledge graph is mentioned in the question" in nothing.stdout


def test_kb_show_lists_edges_with_their_ids_and_names_close_entities(kb: Path) -> None:
    shown = cli("kb", "show", "Bob Zemeckis", "--kb", str(kb))
    assert shown.returncode == 0, shown.stderr
    assert "Robert Zemeckis (also: Bob Zemeckis): 2 edges" in shown.stdout
    rows = [" ".join(line.replace("│", " ").split()) for line in shown.stdout.splitlines()]
    assert "directed_by (of) Forrest Gump kb:1" in rows and "directed_by (of) Cast Away kb:5" in rows
    edges = json.loads(cli("kb", "show", "Tom Hanks", "--kb", str(kb), "--json").stdout)
    assert edges["degree"] == 3 and {(e["step"], e["entity"], e["triple"]) for e in edges["edges"]} == {
        ("~starred_actors", "Forrest Gump", 2), ("~starred_actors", "Cast Away", 6), ("~starred_actors", "Big", 10)}
    assert_clean_error(cli("kb", "show", "Tom Hank", "--kb", str(kb)), "no entity 'Tom Hank' in the knowledge graph",
                       "closest: Tom Hanks")


def test_ask_answers_two_hops_with_the_triples_as_cited_evidence(kb: Path, tmp_path: Path) -> None:
    (tmp_path / "graph.toml").write_text("[answer]\nmax_tokens = 48\n\n[graph]\ndirect = false\n")
    result = cli("ask", QUESTION, "--kb", str(kb), "--llm", "smollm2-135m", "--pipeline", str(tmp_path / "graph.toml"),
                 "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    graph = answer["graph"]
    assert graph["route"] == "graph" and graph["paths"][0]["path"] == TWO_HOPS
    assert graph["answers"] == ["Robert Zemeckis", "Penny Marshall"] and graph["entities"][0]["entity"] == "Tom Hanks"
    evidence = [p["chunk_id"] for p in answer["evidence"]]
    assert evidence == [f"kb:{t}" for t in graph["paths"][0]["triples"]] == ["kb:6", "kb:5", "kb:10", "kb:9"]
    assert [p["text"] for p in answer["evidence"][:2]] == ["Cast Away — starred_actors — Tom Hanks",
                                                          "Cast Away — directed_by — Robert Zemeckis"]
    assert answer["model"] == "smollm2-135m" and answer["answer"].strip()
    assert all(c["chunk_id"] in evidence for c in answer["citations"] if c["known"])
    generate = next(s for s in answer["trace"] if s["node"] == "generate")
    prompt = generate["inputs"]["messages"][-1]["content"]
    assert "[2] Cast Away — directed_by — Robert Zemeckis" in prompt and "Heat" not in prompt

    (tmp_path / "direct.toml").write_text("[answer]\n\n[graph]\ndirect = true\n")
    direct = cli("ask", QUESTION, "--kb", str(kb), "--llm", "smollm2-135m", "--pipeline", str(tmp_path / "direct.toml"))
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout.startswith("Robert Zemeckis [1][2] and Penny Marshall [3][4].")
    assert "graph: Tom Hanks -> ~starred_actors -> directed_by" in direct.stdout
    assert "answered from the graph, no LLM call" in direct.stdout and "[1] kb:6 (knowledge graph)" in direct.stdout


def test_train_paths_writes_a_scorer_that_kb_link_uses(kb: Path,
                                                      trained: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, folder = trained
    assert result.returncode == 0, result.stderr
    assert ("6 questions (0 without a path to their answers and 1 whose path only they take skipped); "
            "no questions held out") in result.stdout
    meta = json.loads((folder / "paths.json").read_text())
    assert meta["kind"] == "pilotfish-path-scorer" and (folder / "weights.npz").is_file()
    assert meta["classes"] == [["directed_by"], ["~starred_actors"]] and meta["card"]["labelled"] == 7
    found = json.loads(cli("kb", "link", "who directed Cast Away", "--kb", str(kb), "--scorer", str(folder),
                           "--json").stdout)
    assert found["paths"][0]["path"] == ["directed_by"] and found["answers"] == ["Robert Zemeckis"]


def test_train_paths_says_how_to_use_the_scorer(trained: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, folder = trained
    assert result.returncode == 0, result.stderr
    assert f'use it with [graph] scorer = "{folder}" in a pipeline file' in result.stdout


def test_train_paths_names_a_bad_line(kb: Path, tmp_path: Path) -> None:
    good = json.dumps({"question": TRAINING[0][0], "answers": TRAINING[0][1]})
    (tmp_path / "qa.jsonl").write_text(f"{good}\n{good}\n" + json.dumps({"question": "who directed Heat"}) + "\n")
    result = cli("train", "paths", "--questions", str(tmp_path / "qa.jsonl"), "--kb", str(kb), "--out",
                 str(tmp_path / "scorer"))
    assert result.returncode == 1
    assert_clean_error(result, "qa.jsonl line 3: expected {\"question\": \"...\", \"answers\": [\"name\", ...]}")
    assert not (tmp_path / "scorer").exists()
