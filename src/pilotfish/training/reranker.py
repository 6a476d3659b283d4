"""Fine-tune a cross-encoder reranker on (query, positive, negatives) pairs in bounded time, export int8 ONNX.

Listwise training: each query is scored with its positive and `group - 1` negatives (its hard negatives
first, then positives of other queries), and a softmax over those logits learns to put the positive
first. The base is the packaged ms-marco-MiniLM-L12 cross-encoder (int8 ONNX, dequantised with its
1-logit head where that is possible), or any BERT encoder (minilm-l6 and bge-small get a new head). The
result is exported as the packaged reranker is (model.onnx, int8, input_ids / attention_mask /
token_type_ids -> logits[:, 0], plus tokenizer.json), so `CrossEncoderReranker(model=DIR)` and pipeline
files use it unchanged; the card is ``training.json`` and the trained torch weights stay in OUT/torch.

    from pilotfish.training.reranker import RerankerTrainingConfig, train_reranker
    report = train_reranker(train_pairs, held_out_pairs, RerankerTrainingConfig(out="my-reranker", minutes=10))
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.training.retrieval_data import RetrievalPair, same_text

CARD = "training.json"


@dataclass
class RerankerTrainingConfig:
    out: str
    base: str = "ms-marco-l12"
    minutes: float = 10.0
    epochs: int = 1
    batch_size: int = 8  # queries per step; each brings `group` (query, text) pairs
    group: int = 4  # the positive and this many minus one negatives
    learning_rate: float = 2e-5
    warmup: float = 0.1
    max_length: int = 256
    threads: int | None = None  # default: the free cores
    device: str = "cpu"
    seed: int = 0


def is_reranker(name: str) -> bool:
    """Whether `name` already scores (query, passage) pairs as `CrossEncoderReranker` reads them: the packaged
    reranker, a registered reranker, or a folder this module wrote."""
    from pilotfish.models import get_spec, model_path
    from pilotfish.models.trained import registered_models

    try:
        return get_spec(name).role == "reranker"
    except ConfigError:
        pass
    entry = registered_models().get(name)
    if entry is not None:
        return entry.get("role") == "reranker"
    path = model_path(name)
    try:
        return json.loads((path / CARD).read_text("utf-8")).get("kind") == "reranker"
    except (OSError, ValueError):
        return False


def load_base_reranker(base: str, scratch: Path) -> tuple[Any, Any]:
    """(tokenizer, 1-logit sequence classifier) for `base`; int8 ONNX BERT models are dequantised into `scratch`,
    keeping their head when they are rerankers already."""
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pilotfish.training.nli_train import has_torch_weights, resolve_base
    from pilotfish.training.onnx_to_torch import dequantize_bert

    transformers.utils.logging.disable_progress_bar()
    path = resolve_base(base)
    if (path / "torch").is_dir() and has_torch_weights(path / "torch"):  # a reranker trained here before
        path = path / "torch"
    elif not has_torch_weights(path):
        try:
            path = dequantize_bert(base, scratch, with_head=is_reranker(base))  # type: ignore[call-arg]
        except TypeError:  # a version of dequantize_bert that cannot carry the head over
            path = dequantize_bert(base, scratch)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, ignore_mismatched_sizes=True)
    return tokenizer, model


def train_reranker(train: Sequence[RetrievalPair], held_out: Sequence[RetrievalPair], config: RerankerTrainingConfig,
                   *, progress: Callable[[float], None] | None = None, card: dict[str, Any] | None = None,
                   distractors: Sequence[str] = ()) -> dict[str, Any]:
    """Fine-tune `config.base` on `train`, export int8 ONNX to `config.out` and return the card (also written
    to OUT/training.json) with held-out metrics before (when the base is a reranker) and after."""
    import torch

    from pilotfish.training.budget import TrainingBudget
    from pilotfish.training.embedder import check_device
    from pilotfish.training.nli_train import export_onnx, free_cores
    from pilotfish.training.retrieval_eval import RankingSet, evaluate_reranker

    if not train:
        raise ConfigError("no training pairs")
    if config.group < 2:
        raise ConfigError(f"--group must be at least 2 (a positive and a negative), got {config.group}")
    check_device(config.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = config.threads or free_cores()
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    held = RankingSet.from_pairs(held_out, seed=config.seed, distractors=distractors) if held_out else None
    before = evaluate_reranker(config.base, held, threads=threads) if held and is_reranker(config.base) else None
    tokenizer, model = load_base_reranker(config.base, out / "base")
    model.to(config.device).train()

    groups: dict[str, tuple[list[str], list[str]]] = {}
    for p in train:
        pos, neg = groups.setdefault(p.query, ([], []))
        pos.append(p.positive)
        neg += [n for n in p.negatives if n not in neg]
    every_positive = list(dict.fromkeys(p.positive for p in train))
    order = list(train)
    steps_per_epoch = max(1, (len(order) + config.batch_size - 1) // config.batch_size)
    budget = TrainingBudget(total_steps=steps_per_epoch * config.epochs, minutes=config.minutes, warmup=config.warmup)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, budget.lr_factor)
    rng = random.Random(config.seed)
    seen, losses = 0, []
    for epoch in range(config.epochs):
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            texts = [t for p in batch for t in _group(p, groups[p.query], every_positive, config.group, epoch, rng)]
            enc = tokenizer([p.query for p in batch for _ in range(config.group)], texts, truncation="only_second",
                            max_length=config.max_length, padding=True, return_tensors="pt").to(config.device)
            logits = model(**enc).logits[:, 0].float().view(len(batch), config.group)
            loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long,
                                                                         device=logits.device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            budget.step += 1
            seen += len(batch)
            losses.append(loss.item())
            if progress:
                progress(budget.done())
            if budget.finished():
                break
        if budget.finished():
            break
    seconds = budget.elapsed()
    model.eval()
    model.to("cpu").save_pretrained(out / "torch")
    tokenizer.save_pretrained(out / "torch")
    with warnings.catch_warnings():  # the tracer's and the quantiser's advice says nothing to a user
        warnings.simplefilter("ignore")
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR
        try:
            export_onnx(out)
        finally:
            root.setLevel(level)
    shutil.rmtree(out / "base", ignore_errors=True)
    after = evaluate_reranker(str(out), held, threads=threads) if held else None
    report = {"kind": "reranker", **(card or {}), "config": asdict(config), "train_pairs": len(train),
              "train_queries": len(groups), "held_out_pairs": len(held_out),
              "hard_negatives": sum(len(p.negatives) for p in train), "threads": threads, "steps": budget.step,
              "stopped_by": "steps" if budget.step >= budget.total_steps else "minutes",
              "queries_per_second": round(seen / max(seconds, 1e-9), 2), "minutes": round(seconds / 60, 2),
              "final_loss": round(sum(losses[-10:]) / max(1, len(losses[-10:])), 4),
              "held_out": {"before": before, "after": after}}
    (out / CARD).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _group(pair: RetrievalPair, group: tuple[list[str], list[str]], every_positive: list[str], size: int,
           epoch: int, rng: random.Random) -> list[str]:
    """The positive, then `size - 1` negatives: the query's hard negatives (rotating by epoch), then other
    queries' positives that are none of this query's."""
    positives, negatives = group
    shift = (epoch * (size - 1)) % max(1, len(negatives))
    chosen = (negatives[shift:] + negatives[:shift])[:size - 1]
    tries = 0
    while len(chosen) < size - 1 and tries < 50:
        tries += 1
        other = every_positive[rng.randrange(len(every_positive))]
        if other not in chosen and not any(same_text(other, pos) for pos in positives):
            chosen.append(other)
    while len(chosen) < size - 1:  # a corpus too small to find distinct negatives in: repeat one
        chosen.append(chosen[-1] if chosen else "")
    return [pair.positive, *chosen]
