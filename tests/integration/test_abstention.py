"""Abstention after generation with the real NLI model: a near-domain question over a package list that
lacks the package gets "cannot answer" (the similarity gate lets it through), an answerable one keeps
its answer. The LLM is scripted with the kind of reply the issue saw: an unrelated section heading."""

from __future__ import annotations

import pytest

from pilotfish.answer import build
from pilotfish.answer.spec import DEFAULT_LLM
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.fake import FakeLLM
from pilotfish.prompts.builder import ABSTAIN_TEXT

pytestmark = pytest.mark.integration

PACKAGES = """Installed packages on the build server

## Editors
vim 9.0.1378, an improved vi text editor, is installed from the distribution.
nano 7.2 is installed as the default editor for new users.

## Terminal tools
screen 4.9.0 is installed for detachable terminal sessions.
htop 3.2.2 shows running processes.

## Compression
gzip 1.12 and xz-utils 5.4.1 are installed.
"""


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    root = tmp_path_factory.mktemp("abstain")
    (root / "docs").mkdir()
    (root / "docs" / "packages.md").write_text(PACKAGES)
    base = KnowledgeBase.open(root / "kb", create=True)
    base.ingest([root / "docs"])
    return base


def _reply(messages: list[dict[str, str]]) -> str:
    question = messages[-1]["content"]
    if "tmux" in question:
        return "Terminal tools [1]."  # the heading of the nearest section: not an answer
    return "vim 9.0.1378 is installed [1]."


@pytest.mark.parametrize("spec", ["basic", {"answer": {}, "verify": {"action": "abstain", "basis": "best"}}])
def test_near_domain_question_abstains_and_answerable_one_is_kept(kb: KnowledgeBase, spec: object) -> None:
    pipeline = build(spec, kb, llms={DEFAULT_LLM: FakeLLM(respond=_reply)})  # type: ignore[arg-type]
    missing = pipeline.run("Which version of tmux is installed?")
    assert missing.answer == ABSTAIN_TEXT, missing.answer
    step = next(s for s in missing.trace if s.node == "verify")
    assert "abstained" in str(step.outputs)  # the reason is in the trace
    present = pipeline.run("Which version of vim is installed?")
    assert "9.0.1378" in present.answer and present.answered
