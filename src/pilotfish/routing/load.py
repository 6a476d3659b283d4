"""`load_router`: a router folder saved by `BaseRouter.save`, read back as the right kind of router."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pilotfish.errors import ConfigError
from pilotfish.routing.base import FORMAT_VERSION, BaseRouter
from pilotfish.routing.classifier import ClassifierRouter
from pilotfish.routing.knn import KNNRouter


def load_router(folder: str | Path) -> BaseRouter:
    """A router saved by `save`; a folder that is not one gets a clear error."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "router.json").read_text(encoding="utf-8"))
        with np.load(folder / "weights.npz", allow_pickle=False) as stored:
            arrays = {k: stored[k] for k in stored.files}
    except (OSError, ValueError) as err:
        raise ConfigError(f"{folder} is not a saved router ({err}); train one with `pilotfish route train`") from err
    kinds = {cls.kind: cls for cls in (KNNRouter, ClassifierRouter)}
    if meta.get("format") != FORMAT_VERSION or meta.get("kind") not in kinds:
        raise ConfigError(f"{folder} holds a router of kind {meta.get('kind')!r}, format {meta.get('format')}; "
                          f"this pilotfish reads kinds {sorted(kinds)} in format {FORMAT_VERSION}")
    router = kinds[meta["kind"]](**meta["config"])
    router.calibration = meta.get("calibration", {})
    router._restore(arrays)
    return router
