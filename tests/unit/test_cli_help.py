"""Every command's `--help` shows its help strings whole: no `[word]` eaten as rich markup."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pilotfish.answer.spec import BUILTIN
from pilotfish.cli import app

BOX = re.compile(r"[─-╿]")  # the box-drawing characters of rich's panels


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command and sub-command under `command` (a click command; typer ships its own click), with the
    words that invoke it."""
    found = [(path, command)]
    if getattr(command, "commands", None):  # a group
        for name, sub in sorted(command.commands.items()):
            found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _flat(text: str) -> str:
    """Text without rich's box characters, escapes and line breaks: what a reader sees, on one line."""
    return " ".join(BOX.sub(" ", text.replace("\\[", "[")).split())


def _raw_helps(command: Any) -> list[str]:
    helps = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    return [h for h in helps if h.strip()]


def test_the_walk_finds_every_command_group() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"ask", "chat", "eval run", "eval report", "models list", "pipelines show"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "pilotfish" for p, _ in COMMANDS])
def test_help_shows_every_help_string_whole(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    shown = _flat(result.output)
    for raw in _raw_helps(command):
        for word in re.findall(r"\[[^\[\]]+\]", raw.replace("\\[", "[")):
            assert word in shown, f"`{' '.join(path)} --help` lost {word!r} of: {raw!r}"
        if path:  # the top-level help of a group lists its commands' first lines, not their whole text
            assert _flat(raw) in shown, f"`{' '.join(path)} --help` does not show {raw!r} as written"


@pytest.mark.parametrize("command", ["ask", "chat", "eval run"])
def test_pipeline_help_names_every_builtin_pipeline(command: str) -> None:
    shown = _flat(CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "100"}).output)
    assert all(name in shown for name in BUILTIN), shown
    if command == "ask":
        assert "([cascade], [router] or [answer], and [verify] or [tables] tables" in shown
