"""LLM backends and `resolve_llm`, which turns a user's `--llm` value into a backend.

>>> resolve_llm("openai:gpt-4o-mini").name
'gpt-4o-mini'
"""

from __future__ import annotations

from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.llms.base import LLM, Generation, Message, Usage

__all__ = ["LLM", "Generation", "Message", "Usage", "resolve_llm"]


def _prices(settings: dict[str, Any], model: str) -> dict[str, float]:
    """Per-million-token prices for `model` from pilotfish.toml's [prices."MODEL"] table (in, out)."""
    entry = settings.get("prices", {}).get(model)
    if entry is None:
        return {}
    try:
        return {"price_per_mtok_in": float(entry.get("in", 0.0)), "price_per_mtok_out": float(entry.get("out", 0.0))}
    except (TypeError, ValueError, AttributeError) as err:
        raise ConfigError(f'pilotfish.toml prices."{model}": give numbers, e.g. in = 0.15, out = 0.60') from err


def resolve_llm(spec: str, *, settings: dict[str, Any] | None = None) -> LLM:
    """`qwen2.5-0.5b` (a registry GGUF), `openai:MODEL`, a path to a .gguf, or a name from pilotfish.toml.

    Prices (USD per million tokens) come from the endpoint's own `price_per_mtok_in/out`, else from a
    `[prices."MODEL"]` table with `in` and `out`; local models cost 0 unless priced.
    """
    from pilotfish.config import load_settings
    from pilotfish.llms.llamacpp import LlamaCppLLM, check_model_file, looks_like_path
    from pilotfish.llms.openai_compat import OpenAICompatLLM
    from pilotfish.models import load_registry

    settings = load_settings() if settings is None else settings
    endpoints = settings.get("llms", {})
    if spec in endpoints:
        entry = dict(endpoints[spec])
        kind = entry.pop("type", "openai")
        for key, value in _prices(settings, str(entry.get("model", ""))).items():
            entry.setdefault(key, value)
        if kind == "openai":
            return OpenAICompatLLM(**entry)
        if kind == "llamacpp":
            return LlamaCppLLM(**entry)
        raise ConfigError(f"pilotfish.toml llms.{spec}: unknown type {kind!r}; use 'openai' or 'llamacpp'")
    if spec.startswith("openai:"):
        model = spec.removeprefix("openai:")
        return OpenAICompatLLM(model=model, **_prices(settings, model))
    registry = load_registry()
    if spec in registry:
        if registry[spec].role != "chat-llm":
            raise ConfigError(f"{spec!r} is a {registry[spec].role} model, not a chat LLM")
        return LlamaCppLLM(model=spec)
    if looks_like_path(spec):  # a GGUF file of the user's own
        check_model_file(spec)
        return LlamaCppLLM(model=spec)
    chat = [n for n, s in registry.items() if s.role == "chat-llm"]
    raise ConfigError(f"unknown LLM {spec!r}: use a local model ({', '.join(chat)}), openai:MODEL, a .gguf path, "
                      f"or an endpoint named in pilotfish.toml ({', '.join(endpoints) or 'none defined'})")
