"""`pilotfish train nli`: reproduce the NLI cross-encoder from labelled pairs and synthetic pairs, or distil
an LLM teacher's judgements on your own documents into it; `pilotfish train paths`: the graph's path scorer
from questions and their answers.

    pilotfish train nli --data NLI_DIR --corpus paragraphs.jsonl --out nli-model    # 70 minutes on 2 cores
    pilotfish train nli --teacher qwen2.5-1.5b --documents .pilotfish --out support-nli --name support-nli
    pilotfish train paths --questions qa.jsonl --kb .pilotfish --out path-scorer
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pilotfish.cli.common import _quiet_libraries, err, fail, out
from pilotfish.errors import ConfigError, PilotfishError
from pilotfish.jsonl import read_jsonl

train_app = typer.Typer(help="Train pilotfish's own small models.", no_args_is_help=True)

TRAIN_FILES = ("snli_dev.jsonl.gz", "snli_test.jsonl.gz", "sick_train.jsonl.gz", "sick_trial.jsonl.gz",
               "sick_test.jsonl.gz", "conjnli_advtrain.jsonl.gz", "conjnli_dev.jsonl.gz")
# In-domain MNLI pairs (train slice and dev-mismatched genres) are few and worth the most, so they are repeated.
MNLI_FILES = ("taxinli_mnli_train_part.jsonl.gz",)
SELECT_FILE = "mnli_dev_mismatched_taxinli_subset.jsonl.gz"  # `select` pairs pick the checkpoint, the rest train
EVAL_FILE = "mnli_dev_matched.jsonl.gz"


@train_app.command("nli")
def train_nli_command(
    output: Annotated[Path, typer.Option("--out", help="Folder for the trained model.")],
    data: Annotated[Path | None, typer.Option(help="Folder with the labelled NLI files (premise, hypothesis, "
                                                   "label); with --teacher, a sample of them is mixed in.")] = None,
    teacher: Annotated[str | None, typer.Option(help="Distil this LLM's yes/no judgements on --documents (e.g. "
                                                     "qwen2.5-1.5b; it must give token probabilities) into the "
                                                     "NLI model.")] = None,
    documents: Annotated[Path | None, typer.Option(help="With --teacher: the knowledge base whose passages the "
                                                        "claims are made from.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL of --documents (default: SQLite inside "
                                                        "it).", envvar="PILOTFISH_DB")] = None,
    passages: Annotated[int, typer.Option(help="With --teacher: passages to make claims from (about 3 claims "
                                               "each, a few seconds of the teacher per claim).")] = 300,
    labels: Annotated[Path | None, typer.Option(help="With --teacher: JSONL cache of teacher labels, reused and "
                                                     "extended (default OUT/teacher-labels.jsonl).")] = None,
    mix: Annotated[int, typer.Option(help="With --teacher and --data: labelled NLI pairs mixed into training.")]
    = 2000,
    label_minutes: Annotated[float | None, typer.Option(help="With --teacher: stop labelling after this long and "
                                                             "train on the claims labelled so far (cached ones "
                                                             "included).")] = None,
    name: Annotated[str | None, typer.Option(help="Register the model under this name (usable as --model, "
                                                  "and in pipeline files).")] = None,
    corpus: Annotated[list[Path] | None, typer.Option(help="JSONL documents ({\"text\": ...}) to synthesise "
                                                           "pairs from; repeatable.")] = None,
    per_document: Annotated[int, typer.Option(help="Synthetic pairs per label per document.")] = 1,
    minutes: Annotated[float | None, typer.Option(help="Stop training after this long (default 70, or 20 with "
                                                       "--teacher).")] = None,
    epochs: Annotated[int, typer.Option(help="At most this many passes over the data.")] = 2,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = 32,
    select: Annotated[int, typer.Option(help="MNLI mismatched pairs held out for picking the best checkpoint; "
                                             "the others train.")] = 800,
    mnli_repeat: Annotated[int, typer.Option(help="Times each in-domain MNLI pair is seen per epoch.")] = 2,
    max_length: Annotated[int, typer.Option(help="Token window of a pair in training.")] = 128,
    base: Annotated[str | None, typer.Option(help="Encoder to start from: minilm-l6, ms-marco-l12 or bge-small "
                                                  "(int8 ONNX models are dequantised first); with --teacher, the "
                                                  "NLI model to continue (default nli-small).")] = None,
    eval_every: Annotated[int, typer.Option(help="Steps between held-out evaluations.")] = 300,
    learning_rate: Annotated[float | None, typer.Option(help="Peak learning rate; it decays linearly to zero by "
                                                             "the time or epoch limit (default 5e-5, or 2e-5 "
                                                             "with --teacher).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the shuffle, the synthetic pairs and a new "
                                           "classification head.")] = 0,
    threads: Annotated[int | None, typer.Option(help="Torch threads (default: the free cores).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Fine-tune an encoder as a 3-way NLI cross-encoder, keep the best checkpoint, export int8 ONNX, score it;
    with --teacher, distil an LLM's judgements on your documents into the NLI model instead."""
    from pilotfish.text import split_sentences
    from pilotfish.training.nli_data import load_pairs, synthesize
    from pilotfish.training.nli_train import NLITrainingConfig, export_onnx, resolve_base, train_nli

    _quiet_libraries()
    if teacher is not None or documents is not None:
        _distill_nli_command(output, data, teacher, documents, db, passages, labels, mix, label_minutes, name,
                             minutes if minutes is not None else 20.0, epochs, batch_size, base or "nli-small",
                             2e-5 if learning_rate is None else learning_rate, seed, threads, device)
        return
    minutes, base, learning_rate = minutes if minutes is not None else 70.0, base or "ms-marco-l12", \
        5e-5 if learning_rate is None else learning_rate
    try:
        if data is None:
            raise ConfigError("give --data, the folder of labelled NLI files, or --teacher LLM with --documents KB "
                              "to distil a teacher on your own documents")
        missing = [f for f in (*TRAIN_FILES, *MNLI_FILES, SELECT_FILE, EVAL_FILE) if not (data / f).is_file()]
        if missing:
            raise ConfigError(f"{data} lacks {', '.join(missing)}: give --data the folder of labelled NLI files")
        if not learning_rate > 0:
            raise ConfigError(f"--learning-rate must be positive, got {learning_rate:g}: try 5e-5 from a base "
                              "encoder, or 2e-5 to continue from a trained NLI model")
        resolve_base(base)  # a wrong or missing base fails now, not after the data is loaded
        pairs = load_pairs([data / f for f in TRAIN_FILES])
        mismatched = load_pairs([data / SELECT_FILE])
        random.Random(0).shuffle(mismatched)
        held_out, in_domain = mismatched[:select], mismatched[select:] + load_pairs([data / f for f in MNLI_FILES])
        documents = [split_sentences(text) for path in corpus or [] for text in _corpus_texts(path)]
        synthetic = synthesize(documents, per_document=per_document, seed=seed) if documents else []
        config = NLITrainingConfig(out=str(output), base=base, eval_every=eval_every, minutes=minutes,
                                   epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                   threads=threads, device=device, max_length=max_length,
                                   extra={"mnli_repeat": mnli_repeat, "per_document": per_document,
                                          "select": select})
        out.print(f"training on {len(pairs)} labelled + {len(in_domain)} MNLI x{mnli_repeat} + {len(synthetic)} "
                  f"synthetic pairs for at most {minutes:g} minutes; checkpoints picked on {len(held_out)} "
                  "MNLI mismatched pairs")
        report = train_nli(pairs + in_domain * max(1, mnli_repeat) + synthetic, held_out, config,
                           progress=lambda p: out.print(f"  step {p['step']}: held-out accuracy "
                                                        f"{p['held_out_accuracy']:.3f}, {p['minutes']} min"))
        model_file = export_onnx(output)
        score = _mnli_accuracy(output, load_pairs([data / EVAL_FILE]))
    except PilotfishError as e:
        fail(str(e))
    report["mnli_dev_matched_accuracy"] = round(score, 4)
    (output / "training.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    out.print(f"saved {model_file} ({model_file.stat().st_size / 1e6:.1f} MB); MNLI dev-matched accuracy "
              f"{score:.3f}; {report['pairs_per_second']} pairs/s in training on "
              f"{report['threads']} threads", highlight=False)


def _distill_nli_command(output: Path, data: Path | None, teacher: str | None, documents: Path | None,
                         db: str | None, passages: int, labels: Path | None, mix: int, label_minutes: float | None,
                         name: str | None,
                         minutes: float, epochs: int, batch_size: int, base: str, learning_rate: float, seed: int,
                         threads: int | None, device: str) -> None:
    """`train nli --teacher`: label claims on the knowledge base's passages, distil, measure, register."""
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.llms import resolve_llm
    from pilotfish.models.trained import register_model
    from pilotfish.training.nli_distill import distill_nli

    try:
        if teacher is None or documents is None:
            raise ConfigError("distillation needs both --teacher LLM (e.g. qwen2.5-1.5b) and --documents KB")
        if passages < 10:
            raise ConfigError(f"--passages must be at least 10, got {passages}")
        if not learning_rate > 0:
            raise ConfigError(f"--learning-rate must be positive, got {learning_rate:g}: try 2e-5")
        mixed = nli_mix(data, seed, mix)
        rows = KnowledgeBase.open(documents, db=db).corpus().rows
        llm = resolve_llm(teacher)
        with stage_progress() as tick:
            report = distill_nli(rows, llm, out=output, passages=passages, base=base, mix=mixed, minutes=minutes,
                                 epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                 labels=labels, threads=threads, device=device, label_minutes=label_minutes,
                                 progress=tick)
        if name:
            register_model(name, output, role="nli", card=report)
    except PilotfishError as e:
        fail(str(e))
    out.print(f"saved {output}: {report['claims_labelled']} claims labelled by {teacher} "
              f"({report['label_minutes']} min), {report['claims_train']} trained with {report['mixed_nli_pairs']} "
              f"NLI pairs ({report['train_minutes']} min); AUROC against the teacher on "
              f"{report['claims_held_out']} held-out claims: {report['before']:.3f} ({base}) -> "
              f"{report['after']:.3f}", highlight=False, soft_wrap=True)
    if name:
        out.print(f"registered as {name}: use `pilotfish check --model {name}` or model = \"{name}\" in a "
                  "pipeline file's verify table", highlight=False)


def nli_mix(data: Path | None, seed: int, n: int) -> list:
    """`n` labelled NLI pairs from --data, shuffled by `seed`, to mix into distillation; none without --data."""
    from pilotfish.training.nli_data import load_pairs

    if data is None:
        err.print("no --data: training on the teacher's labels alone; the model may forget general NLI "
                  "(give --data NLI_DIR to mix labelled pairs in)")
        return []
    files = [data / f for f in (*TRAIN_FILES, *MNLI_FILES)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"{data} lacks {', '.join(missing)}: give --data the folder of labelled NLI files")
    pairs = load_pairs(files)
    random.Random(seed).shuffle(pairs)
    return pairs[:n]


@contextmanager
def stage_progress() -> Iterator[Callable[[str, float | None, float], None]]:
    """A progress display with one bar per stage; yields `tick(stage, total, advance)`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def tick(stage: str, total: float | None, n: float) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.advance(tasks[stage], n)

        yield tick


def _mnli_accuracy(folder: Path, pairs: list) -> float:
    """Accuracy of the exported int8 model, the one that ships."""
    from pilotfish.models.nli import NLIModel

    scores = NLIModel(str(folder), max_length=160, batch_size=64).scores([(p.premise, p.hypothesis) for p in pairs])
    return sum(s.label == p.label for s, p in zip(scores, pairs)) / max(1, len(pairs))


def _corpus_texts(path: Path) -> list[str]:
    """The "text" of each line of a corpus JSONL(.gz) file (BEIR layout; a line without one counts as empty)."""
    if not path.is_file():
        raise ConfigError(f"no corpus file at {path}")
    texts = []
    for n, record in read_jsonl(path, error=ConfigError):
        text = record.get("text", "") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise ConfigError(f'{path} line {n}: expected an object whose "text" is a string')
        texts.append(text)
    return texts


@train_app.command("paths")
def train_paths_command(
    questions: Annotated[Path, typer.Option(help='JSONL of {"question", "answers"} lines (answers: a list of names, '
                                                 'or one string with "|" between names).')],
    kb: Annotated[Path, typer.Option("--kb", help="Knowledge base whose graph the questions are about.",
                                     envvar="PILOTFISH_KB")],
    output: Annotated[Path, typer.Option("--out", help="Folder for the trained path scorer.")],
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite inside --kb).",
                                           envvar="PILOTFISH_DB")] = None,
    hops: Annotated[int, typer.Option(help="Longest relation path.")] = 3,
    held_out: Annotated[float, typer.Option(help="Share of questions kept back to measure the scorer.")] = 0.1,
    min_f1: Annotated[float, typer.Option(help="Least F1 between a path's end entities and the answers for the "
                                               "question to train.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
) -> None:
    """Train the path scorer of the graph nodes: each question's path is the one whose ends match its answers."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pilotfish.cli.kb import open_graph
    from pilotfish.graphs.scorers import TrainedPathScorer
    from pilotfish.training.paths import evaluate_scorer, label_questions

    _quiet_libraries()
    started = time.perf_counter()
    try:
        if not 0 <= held_out < 1:
            raise ConfigError(f"--held-out must be at least 0 and under 1, got {held_out:g}")
        records = _path_questions(questions)
        graph = open_graph(kb, db)
        random.Random(seed).shuffle(records)
        cut = int(len(records) * held_out)
        test, train = records[:cut], records[cut:]
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("Finding each question's path", total=len(train))
            labelled = label_questions(train, graph, hops=hops, min_f1=min_f1,
                                       progress=lambda n: progress.advance(task, n))
            task = progress.add_task("Training on the questions", total=len(labelled.examples))
            scorer = TrainedPathScorer.fit([q for q, _ in labelled.examples], [p for _, p in labelled.examples],
                                           progress=lambda n: progress.advance(task, n))
            task = progress.add_task("Measuring on the held-out questions", total=len(test))
            measured = evaluate_scorer(scorer, test, graph, hops=hops, progress=lambda n: progress.advance(task, n))
    except PilotfishError as e:
        fail(str(e))
    scorer.card |= {"command": f"pilotfish train paths --questions {questions.name} --hops {hops} "
                               f"--held-out {held_out:g} --min-f1 {min_f1:g} --seed {seed}",
                    "train_questions": len(train), "labelled": len(labelled.examples),
                    "skipped": len(labelled.skipped), "held_out": measured,
                    "minutes": round((time.perf_counter() - started) / 60, 2)}
    scorer.save(output)
    hits = f"hits@1 {measured['hits_at_1']:.3f} on {measured['questions']} held-out questions" if test else \
        "no questions held out"
    out.print(f"saved {output}: {scorer.card['classes']} paths from {scorer.card['questions']} questions "
              f"({len(labelled.skipped)} without a path to their answers and {scorer.card['dropped']} whose path "
              f"only they take skipped); {hits}", highlight=False)
    out.print(escape(f'use it with [graph] scorer = "{output}" in a pipeline file, or `pilotfish kb link --scorer '
                     f'{output}`'), highlight=False, soft_wrap=True)


def _path_questions(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, question, answers) of a training file; a bad line stops with its number."""
    if not path.is_file():
        raise ConfigError(f"no questions file at {path}")
    records = []
    for n, record in read_jsonl(path, error=ConfigError):
        answers = record.get("answers") if isinstance(record, dict) else None
        if isinstance(answers, str):
            answers = answers.split("|")
        question = record.get("question") if isinstance(record, dict) else None
        if not isinstance(question, str) or not question.strip() or not isinstance(answers, list) or not answers \
                or not all(isinstance(a, str) for a in answers):
            raise ConfigError(f'{path} line {n}: expected {{"question": "...", "answers": ["name", ...]}}')
        records.append((n, question, answers))
    if not records:
        raise ConfigError(f"{path} holds no questions")
    return records
