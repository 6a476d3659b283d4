"""ClassifierRouter: one logistic regression per model predicts its score from the prompt's features.

Scores in [0, 1] are used as soft labels (each prompt counts as a success with weight s and a failure
with weight 1 - s), so correctness labels and graded scores train the same way. Weights are stored as
plain arrays and applied with numpy at routing time.

>>> from pilotfish.routing.data import RoutingData
>>> import numpy as np
>>> x = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], np.float32)
>>> data = RoutingData(list("abcd"), np.array([[1, 1], [1, 1], [0, 1], [0, 1]], np.float32), ["s", "l"])
>>> router = ClassifierRouter(models=["s", "l"], costs=[1, 10], shape_features=False).fit(data, embeddings=x, folds=2)
>>> (router.predict(["a", "c"], embeddings=x[[0, 2]])[:, 0] > 0.5).tolist()
[True, False]
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from pilotfish.errors import ConfigError
from pilotfish.routing.base import BaseRouter


class ClassifierRouter(BaseRouter):
    kind: ClassVar[str] = "classifier"

    def __init__(self, *, models: list[str], costs: list[float], embedder: str = "minilm-l6", knob: float = 0.0,
                 c: float = 1.0, shape_features: bool = True, **extra: Any) -> None:
        if c <= 0:
            raise ConfigError(f"the regularisation c must be positive, got {c}")
        super().__init__(models=models, costs=costs, embedder=embedder, knob=knob, c=c,
                         shape_features=shape_features, **extra)
        self._coef = np.zeros((len(self.models), 0))
        self._intercept = np.zeros(len(self.models))

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        coef, intercept = np.zeros((y.shape[1], x.shape[1])), np.zeros(y.shape[1])
        for j in range(y.shape[1]):
            target = y[:, j].astype(np.float64)
            mean = float(target.mean())
            if mean in (0.0, 1.0):  # one class only: predict it, whatever the prompt
                intercept[j] = 20.0 if mean == 1.0 else -20.0
                continue
            features = np.vstack([x, x])
            labels = np.r_[np.ones(len(x)), np.zeros(len(x))]
            weights = np.r_[target, 1.0 - target]
            keep = weights > 0
            model = LogisticRegression(C=self._config["c"], max_iter=3000)
            model.fit(features[keep], labels[keep], sample_weight=weights[keep])
            coef[j], intercept[j] = model.coef_[0], model.intercept_[0]
        self._coef, self._intercept = coef, intercept

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(x.astype(np.float64) @ self._coef.T + self._intercept)))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self._coef, "intercept": self._intercept}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._coef, self._intercept = arrays["coef"], arrays["intercept"]
