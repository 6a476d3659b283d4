"""Fine-tune an embedding model on (query, positive, negatives) pairs in bounded time.

In-batch negatives (multiple-negatives ranking loss): each query is scored against every positive of its
batch and one hard negative per pair (a different one each epoch), and learns to put its own positive
first. Two pairs of a batch that share a positive, or a negative that is another positive of the same
query, are not counted against each other. The base is a sentence-transformers folder (minilm-l6, or a
model trained before) or an int8 ONNX BERT encoder (bge-small, dequantised, CLS pooling). The result is
a sentence-transformers folder that `Embedder(model=DIR)`, `pilotfish ingest --embedder DIR` and
`pilotfish kb reembed --model DIR` use as they are, with the card in ``training.json``.

    from pilotfish.training.embedder import EmbedderTrainingConfig, train_embedder
    report = train_embedder(train_pairs, held_out_pairs, EmbedderTrainingConfig(out="my-embedder", minutes=10))
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.training.retrieval_data import RetrievalPair

CARD = "training.json"


@dataclass
class EmbedderTrainingConfig:
    out: str
    base: str = "minilm-l6"
    minutes: float = 10.0
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 3e-5
    warmup: float = 0.1
    max_length: int = 256
    scale: float = 20.0  # cosine similarities times this are the logits of the loss
    threads: int | None = None  # default: the free cores
    device: str = "cpu"
    seed: int = 0


def check_device(device: str) -> None:
    """ConfigError unless `device` is cpu, or cuda with a GPU torch can see."""
    if device == "cpu":
        return
    if device != "cuda":
        raise ConfigError(f"unknown --device {device!r}; use cpu or cuda")
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("--device cuda, but torch sees no GPU (a CPU-only torch build, or no driver); "
                          "use --device cpu")


def load_base_embedder(base: str, scratch: Path, device: str = "cpu") -> Any:
    """A trainable SentenceTransformer for `base`: a sentence-transformers folder as it is, a plain
    transformers folder with mean pooling, an int8 ONNX BERT dequantised into `scratch` (CLS pooling)."""
    import transformers
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # releases before the modules moved
        from sentence_transformers import models  # type: ignore[no-redef]

    from pilotfish.training.nli_train import has_torch_weights, resolve_base
    from pilotfish.training.onnx_to_torch import dequantize_bert

    transformers.utils.logging.disable_progress_bar()
    path = resolve_base(base)
    if (path / "modules.json").is_file():
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    pooling = "mean"
    if not has_torch_weights(path):
        path, pooling = dequantize_bert(base, scratch), "cls"
    encoder = models.Transformer(str(path))
    layers = [encoder, models.Pooling(encoder.get_word_embedding_dimension(), pooling_mode=pooling),
              models.Normalize()]
    return SentenceTransformer(modules=layers, device=device)


def train_embedder(train: Sequence[RetrievalPair], held_out: Sequence[RetrievalPair], config: EmbedderTrainingConfig,
                   *, progress: Callable[[float], None] | None = None, card: dict[str, Any] | None = None,
                   distractors: Sequence[str] = ()) -> dict[str, Any]:
    """Fine-tune `config.base` on `train`, save it to `config.out` and return the card (also written to
    OUT/training.json): the config, the data counts, speed, and held-out metrics before and after.
    `progress(share)` is called after each step with the share of the time or step budget spent."""
    import torch

    from pilotfish.training.budget import TrainingBudget
    from pilotfish.training.nli_train import free_cores
    from pilotfish.training.retrieval_eval import RankingSet, evaluate_embedder

    if not train:
        raise ConfigError("no training pairs")
    check_device(config.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = config.threads or free_cores()
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    model = load_base_embedder(config.base, out / "base", config.device)
    model.max_seq_length = config.max_length
    held = RankingSet.from_pairs(held_out, seed=config.seed, distractors=distractors) if held_out else None
    before = evaluate_embedder(config.base, held, threads=threads) if held else None

    positives: dict[str, set[str]] = {}
    for p in train:
        positives.setdefault(p.query, set()).add(p.positive)
    order = list(train)
    steps_per_epoch = max(1, (len(order) + config.batch_size - 1) // config.batch_size)
    budget = TrainingBudget(total_steps=steps_per_epoch * config.epochs, minutes=config.minutes, warmup=config.warmup)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, budget.lr_factor)
    rng = random.Random(config.seed)
    model.train()
    seen, losses, epochs_run = 0, [], 0
    for epoch in range(config.epochs):
        rng.shuffle(order)
        epochs_run = epoch + 1
        for start in range(0, len(order), config.batch_size):
            loss = _step(model, order[start:start + config.batch_size], positives, epoch, config)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            budget.step += 1
            seen += len(order[start:start + config.batch_size])
            losses.append(loss.item())
            if progress:
                progress(budget.done())
            if budget.finished():
                break
        if budget.finished():
            break
    seconds = budget.elapsed()
    model.eval()
    model.save(str(out))
    shutil.rmtree(out / "base", ignore_errors=True)
    after = evaluate_embedder(str(out), held, threads=threads) if held else None
    report = {"kind": "embedding", **(card or {}), "config": asdict(config), "train_pairs": len(train),
              "train_queries": len(positives), "held_out_pairs": len(held_out),
              "hard_negatives": sum(len(p.negatives) for p in train), "threads": threads, "steps": budget.step,
              "epochs_started": epochs_run, "stopped_by": "steps" if budget.step >= budget.total_steps else "minutes",
              "pairs_per_second": round(seen / max(seconds, 1e-9), 1), "minutes": round(seconds / 60, 2),
              "final_loss": round(sum(losses[-10:]) / max(1, len(losses[-10:])), 4),
              "held_out": {"before": before, "after": after}}
    (out / CARD).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _step(model: Any, batch: Sequence[RetrievalPair], positives: dict[str, set[str]], epoch: int,
          config: EmbedderTrainingConfig) -> Any:
    """The loss of one batch: each query against every distinct positive and hard negative of the batch."""
    import torch

    docs: dict[str, int] = {}
    for p in batch:
        docs.setdefault(p.positive, len(docs))
    for p in batch:
        if p.negatives:
            docs.setdefault(p.negatives[epoch % len(p.negatives)], len(docs))
    texts = list(docs)
    q = torch.nn.functional.normalize(model(_features(model, [p.query for p in batch], config))["sentence_embedding"],
                                      dim=-1)
    d = torch.nn.functional.normalize(model(_features(model, texts, config))["sentence_embedding"], dim=-1)
    logits = (q @ d.T) * config.scale
    # Another positive of the same query is no negative for it.
    mask = torch.tensor([[t in positives[p.query] and docs[t] != docs[p.positive] for t in texts] for p in batch],
                        device=logits.device)
    logits = logits.masked_fill(mask, float("-inf"))
    target = torch.tensor([docs[p.positive] for p in batch], device=logits.device)
    return torch.nn.functional.cross_entropy(logits.float(), target)


def _features(model: Any, texts: list[str], config: EmbedderTrainingConfig) -> dict[str, Any]:
    prepare = getattr(model, "preprocess", None) or model.tokenize  # `tokenize` is deprecated in newer releases
    return {k: v.to(config.device) if hasattr(v, "to") else v for k, v in prepare(texts).items()}
