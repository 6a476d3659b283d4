"""The pilotfish home folder: the model cache and the registry of trained models live under it."""

from __future__ import annotations

import os
from pathlib import Path


def model_home() -> Path:
    """The pilotfish cache root: ``$PILOTFISH_HOME`` or ``~/.cache/pilotfish``.

    Example::

        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"PILOTFISH_HOME": "/tmp/pf"}):
        ...     model_home()
        PosixPath('/tmp/pf')
    """
    env = os.environ.get("PILOTFISH_HOME", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pilotfish"
