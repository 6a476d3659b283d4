"""LLM backends and `resolve_llm`, which turns a user's `--llm` value into a backend.

>>> resolve_llm("openai:gpt-4o-mini").name
'gpt-4o-mini'
"""

from __future__ import annotations

from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.llms.base import LLM, Generation, Message, Usage

__all__ = ["LLM", "Generation", "Message", "Usage", "resolve_llm"]


def resolve_llm(spec: str, *, settings: dict[str, Any] | None = None) -> LLM:
    """`qwen2.5-0.5b` (a registry GGUF), `openai:MODEL`, a path to a .gguf, or a name from pilotfish.toml."""
    from pilotfish.config import load_settings
    from pilotfish.llms.llamacpp import LlamaCppLLM
    from pilotfish.llms.openai_compat import OpenAICompatLLM
    from pilotfish.models import load_registry

    settings = load_settings() if settings is None else settings
    endpoints = settings.get("llms", {})
    if spec in endpoints:
        entry = dict(endpoints[spec])
        kind = entry.pop("type", "openai")
        if kind == "openai":
            return OpenAICompatLLM(**entry)
        if kind == "llamacpp":
            return LlamaCppLLM(**entry)
        raise ConfigError(f"pilotfish.toml llms.{spec}: unknown type {kind!r}; use 'openai' or 'llamacpp'")
    if spec.startswith("openai:"):
        return OpenAICompatLLM(model=spec.removeprefix("openai:"))
    registry = load_registry()
    if spec in registry:
        if registry[spec].role != "chat-llm":
            raise ConfigError(f"{spec!r} is a {registry[spec].role} model, not a chat LLM")
        return LlamaCppLLM(model=spec)
    if spec.endswith(".gguf"):
        return LlamaCppLLM(model=spec)
    chat = [n for n, s in registry.items() if s.role == "chat-llm"]
    raise ConfigError(f"unknown LLM {spec!r}: use a local model ({', '.join(chat)}), openai:MODEL, "
                      f"a .gguf path, or an endpoint named in pilotfish.toml ({', '.join(endpoints) or 'none defined'})")
