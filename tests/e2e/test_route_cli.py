"""`pilotfish route train/eval` end to end with the real MiniLM embedder, and their failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli
from .test_cli import assert_clean_error

pytestmark = pytest.mark.e2e

EASY = ["What is {a} plus {b}?", "Add {a} and {b}.", "What is {a} times 2?", "Is {a} larger than {b}?",
        "Write the number {a} in words."]
HARD = ["Prove that there are infinitely many primes of the form 4k+{b}.",
        "Derive the closed form of the sum of the first {a} cubes and prove it by induction.",
        "Show that the equation x^{b} + y^{b} = z^{b} has no positive integer solutions for exponent {a}.",
        "Explain why the halting problem for programs with {a} states is undecidable, with a proof.",
        "Prove that every planar graph with {a} vertices is {b}-colourable."]


def routing_file(path: Path, start: int, count: int) -> Path:
    lines = []
    for i in range(start, start + count):
        template = (HARD if i % 3 == 0 else EASY)[i % 5]
        prompt = template.format(a=i + 3, b=i % 7 + 1)
        lines.append({"prompt": prompt, "scores": {"tiny": 0.0 if i % 3 == 0 else 1.0, "big": 1.0}})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_route_train_and_eval(tmp_path: Path) -> None:
    train, test = routing_file(tmp_path / "train.jsonl", 0, 90), routing_file(tmp_path / "test.jsonl", 90, 45)
    for kind in ("classifier", "knn"):
        folder = tmp_path / kind
        result = run_cli("route", "train", "--data", str(train), "--models", "big,tiny", "--out", str(folder),
                         "--kind", kind, "--costs", "tiny=0.1,big=2", "-k", "5")
        assert result.returncode == 0, result.stderr
        assert f"saved {kind} router for tiny, big" in result.stdout  # ordered by cost
        plot = tmp_path / f"{kind}.png"
        result = run_cli("route", "eval", "--router", str(folder), "--data", str(test), "--json", "--plot", str(plot))
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        router, rand = report["summary"]["router"], report["summary"]["random"]
        assert router["apgr"] > rand["apgr"] + 0.2 and router["cpt50"] < 0.3  # it learned which prompts are hard
        assert report["at_calibrated_knob"]["quality"] >= 0.9
        assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    human = run_cli("route", "eval", "--router", str(tmp_path / "knn"), "--data", str(test))
    assert human.returncode == 0 and "APGR" in human.stdout and "random" in human.stdout


def test_route_bad_input(tmp_path: Path) -> None:
    train = routing_file(tmp_path / "train.jsonl", 0, 40)
    out = str(tmp_path / "r")
    assert_clean_error(run_cli("route", "train", "--data", str(train), "--models", "tiny,huge", "--out", out,
                               "--costs", "tiny=1,huge=2"), "unknown model 'huge'", "tiny, big")
    assert_clean_error(run_cli("route", "train", "--data", str(train), "--models", "tiny,big", "--out", out),
                       "no cost for model", "--costs")
    assert_clean_error(run_cli("route", "train", "--data", str(train), "--models", "tiny,big", "--out", out,
                               "--costs", "tiny=1,big=x"), "not MODEL=PRICE")
    assert_clean_error(run_cli("route", "train", "--data", str(train), "--models", "tiny,big", "--out", out,
                               "--costs", "tiny=1,big=2", "--kind", "forest"), "unknown router kind")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(train.read_text() + json.dumps({"prompt": "x", "scores": {"tiny": 2, "big": 1}}) + "\n")
    assert_clean_error(run_cli("route", "train", "--data", str(bad), "--models", "tiny,big", "--out", out,
                               "--costs", "tiny=1,big=2"), "bad.jsonl:41", "outside [0, 1]")
    assert not Path(out).exists()  # nothing saved from a failed training
    assert_clean_error(run_cli("route", "eval", "--router", str(tmp_path), "--data", str(train)), "not a saved router")


def test_ask_with_a_router_pipeline_file(tmp_path: Path) -> None:
    """A trained router picks the LLM per question inside `ask`; a mismatched router is refused."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kansas.md").write_text("The University of Kansas has its main campus in Lawrence, on Mount Oread.\n")
    kb = tmp_path / "kb"
    assert run_cli("ingest", str(docs), "--kb", str(kb)).returncode == 0
    train = routing_file(tmp_path / "train.jsonl", 0, 60)
    assert run_cli("route", "train", "--data", str(train), "--models", "tiny,big", "--out", str(tmp_path / "r"),
                   "--costs", "tiny=1,big=2").returncode == 0
    pipeline = tmp_path / "routed.toml"
    pipeline.write_text('[router]\npath = "r"\nllms = { tiny = "smollm2-135m", big = "smollm2-135m" }\n')
    result = run_cli("ask", "What is 2 plus 3 at the University of Kansas campus?", "--kb", str(kb), "--pipeline",
                     str(pipeline), "--max-tokens", "16", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    route = next(s for s in answer["trace"] if s["node"] == "route")["outputs"]["route"]
    assert route["model"] in ("tiny", "big") and route["router"] == "classifier"
    assert set(route["predicted"]) == {"tiny", "big"}
    human = run_cli("ask", "Prove that the campus of the University of Kansas is infinite.", "--kb", str(kb),
                    "--pipeline", str(pipeline), "--max-tokens", "16")
    assert human.returncode == 0 and "router (classifier): sent to" in human.stdout
    pipeline.write_text('[router]\npath = "r"\nllms = { tiny = "smollm2-135m", large = "smollm2-135m" }\n')
    assert_clean_error(run_cli("ask", "x?", "--kb", str(kb), "--pipeline", str(pipeline)),
                       "was trained for tiny, big; [router] llms lacks big")
