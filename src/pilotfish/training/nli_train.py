"""Train pilotfish's small NLI cross-encoder on CPU (or GPU) in bounded time, and export it to int8 ONNX.

The base is a packaged encoder with a new 3-way head over (premise, hypothesis) pairs: by default the
ms-marco-MiniLM-L12 cross-encoder, whose int8 ONNX weights are dequantised first (as bge-small's can be),
or all-MiniLM-L6-v2. Training stops after `minutes` (or `epochs`), with a learning rate that reaches zero
at that limit, evaluating on held-out pairs (MNLI dev-mismatched in `pilotfish train nli`) as it goes and
keeping the best checkpoint; `export_onnx` turns that into per-channel int8 ONNX.

    from pilotfish.training.nli_train import NLITrainingConfig, train_nli
    report = train_nli(train_pairs, eval_pairs, NLITrainingConfig(out="nli-model", minutes=70))
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.training.nli_data import LABELS, NLIPair


@dataclass
class NLITrainingConfig:
    out: str
    base: str = "ms-marco-l12"
    minutes: float = 40.0
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup: float = 0.06
    max_length: int = 160
    eval_every: int = 400
    threads: int | None = None  # default: the free cores
    device: str = "cpu"
    seed: int = 0
    keep_head: bool = False  # continue an NLI model (e.g. nli-small) with its own 3-way head
    extra: dict[str, Any] = field(default_factory=dict)


def free_cores() -> int:
    """Cores idle right now, at least one: torch threads on busy cores stall each other.

    Measured over half a second from /proc/stat where it exists; the load average lags by a minute,
    so right after another job ends it still counts that job's cores as busy.
    """
    cores = os.cpu_count() or 1
    try:
        first = _cpu_times()
        time.sleep(0.5)
        second = _cpu_times()
        total, idle = second[0] - first[0], second[1] - first[1]
        busy = round(cores * (1 - idle / total)) if total > 0 else 0
    except OSError:
        try:
            busy = int(round(os.getloadavg()[0]))
        except OSError:
            busy = 0
    return max(1, cores - busy)


def _cpu_times() -> tuple[int, int]:
    """(all jiffies, idle + iowait jiffies) of the machine, from /proc/stat (OSError elsewhere)."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return sum(fields[:8]), fields[3] + fields[4]


def has_torch_weights(folder: Path) -> bool:
    """Whether transformers can load `folder` as it is (else its ONNX weights must be dequantised first)."""
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def resolve_base(name: str) -> Path:
    """The folder of encoder `name` (registry name or local path); ConfigError unless it can start training."""
    from pilotfish.models import model_path

    path = model_path(name)
    if path.is_dir() and has_torch_weights(path / "torch"):  # a model pilotfish trained: its fp32 checkpoint
        return path / "torch"
    if not path.is_dir() or not (has_torch_weights(path) or (path / "model.onnx").is_file()):
        raise ConfigError(f"--base {name} is not an encoder to fine-tune (a transformers folder with safetensors, "
                          "or an int8 BERT ONNX folder): use minilm-l6, ms-marco-l12 or bge-small")
    return path


def held_out_score(model: Any, tokenizer: Any, pairs: Sequence[NLIPair], config: NLITrainingConfig) -> dict[str, float]:
    """How the model does on held-out pairs: 3-way accuracy on the hard-labelled ones, AUROC of P(entailment)
    against the teacher's verdict (target >= 0.5) on the soft-labelled ones, and `score`, their mean."""
    hard = [p for p in pairs if p.target is None]
    soft = [p for p in pairs if p.target is not None]
    parts: dict[str, float] = {}
    if hard:
        parts["accuracy"], _ = accuracy(model, tokenizer, hard, config)
    if soft:
        from sklearn.metrics import roc_auc_score

        _, probs = accuracy(model, tokenizer, soft, config)
        verdicts = [p.target >= 0.5 for p in soft]  # type: ignore[operator]
        parts["teacher_auroc"] = roc_auc_score(verdicts, [row[0] for row in probs]) if 0 < sum(verdicts) < len(
            verdicts) else 0.5
    return {k: round(v, 4) for k, v in parts.items()} | {"score": round(sum(parts.values()) / len(parts), 4)}


def accuracy(model: Any, tokenizer: Any, pairs: Sequence[NLIPair], config: NLITrainingConfig,
             batch_size: int = 64) -> tuple[float, list[list[float]]]:
    """Accuracy on `pairs` and the softmax probabilities (in LABELS order)."""
    import torch

    model.eval()
    probs: list[list[float]] = []
    with torch.inference_mode():
        for i in range(0, len(pairs), batch_size):
            batch = pairs[i:i + batch_size]
            enc = tokenizer([p.premise for p in batch], [p.hypothesis for p in batch], truncation=True,
                            max_length=config.max_length, padding=True, return_tensors="pt").to(config.device)
            probs += torch.softmax(model(**enc).logits.float(), dim=-1).tolist()
    model.train()
    right = sum(LABELS[max(range(3), key=row.__getitem__)] == p.label for row, p in zip(probs, pairs))
    return right / max(1, len(pairs)), probs


def train_nli(train: Sequence[NLIPair], held_out: Sequence[NLIPair], config: NLITrainingConfig,
              progress: Callable[[dict[str, Any]], None] | None = None,
              step_progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Fine-tune, keep the best checkpoint on `held_out`, export ONNX int8 to `config.out`; return a report.
    `progress` gets each held-out evaluation; `step_progress` the share of the step or time budget spent,
    after every step."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pilotfish.training.onnx_to_torch import dequantize_bert

    if not train or not held_out:
        raise ConfigError("NLI training needs training pairs and held-out pairs")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    threads = config.threads or free_cores()
    torch.set_num_threads(threads)
    base = resolve_base(config.base)
    if not has_torch_weights(base):
        base = dequantize_bert(config.base, out / "base", with_head=config.keep_head)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=3, id2label=dict(enumerate(LABELS)), label2id={k: i for i, k in enumerate(LABELS)})
    model.to(config.device).train()
    label_id = {k: i for i, k in enumerate(LABELS)}
    order = list(train)
    steps_per_epoch = (len(order) + config.batch_size - 1) // config.batch_size
    total = steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    deadline = time.monotonic() + config.minutes * 60
    best, best_step, step, seen, started = -1.0, 0, 0, 0, time.monotonic()

    def progress_done() -> float:
        # A time-bounded run rarely finishes its epochs: the learning rate follows whichever budget,
        # steps or minutes, runs out first, so it has decayed to zero when training stops.
        return max(step / total, (time.monotonic() - started) / (config.minutes * 60))

    def lr_factor(_: int) -> float:
        done = progress_done()
        return done / config.warmup if done < config.warmup else max(0.0, (1 - done) / (1 - config.warmup))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    history = []
    rng = random.Random(config.seed)
    autocast = torch.autocast(device_type="cpu" if config.device == "cpu" else "cuda", dtype=torch.bfloat16)
    for _epoch in range(config.epochs):
        rng.shuffle(order)
        for i in range(0, len(order), config.batch_size):
            batch = order[i:i + config.batch_size]
            enc = tokenizer([p.premise for p in batch], [p.hypothesis for p in batch], truncation=True,
                            max_length=config.max_length, padding=True, return_tensors="pt").to(config.device)
            with autocast:
                loss = _loss(model(**enc).logits.float(), batch, label_id)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step, seen = step + 1, seen + len(batch)
            if step_progress:
                step_progress(min(1.0, progress_done()))
            last = time.monotonic() >= deadline or step == total
            if step % config.eval_every == 0 or last:
                measured = held_out_score(model, tokenizer, held_out, config)
                acc = measured["score"]
                point = {"step": step, "pairs_seen": seen, "minutes": round((time.monotonic() - started) / 60, 2),
                         "held_out_accuracy": measured.get("accuracy", acc), "held_out": measured,
                         "loss": round(float(loss), 4)}
                history.append(point)
                if progress:
                    progress(point)
                if acc > best:
                    best, best_step = acc, step
                    model.save_pretrained(out / "torch")
                    tokenizer.save_pretrained(out / "torch")
            if last:
                break
        if time.monotonic() >= deadline:
            break
    seconds = time.monotonic() - started
    report = {"config": asdict(config), "train_pairs": len(train), "held_out_pairs": len(held_out),
              "threads": threads, "best_held_out_score": round(best, 4), "best_step": best_step, "steps": step,
              "pairs_per_second": round(seen / seconds, 1), "minutes": round(seconds / 60, 2), "history": history}
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _loss(logits: Any, batch: Sequence[NLIPair], label_id: dict[str, int]) -> Any:
    """Cross-entropy on hard labels; on a teacher's P(entailment) p, binary cross-entropy of the model's
    P(entailment) q against p (the teacher says nothing about neutral against contradiction)."""
    import torch

    logp = torch.log_softmax(logits, dim=-1)
    entail = label_id["entailment"]
    others = [i for i in label_id.values() if i != entail]
    terms = []
    for i, pair in enumerate(batch):
        if pair.target is None:
            terms.append(-logp[i, label_id[pair.label]])
        else:
            p = float(pair.target)
            terms.append(-(p * logp[i, entail] + (1 - p) * torch.logsumexp(logp[i, others], dim=0)))
    return torch.stack(terms).mean()


def export_onnx(folder: str | Path, *, quantize: bool = True) -> Path:
    """The best checkpoint in FOLDER/torch as FOLDER/model.onnx (dynamic int8 when `quantize`) + tokenizer."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder / "torch").eval()
    tokenizer = AutoTokenizer.from_pretrained(folder / "torch")
    sample = tokenizer(["A man is eating."], ["Someone eats."], return_tensors="pt")
    fp32 = folder / "model-fp32.onnx"
    torch.onnx.export(model, (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]), fp32,
                      input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
                      dynamic_axes={n: {0: "batch", 1: "sequence"} for n in
                                    ("input_ids", "attention_mask", "token_type_ids")} | {"logits": {0: "batch"}},
                      opset_version=17, dynamo=False)
    tokenizer.save_pretrained(folder)
    target = folder / "model.onnx"
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per-channel scales with a 7-bit range: per-tensor int8 cost a 12-layer model 10 MNLI points,
        # this costs it none (0.660 fp32, 0.660 int8 on 1,000 MNLI pairs).
        quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        fp32.unlink()
    else:
        fp32.replace(target)
    return target
