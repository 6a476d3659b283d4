"""`pilotfish train router --from-eval` end to end: two stored eval runs -> router data -> a saved, loadable router."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilotfish.evaluation.store import EvalStore

from .conftest import run_cli
from .test_cli import assert_clean_error
from .test_route_cli import EASY, HARD

pytestmark = pytest.mark.e2e


def question(i: int) -> str:
    return (HARD if i % 3 == 0 else EASY)[i % 5].format(a=i + 3, b=i % 7 + 1)


def write_run(store: EvalStore, name: str, items: range, *, llm: str | None, small: bool) -> None:
    """A finished run as `eval run` stores it: the small model fails the hard questions, the large one none."""
    run = store.start_run(name, dataset="toy", pipeline="basic", config={"metrics": ["answers"]}
                          | ({"llm": llm} if llm else {}))
    for i in items:
        right = float(not (small and i % 3 == 0))
        store.add_record(run, f"item-{i}", {"question": question(i), "answer": "x", "answered": True, "gold": ["x"],
                                            "em": right, "f1": right, "cost": 0.01, "seconds": 0.5})
    store.finish_run(run, {"items": len(items)})


@pytest.fixture()
def evals(tmp_path: Path) -> Path:
    folder = tmp_path / "evals"
    folder.mkdir()
    store = EvalStore(f"sqlite:///{folder / 'runs.db'}")
    write_run(store, "small", range(0, 95), llm="tiny", small=True)
    write_run(store, "large", range(5, 100), llm="big", small=False)
    write_run(store, "small-again", range(0, 30), llm="tiny", small=True)
    write_run(store, "unnamed", range(0, 30), llm=None, small=True)
    write_run(store, "elsewhere", range(500, 530), llm="other", small=False)
    return folder


def test_train_router_from_two_eval_runs(evals: Path, tmp_path: Path, private_trained_registry: Path) -> None:
    from pilotfish.routing.load import load_router

    folder, data = tmp_path / "router", tmp_path / "data.jsonl"
    result = run_cli("train", "router", "--from-eval", "small", "large", "--eval-out", str(evals), "--out",
                     str(folder), "--costs", "tiny=0.1,big=2", "--write-data", str(data), "--name", "toy-router")
    assert result.returncode == 0, result.stderr
    assert "router data: 90 questions answered in both 'small' (tiny) and 'large' (big)" in result.stdout
    assert "skipped 5 only in 'small', 5 only in 'large'" in result.stdout
    assert "saved classifier router for tiny, big" in result.stdout and "calibrated on 90 examples" in result.stdout
    card = json.loads((folder / "router-card.json").read_text())
    assert card["from_eval"]["small"] == {"run": "small", "model": "tiny", "dataset": "toy", "pipeline": "basic"}
    assert card["from_eval"]["large"]["model"] == "big"
    assert card["metric"] == "f1" and card["items"]["used"] == 90 and card["items"]["only_large"] == 5
    assert card["calibration"]["examples"] == 90 and card["command"].startswith("pilotfish train router --from-eval")
    registered = json.loads(private_trained_registry.read_text())["toy-router"]  # the test's own registry
    assert registered["role"] == "router" and registered["card"]["metric"] == "f1"
    assert Path(registered["path"]) == folder.resolve()

    router = load_router(folder)
    assert router.models == ["tiny", "big"] and router.costs == [0.1, 2.0]
    lines = [json.loads(line) for line in data.read_text().splitlines()]
    assert len(lines) == 90 and lines[0]["scores"] == {"tiny": 1.0, "big": 1.0}  # item-5: an easy question
    report = run_cli("route", "eval", "--router", str(folder), "--data", str(data), "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["summary"]["router"]["apgr"] > 0.8  # it learned which questions are hard


def test_train_router_bad_input(evals: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "router")
    where = ("--eval-out", str(evals), "--out", out, "--costs", "tiny=0.1,big=2")

    def train(*args: str) -> object:
        return run_cli("train", "router", *args, *where)

    assert_clean_error(train("--from-eval", "small", "nope"), "no evaluation run named 'nope'",
                       "small, large, small-again")
    assert_clean_error(train("--from-eval", "small", "small"), "names run 'small' twice")
    assert_clean_error(train("--from-eval", "small", "large", "--metric", "rouge"), "metric 'rouge'",
                       "use one of em, f1")
    assert_clean_error(train("--from-eval", "small", "large", "--metric", "seconds"), "not a score in [0, 1]")
    assert_clean_error(train("--from-eval", "small", "small-again"), "both runs are named model 'tiny'")
    assert_clean_error(train("--from-eval", "unnamed", "large"), "'unnamed' does not record which LLM", "--models")
    assert_clean_error(train("--from-eval", "small", "elsewhere", "--models", "tiny,big"), "share no items")
    assert_clean_error(train("--from-eval", "small", "large", "--kind", "forest"), "unknown router kind")
    assert_clean_error(run_cli("train", "router", "--from-eval", "small", "large", "--eval-out", str(evals), "--out",
                               out), "no cost for model 'tiny', 'big'", "--costs")
    assert_clean_error(run_cli("train", "router", "--from-eval", "small", "large", "--eval-out",
                               str(tmp_path / "none"), "--out", out), "no evaluation runs in")
    assert not Path(out).exists()  # nothing saved from a refused training
