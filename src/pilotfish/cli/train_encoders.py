"""`pilotfish train embedder` and `pilotfish train reranker`: fine-tune the retrieval models on your data."""

from __future__ import annotations

from pilotfish.cli.train import train_app  # noqa: F401  (the commands register on the `train` group)
