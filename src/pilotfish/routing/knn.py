"""KNNRouter: predicts each model's score as the similarity-weighted mean over the nearest training prompts.

OrchestraLLM-style: no training beyond storing the labelled prompts' embeddings, so it adapts as soon
as new examples are added, and explains itself by its neighbours.

>>> from pilotfish.routing.data import RoutingData
>>> import numpy as np
>>> data = RoutingData(["a", "b", "c", "d"], np.array([[1, 1], [0, 1], [1, 1], [0, 1]], np.float32), ["s", "l"])
>>> x = np.eye(4, dtype=np.float32)
>>> router = KNNRouter(models=["s", "l"], costs=[1, 10], k=1, shape_features=False)
>>> router.fit(data, embeddings=x, folds=2).predict(["b"], embeddings=x[1:2]).round(2).tolist()
[[0.0, 1.0]]
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from pilotfish.errors import ConfigError
from pilotfish.routing.base import BaseRouter


class KNNRouter(BaseRouter):
    kind: ClassVar[str] = "knn"

    def __init__(self, *, models: list[str], costs: list[float], embedder: str = "minilm-l6", knob: float = 0.0,
                 k: int = 60, shape_features: bool = False, **extra: Any) -> None:
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        super().__init__(models=models, costs=costs, embedder=embedder, knob=knob, k=k,
                         shape_features=shape_features, **extra)
        self._model: Any = None
        self._x = self._y = np.zeros((0, 0), dtype=np.float32)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        from sklearn.neighbors import KNeighborsRegressor

        self._x, self._y = x.astype(np.float32), y.astype(np.float32)
        k = min(self._config["k"], len(x))
        self._model = KNeighborsRegressor(n_neighbors=k, metric="cosine", weights="distance").fit(self._x, self._y)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._model.predict(x), dtype=np.float64).reshape(len(x), len(self.models))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"x": self._x, "y": self._y}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._fit(arrays["x"], arrays["y"])
