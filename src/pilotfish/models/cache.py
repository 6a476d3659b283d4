"""Where pulled models live, and how a name becomes a local path.

Layout under :func:`model_home` (env ``PILOTFISH_HOME``, default ``~/.cache/pilotfish``)::

    models/<name>/manifest.json    written last by a successful pull
    models/<name>/model/           dir layouts (a sentence-transformers, ONNX or spaCy folder)
    models/<name>/<filename>       file and concat layouts (e.g. a GGUF)
    wheels/                        downloaded wheels kept between attempts (see pull.py)

A model is *present* only when its ``manifest.json`` exists, names the same packages as the registry
and its delivered path exists; an interrupted pull never leaves that state behind.

Users with their own copy can skip the cache: set ``PILOTFISH_MODEL_<NAME>`` (name upper-cased,
``-`` and ``.`` turned into ``_``) to a local path, or pass an existing local path as the name.

Example::

    >>> from pilotfish.models import model_home, model_path
    >>> model_path("minilm-l6").relative_to(model_home()).as_posix()
    'models/minilm-l6/model'
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError, MissingModelError
from pilotfish.models import registry as _registry
from pilotfish.models.home import model_home
from pilotfish.models.trained import registered_path

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def models_dir() -> Path:
    """The folder holding one sub-folder per pulled model."""
    return model_home() / "models"


def model_dir(name: str) -> Path:
    """The cache folder of registry model ``name`` (it may not exist yet)."""
    return models_dir() / name


def override_env_var(name: str) -> str:
    """The environment variable that overrides ``name``, e.g. ``PILOTFISH_MODEL_QWEN2_5_0_5B``."""
    return "PILOTFISH_MODEL_" + re.sub(r"[-.]", "_", name.upper())


def read_manifest(name: str) -> dict[str, Any] | None:
    """The manifest of a cached model, or None when it is absent or unreadable."""
    path = model_dir(name) / MANIFEST
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable manifest %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def bundled_path(spec: _registry.ModelSpec) -> tuple[Path | None, str]:
    """The folder of a model shipped inside the pilotfish package, its files checked once per process."""
    path = Path(str(resources.files("pilotfish").joinpath(spec.layout["path"])))
    if spec.name in _VERIFIED:
        return path, ""
    for filename, digest in spec.layout["files"].items():
        file = path / filename
        if not file.is_file():
            return None, f"{file} is missing from the installed package; reinstall pilotfish"
        with file.open("rb") as fh:
            if hashlib.file_digest(fh, "sha256").hexdigest() != digest:
                return None, f"{file} does not match its sha256 in the registry; reinstall pilotfish"
    _VERIFIED.add(spec.name)
    return path, ""


_VERIFIED: set[str] = set()


def lookup_cached(name: str) -> tuple[Path | None, str]:
    """The delivered path of a present cached registry model, or (None, why not; "" if never pulled)."""
    spec = _registry.get_spec(name)
    if spec.kind == "bundled":
        return bundled_path(spec)
    manifest = read_manifest(name)
    if manifest is None:
        return None, ""
    pinned = [(p.name, p.version, p.wheel_sha256) for p in spec.packages]
    recorded = [
        (p.get("name"), p.get("version"), p.get("wheel_sha256")) for p in manifest.get("packages", [])
    ]
    if manifest.get("name") != name or recorded != pinned:
        return None, "the cached copy comes from other package versions than the registry pins"
    rel = manifest.get("path")
    if not isinstance(rel, str) or not rel:
        return None, "its manifest has no path"
    path = model_dir(name) / rel
    if not path.exists():
        return None, f"{path} is missing"
    return path, ""


def _override(name: str) -> Path | None:
    """The path from ``PILOTFISH_MODEL_<NAME>``, if set; ConfigError when it does not exist."""
    var = override_env_var(name)
    value = os.environ.get(var, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise ConfigError(f"{var}={value!r} points to a path that does not exist; fix or unset it")
    return path


def _local_path(name: str) -> Path | None:
    """``name`` as an existing local path (a user's own model copy), else None."""
    if not name:
        return None
    path = Path(name).expanduser()
    return path if path.exists() else None


def model_path(name: str) -> Path:
    """The local path of a model: a folder (dir layout) or a file (file and concat layouts).

    Looks, in order, at ``PILOTFISH_MODEL_<NAME>``, the model cache (registry names), the names of
    trained models (:mod:`pilotfish.models.trained`) and ``name`` as an existing local path. Raises
    MissingModelError when a registry model is not pulled, and ConfigError for a name that is neither a
    registry model, a trained model nor an existing path.

    Example::

        >>> model_path("smollm2-135m").name
        'smollm2-135m-instruct-q4_1.gguf'
    """
    override = _override(name)
    if override is not None:
        return override
    if name in _registry.load_registry():
        path, reason = lookup_cached(name)
        if path is None:
            raise MissingModelError(name, reason)
        return path
    trained = registered_path(name)
    if trained is not None:
        if not trained.exists():
            raise ConfigError(f"trained model {name!r} points to {trained}, which is gone; register it again "
                              "(pilotfish train ... --name) or restore the folder")
        return trained
    local = _local_path(name)
    if local is not None:
        return local
    _registry.get_spec(name)  # raises ConfigError listing the known models
    raise MissingModelError(name)  # not reached: get_spec raised


def _size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def model_status(name: str) -> dict[str, Any]:
    """Whether a model is usable, where it is and how many bytes it takes.

    Returns ``{"name", "present", "path", "size_bytes", "source"}`` where source is ``"env"``,
    ``"cache"``, ``"trained"``, ``"path"`` or None. Never raises MissingModelError.

    Example::

        >>> model_status("nli-small")["present"]         # shipped inside the package: always present
        True
    """
    status: dict[str, Any] = {"name": name, "present": False, "path": None, "size_bytes": 0, "source": None}
    override = _override(name)
    if override is not None:
        path, source, sized = override, "env", override
    elif name in _registry.load_registry():
        path, reason = lookup_cached(name)
        if path is None:
            if reason:
                status["reason"] = reason
            return status
        source, sized = "cache", path if _registry.get_spec(name).kind == "bundled" else model_dir(name)
    elif registered_path(name) is not None:
        path = registered_path(name)
        if not path.exists():
            status["reason"] = f"its folder {path} is gone"
            return status
        source, sized = "trained", path
    else:
        path = _local_path(name)
        if path is None:
            _registry.get_spec(name)  # ConfigError for unknown names
        source, sized = "path", path
    assert path is not None
    status.update(present=True, path=path, size_bytes=_size_on_disk(sized), source=source)
    return status
