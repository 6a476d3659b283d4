"""`pilotfish train embedder` and `pilotfish train reranker`: fine-tune the retrieval models on your data.

    pilotfish train embedder --pairs pairs.jsonl --kb .pilotfish --out my-embedder --name my-embedder
    pilotfish kb reembed --model my-embedder --kb .pilotfish
    pilotfish train reranker --pairs pairs.jsonl --kb .pilotfish --out my-reranker --minutes 20

Pairs come from a file of {"query", "positive", "negatives"?} lines (--pairs), from an evaluation run's
questions and their gold documents (--from-eval RUN --dataset FILE), or from answers rated thumbs-up
(--from-log, read from the --kb's feedback table); sources add up. Hard negatives are mined from --kb.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pilotfish.cli.common import _quiet_libraries, err, fail, out
from pilotfish.cli.train import train_app
from pilotfish.errors import ConfigError, PilotfishError

PairsOpt = Annotated[Path | None, typer.Option("--pairs", help=escape(
    'JSONL of {"query", "positive", "negatives"?} lines (texts; negatives a list).'))]
FromEvalOpt = Annotated[str | None, typer.Option("--from-eval", help="Name of an evaluation run: its questions "
                                                                     "with their gold documents (needs --dataset).")]
DatasetOpt = Annotated[Path | None, typer.Option("--dataset", help="The dataset the --from-eval run was scored on "
                                                                   "(it holds the gold document ids).")]
EvalOutOpt = Annotated[Path | None, typer.Option("--eval-out", help="Folder of the run store (default: where "
                                                                    "`pilotfish eval list` looks).")]
EvalDbOpt = Annotated[str | None, typer.Option("--eval-db", help="SQLAlchemy URL of the run store.")]
FromLogOpt = Annotated[bool, typer.Option("--from-log", help="Questions of answers rated thumbs-up in --kb's "
                                                             "feedback, with the chunks they were answered from.")]
KbOpt = Annotated[Path | None, typer.Option("--kb", help="Knowledge base to mine hard negatives from (and to read "
                                                         "--from-log feedback and documents from).",
                                            envvar="PILOTFISH_KB")]
DbOpt = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL of --kb (default: SQLite inside it).",
                                           envvar="PILOTFISH_DB")]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for the trained model.")]
NegOpt = Annotated[int, typer.Option("--hard-negatives", help="Negatives mined from --kb per query (0: none).")]
MineOpt = Annotated[str, typer.Option("--mine-with", help="Search that mines them: bm25, dense or hybrid.")]
HeldOpt = Annotated[float, typer.Option("--held-out", help="Share of the queries kept back to measure the model "
                                                           "before and after.")]
MinutesOpt = Annotated[float, typer.Option(help="Stop training after this long (the learning rate reaches zero "
                                                "then).")]
EpochsOpt = Annotated[int, typer.Option(help="At most this many passes over the pairs.")]
LrOpt = Annotated[float | None, typer.Option("--learning-rate", help="Peak learning rate (default 3e-5 for an "
                                                                     "embedder, 2e-5 for a reranker).")]
MaxLenOpt = Annotated[int, typer.Option(help="Token window of a text (a query and text for a reranker).")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the split and the shuffle.")]
ThreadsOpt = Annotated[int | None, typer.Option(help="Torch threads (default: the free cores).")]
DeviceOpt = Annotated[str, typer.Option(help="cpu or cuda.")]
NameOpt = Annotated[str | None, typer.Option("--name", help="Register the model under this name, usable wherever a "
                                                            "model name is.")]
MINE_MODES = ("bm25", "dense", "hybrid")


@train_app.command("embedder")
def train_embedder_command(
    output: OutOpt, pairs: PairsOpt = None, from_eval: FromEvalOpt = None, dataset: DatasetOpt = None,
    eval_out: EvalOutOpt = None, eval_db: EvalDbOpt = None, from_log: FromLogOpt = False, kb: KbOpt = None,
    db: DbOpt = None,
    base: Annotated[str, typer.Option(help="Model to start from: minilm-l6, bge-small (int8 ONNX, dequantised), "
                                           "or a sentence-transformers folder or registered name.")] = "minilm-l6",
    hard_negatives: NegOpt = 3, mine_with: MineOpt = "bm25", held_out: HeldOpt = 0.1, minutes: MinutesOpt = 10.0,
    epochs: EpochsOpt = 1,
    batch_size: Annotated[int, typer.Option(help="Pairs per step (each query's in-batch negatives).")] = 32,
    learning_rate: LrOpt = None, max_length: MaxLenOpt = 256, seed: SeedOpt = 0, threads: ThreadsOpt = None,
    device: DeviceOpt = "cpu", name: NameOpt = None,
) -> None:
    """Fine-tune an embedding model on (query, positive) pairs with in-batch and mined hard negatives; use it
    with `pilotfish ingest --embedder OUT` or `pilotfish kb reembed --model OUT`."""
    from pilotfish.training.embedder import EmbedderTrainingConfig, train_embedder

    _quiet_libraries()
    options = {"--base": base, "--hard-negatives": hard_negatives, "--held-out": held_out, "--minutes": minutes,
               "--epochs": epochs, "--batch-size": batch_size, "--max-length": max_length, "--seed": seed}
    try:
        _check_common(base, device, batch_size, epochs, name)
        train, held, card = _gather(pairs, from_eval, dataset, eval_out, eval_db, from_log, kb, db, hard_negatives,
                                    mine_with, held_out, seed, "embedder", options, output)
        config = EmbedderTrainingConfig(out=str(output), base=base, minutes=minutes, epochs=epochs,
                                        batch_size=batch_size, learning_rate=learning_rate or 3e-5,
                                        max_length=max_length, threads=threads, device=device, seed=seed)
        report = _run(lambda progress: train_embedder(train, held, config, progress=progress, card=card),
                      len(train), len(held), minutes)
    except PilotfishError as e:
        fail(str(e))
    _finish(report, output, name, "embedding")
    out.print(escape(f"use it with `pilotfish ingest PATH --kb NEW --embedder {output}` or `pilotfish kb reembed "
                     f"--model {name or output} --kb KB`"), highlight=False, soft_wrap=True)


@train_app.command("reranker")
def train_reranker_command(
    output: OutOpt, pairs: PairsOpt = None, from_eval: FromEvalOpt = None, dataset: DatasetOpt = None,
    eval_out: EvalOutOpt = None, eval_db: EvalDbOpt = None, from_log: FromLogOpt = False, kb: KbOpt = None,
    db: DbOpt = None,
    base: Annotated[str, typer.Option(help="Model to start from: ms-marco-l12 (the packaged reranker), minilm-l6 "
                                           "or bge-small (a new head), or a reranker trained before.")
                    ] = "ms-marco-l12",
    hard_negatives: NegOpt = 3, mine_with: MineOpt = "bm25", held_out: HeldOpt = 0.1, minutes: MinutesOpt = 10.0,
    epochs: EpochsOpt = 1,
    batch_size: Annotated[int, typer.Option(help="Queries per step.")] = 8,
    group: Annotated[int, typer.Option(help="Texts scored per query in a step: its positive and negatives (hard "
                                            "ones first, then other queries' positives).")] = 4,
    learning_rate: LrOpt = None, max_length: MaxLenOpt = 256, seed: SeedOpt = 0, threads: ThreadsOpt = None,
    device: DeviceOpt = "cpu", name: NameOpt = None,
) -> None:
    """Fine-tune a cross-encoder reranker on (query, positive, negatives) pairs and export it as int8 ONNX, the
    format of the packaged reranker; use it with `CrossEncoderReranker(model=OUT)`."""
    from pilotfish.training.reranker import RerankerTrainingConfig, train_reranker

    _quiet_libraries()
    options = {"--base": base, "--hard-negatives": hard_negatives, "--held-out": held_out, "--minutes": minutes,
               "--epochs": epochs, "--batch-size": batch_size, "--group": group, "--max-length": max_length,
               "--seed": seed}
    try:
        _check_common(base, device, batch_size, epochs, name)
        train, held, card = _gather(pairs, from_eval, dataset, eval_out, eval_db, from_log, kb, db, hard_negatives,
                                    mine_with, held_out, seed, "reranker", options, output)
        config = RerankerTrainingConfig(out=str(output), base=base, minutes=minutes, epochs=epochs,
                                        batch_size=batch_size, group=group, learning_rate=learning_rate or 2e-5,
                                        max_length=max_length, threads=threads, device=device, seed=seed)
        report = _run(lambda progress: train_reranker(train, held, config, progress=progress, card=card),
                      len(train), len(held), minutes)
    except PilotfishError as e:
        fail(str(e))
    _finish(report, output, name, "reranker")
    out.print(escape(f"use it with CrossEncoderReranker(model=\"{name or output}\")"), highlight=False,
              soft_wrap=True)


def _check_common(base: str, device: str, batch_size: int, epochs: int, name: str | None) -> None:
    """Options that can be refused before any data is read or model loaded."""
    from pilotfish.training.nli_train import resolve_base

    if batch_size < 1 or epochs < 1:
        raise ConfigError(f"--batch-size and --epochs must be at least 1, got {batch_size} and {epochs}")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"unknown --device {device!r}; use cpu or cuda")
    if name is not None:
        from pilotfish.models.trained import check_name

        check_name(name)  # a name that cannot be registered fails now, not after training
    try:
        resolve_base(base)
    except ConfigError as e:
        raise ConfigError(f"--base {base}: {e}") from None


def _gather(pairs: Path | None, from_eval: str | None, dataset: Path | None, eval_out: Path | None,
            eval_db: str | None, from_log: bool, kb: Path | None, db: str | None, hard_negatives: int, mine_with: str,
            held_out: float, seed: int, command: str, options: dict[str, Any], output: Path
            ) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """(train pairs, held-out pairs, the card's data and command) from every source given."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pilotfish.training.retrieval_data import mine_hard_negatives, read_pairs, split_held_out

    if pairs is None and from_eval is None and not from_log:
        raise ConfigError("no training data: give --pairs FILE.jsonl, --from-eval RUN --dataset FILE, or --from-log "
                          "--kb KB")
    if mine_with not in MINE_MODES:
        raise ConfigError(f"unknown --mine-with {mine_with!r}; use {', '.join(MINE_MODES)}")
    if hard_negatives < 0:
        raise ConfigError(f"--hard-negatives must be 0 or more, got {hard_negatives}")
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--out {output} is a file; give a folder for the model")
    if from_log and kb is None:
        raise ConfigError("--from-log reads the feedback of a knowledge base: give --kb KB")
    if hard_negatives and kb is None:
        err.print("[dim]note[/] no --kb to mine hard negatives from: the pairs' own negatives and in-batch ones "
                  "are used", highlight=False)
    base = None
    if kb is not None:
        from pilotfish.knowledge.base import KnowledgeBase

        base = KnowledgeBase.open(kb, db=db)
    found, sources = [], {}
    if pairs is not None:
        found += read_pairs(pairs)
        sources["pairs"] = {"file": str(pairs), "pairs": len(found)}
    if from_eval is not None:
        from_run = _eval_pairs(from_eval, dataset, eval_out, eval_db, base)
        found += from_run
        sources["eval_run"] = {"run": from_eval, "dataset": str(dataset), "pairs": len(from_run)}
    if from_log:
        from pilotfish.training.retrieval_data import pairs_from_feedback

        liked = pairs_from_feedback(base.store)  # type: ignore[union-attr]
        if not liked:
            raise ConfigError(f"{kb} holds no answers rated thumbs-up with evidence that still exists; rate some "
                              "answers, or give --pairs")
        found += liked
        sources["feedback"] = {"kb": str(kb), "pairs": len(liked)}
    train, held = split_held_out(found, held_out, seed=seed)
    if not train:
        raise ConfigError(f"all {len(found)} pairs were held out: give more pairs or a smaller --held-out")
    if base is not None and hard_negatives:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task(f"Mining hard negatives ({mine_with})", total=len({p.query for p in found}))

            def search(queries: list[str], k: int) -> list[list[Any]]:
                return base.search_batch(queries, mode=mine_with, top_k=k)

            train = mine_hard_negatives(train, search, per_query=hard_negatives,
                                        progress=lambda n: progress.advance(task, n))
            held = mine_hard_negatives(held, search, per_query=hard_negatives,
                                       progress=lambda n: progress.advance(task, n))
    words = [f"pilotfish train {command}", "--out", str(output)]
    if pairs is not None:
        words += ["--pairs", str(pairs)]
    if from_eval is not None:
        words += ["--from-eval", from_eval, "--dataset", str(dataset)]
    if from_log:
        words += ["--from-log"]
    if kb is not None:
        words += ["--kb", str(kb), "--mine-with", mine_with]
    words += [str(w) for k, v in options.items() for w in (k, v)]
    card = {"command": " ".join(words[:1] + [shlex.quote(w) for w in words[1:]]),
            "data": {"sources": sources, "kb": str(kb) if kb else None}}
    return train, held, card


def _eval_pairs(run: str, dataset: Path | None, eval_out: Path | None, eval_db: str | None, kb: Any) -> list[Any]:
    """Pairs from evaluation run `run`: its questions with the gold documents of `dataset`."""
    from pilotfish.cli.eval import _find_run, _stores
    from pilotfish.evaluation.datasets import load_dataset
    from pilotfish.training.retrieval_data import document_texts, pairs_from_eval

    if dataset is None:
        raise ConfigError("--from-eval needs --dataset FILE: the dataset that run was scored on, which holds the "
                          "gold document ids")
    store, found = _find_run(_stores(eval_out, eval_db), run)
    data = load_dataset(dataset)
    gold = {item.id: item.gold_doc_ids for item in data.items if item.gold_doc_ids}
    if not gold:
        raise ConfigError(f"{dataset} has no gold document ids to train on (a BEIR folder or a HotpotQA-style file "
                          "has them)")
    wanted = {d for ids in gold.values() for d in ids}
    texts = {d["doc_id"]: f"{d.get('title', '')}\n{d['text']}".strip() for d in data.corpus or []
             if d["doc_id"] in wanted}
    records = store.records(found["id"])
    wanted |= {d for r in records for d in r.get("retrieved", [])}
    if kb is not None:
        texts = document_texts(kb.store, wanted - set(texts)) | texts
    elif not texts:
        raise ConfigError(f"{dataset} has no corpus with the gold documents' text: give --kb, the knowledge base "
                          "the run answered from")
    pairs = pairs_from_eval(records, gold, texts)
    if not pairs:
        raise ConfigError(f"run {run!r} has no question of {dataset} with a gold document whose text was found; "
                          "was it scored on that dataset?")
    return pairs


def _run(train: Any, n_train: int, n_held: int, minutes: float) -> dict[str, Any]:
    """Call `train(progress)` under a progress bar with the time left."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    err.print(f"training on {n_train} pairs for at most {minutes:g} minutes; {n_held} pairs held out to measure "
              "the model before and after", highlight=False)
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("Training", total=1000)
        return train(lambda share: progress.update(task, completed=int(share * 1000)))


def _finish(report: dict[str, Any], output: Path, name: str | None, role: str) -> None:
    """Print the held-out comparison and register the model under `name`."""
    before, after = report["held_out"]["before"], report["held_out"]["after"]
    if after:
        was = f"{before['ndcg@10']:.3f} -> " if before else ""
        mrr = f"{before['mrr@10']:.3f} -> " if before else ""
        measured = (f"held-out nDCG@10 {was}{after['ndcg@10']:.3f}, MRR@10 {mrr}{after['mrr@10']:.3f} on "
                    f"{after['queries']} queries")
    else:
        measured = "nothing held out"
    out.print(f"saved {escape(str(output))}: {report['steps']} steps in {report['minutes']:g} min on "
              f"{report['threads']} threads (stopped by {report['stopped_by']}); {measured}", highlight=False,
              soft_wrap=True)
    if name:
        from pilotfish.models.trained import register_model

        try:
            register_model(name, output, role=role, card={"held_out": report["held_out"], "command": report["command"]})
        except PilotfishError as e:
            fail(f"the model is saved in {output}, but registering it failed: {e}")
        out.print(f"registered as {escape(name)}", highlight=False)
