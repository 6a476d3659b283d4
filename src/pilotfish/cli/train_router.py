"""`pilotfish train router`: router data from two evaluation runs, and a router trained on it."""

from __future__ import annotations

from pilotfish.cli.train import train_app  # noqa: F401  (the command registers on the `train` group)
