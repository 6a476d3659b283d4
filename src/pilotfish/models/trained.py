"""Models you trained, registered under a name that pipelines and commands use like a registry name.

`pilotfish train ... --name NAME` and `pilotfish distill` register a model folder here; promoting a new
student re-points the name and keeps the old folder in the entry's history, so a pipeline file that says
`model = "support-nli"` picks up the promoted model without an edit. Entries live in one JSON file,
``trained.json`` in the model home (``PILOTFISH_HOME``; ``PILOTFISH_TRAINED_REGISTRY`` names another
file), written atomically.

Example::

    >>> import tempfile
    >>> from unittest import mock
    >>> home = tempfile.mkdtemp()
    >>> with mock.patch.dict(os.environ, {"PILOTFISH_TRAINED_REGISTRY": os.path.join(home, "trained.json")}):
    ...     entry = register_model("my-nli", home, role="nli", card={"auroc": 0.7})
    ...     registered_path("my-nli") == Path(home).resolve(), registered_models()["my-nli"]["role"]
    (True, 'nli')
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError

ROLES = ("embedding", "reranker", "nli", "router", "path-scorer")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_lock = threading.Lock()


def trained_file() -> Path:
    """The JSON file of registered names: ``$PILOTFISH_TRAINED_REGISTRY``, else ``$PILOTFISH_HOME/trained.json``."""
    from pilotfish.models.home import model_home

    override = os.environ.get("PILOTFISH_TRAINED_REGISTRY", "").strip()
    return Path(override).expanduser() if override else model_home() / "trained.json"


def registered_models() -> dict[str, dict[str, Any]]:
    """Every registered name and its entry (``path``, ``role``, ``registered_at``, ``card``, ``previous``)."""
    path = trained_file()
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); fix or remove it, then register the models again") from exc
    return data if isinstance(data, dict) else {}


def registered_path(name: str) -> Path | None:
    """The folder registered as ``name``, or None when the name is not registered."""
    entry = registered_models().get(name)
    return Path(entry["path"]) if entry else None


def check_name(name: str) -> None:
    """ConfigError unless `name` can be registered: the pattern, and not a packaged model's name."""
    from pilotfish.models.registry import load_registry

    if not _NAME.match(name):
        raise ConfigError(f"model name {name!r} is not usable: use lower-case letters, digits, '.', '_' and '-' "
                          "(at most 64 characters), e.g. support-nli")
    if name in load_registry():
        raise ConfigError(f"{name!r} is a packaged model's name; register your model under another name")


def register_model(name: str, path: str | Path, *, role: str, card: dict[str, Any] | None = None) -> dict[str, Any]:
    """Point ``name`` at the model folder ``path`` (the old target is kept in ``previous``); return the entry."""
    check_name(name)
    if role not in ROLES:
        raise ConfigError(f"unknown model role {role!r}; use one of {', '.join(ROLES)}")
    folder = Path(path).expanduser().resolve()
    if not folder.exists():
        raise ConfigError(f"cannot register {name!r}: {folder} does not exist")
    with _lock:
        models = registered_models()
        old = models.get(name)
        if old is not None and old.get("role") != role:
            raise ConfigError(f"{name!r} is registered as a {old.get('role')} model, not a {role} model; "
                              "choose another name")
        previous = list(old.get("previous", [])) if old else []
        if old is not None and old["path"] != str(folder):
            previous.append({"path": old["path"], "registered_at": old.get("registered_at")})
        entry = {"path": str(folder), "role": role, "card": card or {}, "previous": previous[-10:],
                 "registered_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        models[name] = entry
        _write(models)
    return entry


def _write(models: dict[str, dict[str, Any]]) -> None:
    target = trained_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".trained-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(models, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, target)
