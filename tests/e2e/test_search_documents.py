"""`pilotfish search --queries`: document-level results a scorer can read, `--chunks`, and bad input.

Five small documents, each split into four chunks (one sentence each), so that a chunk-level top-k
would repeat documents. The BM25 order of the toy is fixed by term counts, which makes its nDCG
computable by hand.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.e2e

DOCS = {
    # "quokka" twice in every sentence: every chunk of alpha outranks any other quokka chunk
    "alpha.txt": ("The quokka is a small marsupial with a quokka smile.\n"
                  "Many quokka families live on quokka island near Perth.\n"
                  "A quokka eats leaves and grass, and every quokka sleeps by day.\n"
                  "Visitors photograph the quokka colony beside the old quokka lighthouse.\n"),
    "bravo.txt": ("Rivers carry water from the hills down to the sea.\n"
                  "A lone quokka once drank from the muddy river bank.\n"
                  "Fishermen cast nets where the wide river meets the tide.\n"
                  "One koala was seen sleeping in a gum tree by the river.\n"),
    "charlie.txt": ("Mountains rise above the clouds in the far north.\n"
                    "Climbers once met a quokka on the lower mountain trail.\n"
                    "Snow covers the mountain peaks through the long winter.\n"
                    "Glaciers carve deep valleys between the mountain ridges.\n"),
    # "koala" three times in every sentence
    "delta.txt": ("The koala koala koala family sleeps in eucalyptus trees.\n"
                  "A koala koala koala eats eucalyptus leaves all night.\n"
                  "Every koala koala koala has thick grey fur and round ears.\n"
                  "Young koala koala koala ride on their mothers' backs.\n"),
    # "koala" twice in one sentence only
    "echo.txt": ("Deserts receive very little rain in a whole year.\n"
                 "A koala or another koala never wanders into the hot desert.\n"
                 "Cacti store water inside their thick green stems.\n"
                 "Sand dunes shift slowly with the strong desert wind.\n"),
}
QRELS = {"q1": {"docs/alpha.txt": 1, "docs/delta.txt": 1}, "q2": {"docs/echo.txt": 2, "docs/delta.txt": 1}}


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search-docs")
    docs = root / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    report = json.loads(ok(run_cli("ingest", str(docs), "--kb", str(root / "kb"), "--chunk-tokens", "16",
                                   "--overlap-tokens", "0", "--json")).stdout)
    assert report["documents"] == 5 and report["chunks"] == 20  # four chunks per document
    return root / "kb"


@pytest.fixture()
def queries(tmp_path: Path) -> Path:
    path = tmp_path / "queries.jsonl"
    path.write_text('{"id": "q1", "text": "quokka"}\n{"id": "q2", "text": "koala"}\n')
    return path


def test_documents_once_each_scored_by_ranx(kb: Path, queries: Path, tmp_path: Path) -> None:
    from ranx import Qrels, Run, evaluate

    out = tmp_path / "run.jsonl"
    ok(run_cli("search", "--queries", str(queries), "--kb", str(kb), "--mode", "bm25", "-k", "3", "--out", str(out)))
    lines = read_lines(out)
    assert [line["id"] for line in lines] == ["q1", "q2"]
    for line in lines:
        docs = [r["doc_id"] for r in line["results"]]
        assert len(docs) == len(set(docs)) == 3
        assert all(set(r) == {"doc_id", "score", "chunk_id"} for r in line["results"])
        assert all(r["chunk_id"].startswith(r["doc_id"] + "::") for r in line["results"])
        scores = [r["score"] for r in line["results"]]
        assert scores == sorted(scores, reverse=True)
    q1, q2 = ([r["doc_id"] for r in line["results"]] for line in lines)
    assert q1[0] == "docs/alpha.txt" and set(q1[1:]) == {"docs/bravo.txt", "docs/charlie.txt"}
    assert q2 == ["docs/delta.txt", "docs/echo.txt", "docs/bravo.txt"]

    run = Run({line["id"]: {r["doc_id"]: r["score"] for r in line["results"]} for line in lines})
    ndcg = float(evaluate(Qrels(QRELS), run, "ndcg@3"))
    # q1: alpha (rel 1) first, delta (rel 1) not retrieved; q2: delta (1) then echo (2); linear gains
    by_hand_q1 = 1.0 / (1.0 + 1.0 / math.log2(3))
    by_hand_q2 = (1.0 + 2.0 / math.log2(3)) / (2.0 + 1.0 / math.log2(3))
    assert ndcg <= 1.0
    assert ndcg == pytest.approx((by_hand_q1 + by_hand_q2) / 2, abs=1e-6)  # 0.7364


def test_chunks_flag_writes_passages(kb: Path, queries: Path, tmp_path: Path) -> None:
    out = tmp_path / "chunks.jsonl"
    ok(run_cli("search", "--queries", str(queries), "--kb", str(kb), "--mode", "bm25", "-k", "3", "--chunks",
               "--out", str(out)))
    q1 = read_lines(out)[0]["results"]
    assert [r["doc_id"] for r in q1] == ["docs/alpha.txt"] * 3  # alpha's chunks crowd out the other documents
    assert len({r["chunk_id"] for r in q1}) == 3


def test_hybrid_default_and_rerank_give_k_distinct_documents(kb: Path, tmp_path: Path) -> None:
    queries = tmp_path / "many.jsonl"
    queries.write_text('{"id": 1, "text": "where do quokkas live"}\n{"id": 2, "text": "river water"}\n'
                       '{"id": 3, "text": "animals that eat leaves"}\n')
    for extra in ([], ["--rerank"]):
        result = ok(run_cli("search", "--queries", str(queries), "--kb", str(kb), "-k", "4", *extra))
        lines = [json.loads(line) for line in result.stdout.splitlines()]  # no --out: stdout
        assert [line["id"] for line in lines] == ["1", "2", "3"]
        for line in lines:
            docs = [r["doc_id"] for r in line["results"]]
            assert len(docs) == len(set(docs)) == 4, (extra, docs)
            scores = [r["score"] for r in line["results"]]
            assert scores == sorted(scores, reverse=True), (extra, scores)


@pytest.mark.parametrize(("content", "needles"), [
    (None, ["does not exist"]),
    ('{"id": "q1", "text": "quokka"}\n{"id": "q2", "text": "koala"\n', ["line 2", "not valid JSON"]),
    ('{"id": "q1", "text": "quokka"}\n\n{"id": "q3", "text": "   "}\n', ["line 3", 'empty "text"']),
    ('{"id": "q1", "query": "quokka"}\n', ["line 1", '"id" and "text"']),
    ('{"id": "q1", "text": 7}\n', ["line 1", '"text" must be a string']),
    ("\n\n", ["holds no records"]),
])
def test_bad_query_files_give_one_clear_line(kb: Path, tmp_path: Path, content: str | None,
                                             needles: list[str]) -> None:
    path = tmp_path / "queries.jsonl"
    if content is not None:
        path.write_text(content)
    result = run_cli("search", "--queries", str(path), "--kb", str(kb), "--mode", "bm25")
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "error:" in result.stderr and str(path) in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
