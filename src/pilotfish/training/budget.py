"""TrainingBudget: how far a time- and step-bounded training run is, and the learning rate that goes with it.

A run stops at whichever limit comes first, the steps of its epochs or its minutes; the learning rate warms
up over the first share of that and then decays linearly, so it reaches zero when training stops.

>>> budget = TrainingBudget(total_steps=100, minutes=60.0, warmup=0.1)
>>> budget.step = 5
>>> round(budget.lr_factor(), 2), budget.finished()
(0.5, False)
>>> budget.step = 100
>>> budget.lr_factor(), budget.finished()
(0.0, True)
"""

from __future__ import annotations

import time

from pilotfish.errors import ConfigError


class TrainingBudget:
    """Steps done against `total_steps` and time spent against `minutes`; `done()` is the larger share."""

    def __init__(self, *, total_steps: int, minutes: float, warmup: float = 0.1) -> None:
        if total_steps < 1:
            raise ConfigError(f"nothing to train: {total_steps} steps")
        if not minutes > 0:
            raise ConfigError(f"--minutes must be positive, got {minutes:g}")
        if not 0 <= warmup < 1:
            raise ConfigError(f"warmup must be at least 0 and under 1, got {warmup:g}")
        self.total_steps, self.minutes, self.warmup = total_steps, minutes, warmup
        self.started = time.monotonic()
        self.step = 0

    def elapsed(self) -> float:
        """Seconds since the budget started."""
        return time.monotonic() - self.started

    def done(self) -> float:
        """Share of the budget spent, 0 to 1: steps or minutes, whichever is further along."""
        return min(1.0, max(self.step / self.total_steps, self.elapsed() / (self.minutes * 60)))

    def finished(self) -> bool:
        return self.step >= self.total_steps or self.elapsed() >= self.minutes * 60

    def lr_factor(self, _step: int = 0) -> float:
        """Multiplier of the peak learning rate now (a `LambdaLR` function: the argument is ignored)."""
        done = self.done()
        if done < self.warmup:
            return done / self.warmup
        return max(0.0, (1 - done) / (1 - self.warmup))
