"""The small base class every configurable component shares: config round-trips, nothing more."""

from __future__ import annotations

import importlib
from typing import Any, Self


class Component:
    """Subclasses set `self._config` (their keyword-only `__init__` arguments, JSON types only).

    >>> from pilotfish.retrievers.bm25 import BM25Retriever
    >>> r = BM25Retriever(k1=1.2)
    >>> Component.from_config(r.to_config()).to_config() == r.to_config()
    True
    """

    _config: dict[str, Any]

    def to_config(self) -> dict[str, Any]:
        return {"type": f"{type(self).__module__}.{type(self).__qualname__}", "init": dict(self._config)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        module_name, _, class_name = config["type"].rpartition(".")
        target = getattr(importlib.import_module(module_name), class_name)
        if cls is not Component and not issubclass(target, cls):
            raise TypeError(f"config describes {config['type']}, not a {cls.__name__}")
        return target(**config.get("init", {}))
