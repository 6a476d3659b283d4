"""What a new user hits first: a mistyped model file, and leaving `pilotfish chat` with Ctrl-D or Ctrl-C."""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pilotfish.errors import ConfigError
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms import resolve_llm
from pilotfish.llms.fake import FakeLLM
from pilotfish.llms.llamacpp import LlamaCppLLM
from tests.unit.pipelines import pipeline as make_pipeline

MISSING = "model file missing/model.gguf does not exist; give an existing .gguf file or a packaged model name " \
          "(pilotfish models list)"


@pytest.fixture()
def kb(text_kb: Callable[..., KnowledgeBase]) -> KnowledgeBase:
    return text_kb(paris_txt="Paris is the capital of France.")


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("spec", ["missing/model.gguf", "missing.gguf", "models/qwen"])
def test_a_missing_model_file_is_named_as_such(spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=f"model file {spec} does not exist; give an existing .gguf file") as e:
        resolve_llm(spec, settings={})
    assert "unknown" not in str(e.value)


def test_model_files_that_exist_or_are_not_gguf(tmp_path: Path) -> None:
    model = tmp_path / "my.gguf"
    model.write_bytes(b"GGUF")
    assert resolve_llm(str(model), settings={}).name == str(model)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match="weights.bin is not a .gguf file"):
        resolve_llm(str(tmp_path / "weights.bin"), settings={})
    with pytest.raises(ConfigError, match="is a folder, not a model file"):
        resolve_llm(f"{tmp_path}/", settings={})
    with pytest.raises(ConfigError, match="unknown LLM 'gpt-17'"):  # not a path: the list of what would do
        resolve_llm("gpt-17", settings={})


def test_a_pilotfish_toml_llamacpp_entry_with_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the check comes when the model loads, as __init__ touches no file
    llm = resolve_llm("local", settings={"llms": {"local": {"type": "llamacpp", "model": "missing/model.gguf"}}})
    assert isinstance(llm, LlamaCppLLM)
    with pytest.raises(ConfigError, match="model file missing/model.gguf does not exist"):
        llm.generate([{"role": "user", "content": "hi"}])


def test_ask_with_a_missing_model_file(kb: KnowledgeBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pilotfish.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["ask", "What is the capital?", "--kb", str(tmp_path / "kb"), "--mode", "bm25",
                                      "--llm", "missing/model.gguf"])
    assert result.exit_code == 1
    assert f"error: {MISSING}" in _flat(result.output), result.output


@pytest.fixture()
def chat_app(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI app whose `chat` answers with a FakeLLM over `kb`."""
    from pilotfish.cli import app

    ask_module = importlib.import_module("pilotfish.cli.ask")  # `pilotfish.cli.ask` the attribute is the command

    def fake_pipeline(*args: Any, **kwargs: Any) -> Any:
        return make_pipeline(kb, FakeLLM(replies=["Paris [1]."] * 4), mode="bm25", top_k=1)

    monkeypatch.setattr(ask_module, "open_pipeline", fake_pipeline)
    return app


@pytest.mark.parametrize("typed", ["", "What is the capital of France?"])
def test_chat_ends_its_line_on_ctrl_d(chat_app: Any, typed: str) -> None:
    result = CliRunner().invoke(chat_app, ["chat", "--session", "s"], input=typed)  # no newline: Ctrl-D after it
    assert result.exit_code == 0, result.output
    assert result.output.endswith("you> \n"), repr(result.output[-80:])
    assert ("Paris" in result.output) == bool(typed)


def test_chat_ends_its_line_on_ctrl_c(chat_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(prompt: str = "") -> str:
        print(prompt, end="")
        raise KeyboardInterrupt

    monkeypatch.setattr(builtins, "input", interrupted)
    result = CliRunner().invoke(chat_app, ["chat", "--session", "s"])
    assert result.exit_code == 0 and result.output.endswith("you> \n"), repr(result.output[-80:])


def test_chat_passes_its_style_and_refuses_an_unknown_one(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    from pilotfish.cli import app

    ask_module = importlib.import_module("pilotfish.cli.ask")
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(ask_module, "open_pipeline",
                        lambda kb_, db, llm, name, defaults, **_: seen.append(defaults) or make_pipeline(
                            kb, FakeLLM(replies=["Paris"]), mode="bm25", top_k=1))
    result = CliRunner().invoke(app, ["chat", "--session", "s", "--style", "short"], input="")
    assert result.exit_code == 0, result.output
    assert seen[0]["answer"]["style"] == "short"
    monkeypatch.undo()
    result = CliRunner().invoke(app, ["chat", "--kb", str(kb.directory), "--style", "poem"], input="")
    assert result.exit_code == 1 and "unknown answer style 'poem'" in _flat(result.output), result.output
