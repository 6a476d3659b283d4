"""`pilotfish pipelines` and `pilotfish pipelines show`: the built-ins, their graphs, and bad names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli
from .test_cli import assert_clean_error

pytestmark = pytest.mark.e2e


def test_pipelines_lists_every_builtin_with_a_description() -> None:
    result = run_cli("pipelines")
    assert result.returncode == 0, result.stderr
    for name in ("basic", "multihop", "cascade", "verified"):
        assert name in result.stdout


def test_show_prints_the_graph_as_mermaid(tmp_path: Path) -> None:
    result = run_cli("pipelines", "show", "multihop")
    assert result.returncode == 0, result.stderr
    assert "graph TD" in result.stdout and "decompose -.-> answer_steps" in result.stdout
    verified = run_cli("pipelines", "show", "verified").stdout
    assert "verify -.-> retrieve_again" in verified and "decompose" not in verified
    pipe = tmp_path / "p.toml"
    pipe.write_text('[answer]\nllm = "smollm2-135m"\n[rewrite]\nmode = "hyde"\n[verify]\naction = "abstain"\n')
    shown = run_cli("pipelines", "show", str(pipe))
    assert shown.returncode == 0, shown.stderr
    assert "__start__ --> rewrite" in shown.stdout and "cite --> verify" in shown.stdout
    tables = json.loads(run_cli("pipelines", "show", str(pipe), "--spec").stdout)
    assert tables["pipeline"]["nodes"] == ["rewrite", "retrieve", "generate", "verify"]
    assert tables["answer"]["llm"] == "smollm2-135m" and tables["verify"]["action"] == "abstain"


def test_show_refuses_unknown_pipelines_and_bad_files(tmp_path: Path) -> None:
    assert_clean_error(run_cli("pipelines", "show", "warp"), "unknown pipeline 'warp'")
    pipe = tmp_path / "p.toml"
    pipe.write_text('[answer]\n[pipeline]\nnodes = ["retrieve", "dream", "generate"]\n')
    assert_clean_error(run_cli("pipelines", "show", str(pipe)), "unknown node 'dream'", "known:")
    pipe.write_text("[answer\n")
    assert_clean_error(run_cli("pipelines", "show", str(pipe)), "not valid TOML")
