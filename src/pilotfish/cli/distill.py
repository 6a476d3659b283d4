"""`pilotfish distill`: one round of the loop for one small model, promoted only when it wins.

    pilotfish distill nli --kb .pilotfish --name support-nli --teacher qwen2.5-1.5b --data NLI_DIR
    pilotfish eval synth --kb .pilotfish --llm qwen2.5-1.5b -n 200 --out synth.jsonl
    pilotfish distill embedder --kb .pilotfish --name support-embedder --dataset synth.jsonl --reembed
    pilotfish distill reranker --kb .pilotfish --name support-reranker --dataset synth.jsonl

Students are written under KB/models/NAME/<time>/ with `distill-report.json` (before, after, data sizes,
minutes, the decision and why). A promoted student is registered as NAME, which pipelines and commands
use like a packaged model's name (`--model NAME`, `model = "NAME"` in a pipeline file).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated, Any

import typer

from pilotfish.cli.common import _quiet_libraries, err, fail, out
from pilotfish.errors import ConfigError, PilotfishError

COMPONENT_HELP = "nli, embedder or reranker."
FEW_QUESTIONS = 200  # under this many training questions a retrieval student rarely learns anything measurable
DISTRACTORS = 1000  # knowledge-base passages the held-out questions are also ranked against


def distill(
    component: Annotated[str, typer.Argument(help=COMPONENT_HELP)],
    name: Annotated[str, typer.Option("--name", help="The registered name the student competes for (created on "
                                                     "the first promotion).")],
    kb: Annotated[Path, typer.Option("--kb", help="Your knowledge base: the passages and questions come from it.",
                                     envvar="PILOTFISH_KB")] = Path(".pilotfish"),
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL of --kb (default: SQLite inside it).",
                                           envvar="PILOTFISH_DB")] = None,
    teacher: Annotated[str | None, typer.Option(help="nli: the LLM whose yes/no judgements are distilled "
                                                     "(e.g. qwen2.5-1.5b).")] = None,
    passages: Annotated[int, typer.Option(help="nli: passages to make claims from.")] = 300,
    data: Annotated[Path | None, typer.Option(help="nli: folder of labelled NLI files, 2,000 pairs of which are "
                                                   "mixed in so the model does not forget.")] = None,
    dataset: Annotated[Path | None, typer.Option(help="embedder/reranker: questions with gold documents, e.g. "
                                                      "from `pilotfish eval synth` over --kb.")] = None,
    pairs: Annotated[Path | None, typer.Option(help="embedder/reranker: JSONL of query/positive/negatives lines.")]
    = None,
    from_log: Annotated[bool, typer.Option("--from-log", help="embedder/reranker: also the answers rated thumbs-up "
                                                              "in --kb's feedback.")] = False,
    hard_negatives: Annotated[int, typer.Option(help="embedder/reranker: BM25 negatives mined from --kb per "
                                                     "question.")] = 3,
    held_out: Annotated[float, typer.Option(help="Share of the data (documents for nli, questions otherwise) "
                                                 "held back to decide on.")] = 0.2,
    margin: Annotated[float, typer.Option(help="How much the student must beat the current model by on the "
                                               "held-back data (AUROC for nli, nDCG@10 otherwise).")] = 0.01,
    minutes: Annotated[float, typer.Option(help="Training time limit.")] = 20.0,
    label_minutes: Annotated[float | None, typer.Option(help="nli: stop teacher labelling after this long and "
                                                             "train on what is labelled.")] = None,
    models_dir: Annotated[Path | None, typer.Option(help="Where students go (default: KB/models).")] = None,
    reembed: Annotated[bool, typer.Option("--reembed", help="embedder: when the student is promoted, re-embed "
                                                            "--kb with it.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the samples and splits.")] = 0,
    threads: Annotated[int | None, typer.Option(help="Torch threads (default: the free cores).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Train a student on the large model's work, measure it against the current model on held-back data, and
    promote it (re-point --name) only when it wins by --margin."""
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.models.trained import check_name
    from pilotfish.training.distill import COMPONENTS

    _quiet_libraries()
    try:
        if component not in COMPONENTS:
            raise ConfigError(f"unknown component {component!r}; distil one of {', '.join(COMPONENTS)}")
        if margin < 0:
            raise ConfigError(f"--margin must be 0 or more, got {margin:g}")
        check_name(name)  # before any work: a round that wins must be able to register
        base = KnowledgeBase.open(kb, db=db)
        root = models_dir or kb / "models"
        if component == "nli":
            result = _nli_round(base, name, root, teacher, passages, data, held_out, margin, minutes, label_minutes,
                                seed, threads, device)
        else:
            result = _retrieval_round(component, base, name, root, dataset, pairs, from_log, hard_negatives,
                                      held_out, margin, minutes, seed, threads, device)
        decision = result["decision"]
        if component == "embedder" and reembed and decision["promoted"]:
            from pilotfish.knowledge.reembed import reembed as reembed_kb

            with out.status(f"re-embedding {kb} with {name}"):
                reembed_kb(base, name)
    except PilotfishError as e:
        fail(str(e))
    verdict = "[green]promoted[/]" if decision["promoted"] else "[yellow]not promoted[/]"
    out.print(f"{component} student {decision['student']}: {verdict} - {decision['why']}", soft_wrap=True)
    if decision["promoted"]:
        out.print(f"{name} now points to it" + (f"; {kb} was re-embedded with it" if component == "embedder" and
                                                reembed else ""), highlight=False)
    out.print(f"report: {Path(decision['student']) / 'distill-report.json'}", highlight=False)
    if not decision["promoted"]:
        raise typer.Exit(2)  # a script can tell "kept the current model" from success and from an error


def _nli_round(kb: Any, name: str, root: Path, teacher: str | None, passages: int, data: Path | None,
               held_out: float, margin: float, minutes: float, label_minutes: float | None, seed: int,
               threads: int | None, device: str) -> dict[str, Any]:
    from pilotfish.cli.train import nli_mix, stage_progress
    from pilotfish.llms import resolve_llm
    from pilotfish.training.distill import PromotionGate, distill_nli_round

    if teacher is None:
        raise ConfigError("distilling nli needs --teacher LLM (e.g. qwen2.5-1.5b), whose judgements it learns")
    mixed = nli_mix(data, seed, 2000)
    rows = kb.corpus().rows
    llm = resolve_llm(teacher)
    with stage_progress() as tick:
        return distill_nli_round(rows, llm, name=name, root=root, gate=PromotionGate("auroc", margin),
                                 passages=passages, mix=mixed, held_out=held_out, minutes=minutes, seed=seed,
                                 threads=threads, device=device, label_minutes=label_minutes, progress=tick)


def _retrieval_round(component: str, kb: Any, name: str, root: Path, dataset: Path | None, pairs: Path | None,
                     from_log: bool, hard_negatives: int, held_out: float, margin: float, minutes: float, seed: int,
                     threads: int | None, device: str) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from pilotfish.training.distill import PromotionGate, distill_retrieval_round
    from pilotfish.training.retrieval_data import mine_hard_negatives, pairs_from_feedback, read_pairs, split_held_out

    found: list[Any] = []
    sources: dict[str, int] = {}
    if dataset is not None:
        found += _dataset_pairs(dataset, kb)
        sources["dataset"] = len(found)
    if pairs is not None:
        read = read_pairs(pairs)
        found += read
        sources["pairs"] = len(read)
    if from_log:
        liked = pairs_from_feedback(kb.store)
        found += liked
        sources["feedback"] = len(liked)
    if not found:
        raise ConfigError(f"no training data for the {component}: give --dataset (e.g. from `pilotfish eval synth "
                          "--kb KB`), --pairs FILE.jsonl or --from-log")
    train, held = split_held_out(found, held_out, seed=seed)
    questions = len({p.query for p in train})
    if questions < FEW_QUESTIONS:
        err.print(f"[yellow]note[/] only {questions} training questions: a student seldom moves from so few (the "
                  f"packaged model usually stays); aim for {FEW_QUESTIONS} or more (`pilotfish eval synth -n`)",
                  highlight=False)
    if hard_negatives:
        with out.status(f"mining {hard_negatives} hard negatives per question from {kb.directory}"):
            def search(queries: list[str], k: int) -> list[list[Any]]:
                return kb.search_batch(queries, mode="bm25", top_k=k)

            train = mine_hard_negatives(train, search, per_query=hard_negatives)
            held = mine_hard_negatives(held, search, per_query=hard_negatives)
    distractors = _distractors(kb, held, seed)
    default = kb.settings["embedding_model"] if component == "embedder" else None
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(f"Training the {component} student", total=1.0)
        return distill_retrieval_round(
            component, train, held, name=name, root=root, gate=PromotionGate("ndcg@10", margin), minutes=minutes,
            threads=threads, device=device, default=default, distractors=distractors,
            card={"sources": sources, "held_out_distractors": len(distractors)},
            progress=lambda share: progress.update(task, completed=share))


def _distractors(kb: Any, held: list[Any], seed: int, n: int = DISTRACTORS) -> list[str]:
    """`n` passages of the knowledge base, none part of a held-out positive: the held-out questions are ranked
    against them too, as in a real search, instead of against a handful of held-out texts alone."""
    from pilotfish.training.retrieval_data import same_text

    rows = list(kb.corpus().rows)
    random.Random(seed).shuffle(rows)
    positives = {p.positive for p in held}
    return [r.text for r in rows[: n * 2] if not any(same_text(r.text, p) for p in positives)][:n]


def _dataset_pairs(dataset: Path, kb: Any) -> list[Any]:
    """Each question of an evaluation set with the text of each of its gold documents in --kb."""
    from pilotfish.evaluation.datasets import load_dataset
    from pilotfish.training.retrieval_data import document_texts, pairs_from_eval

    data = load_dataset(dataset)
    gold = {item.id: item.gold_doc_ids for item in data.items if item.gold_doc_ids}
    if not gold:
        raise ConfigError(f"{dataset} has no gold document ids; `pilotfish eval synth` writes them, as do BEIR "
                          "folders and HotpotQA-style files")
    texts = document_texts(kb.store, {d for ids in gold.values() for d in ids})
    found = pairs_from_eval([{"id": item.id, "question": item.question} for item in data.items], gold, texts)
    if not found:
        raise ConfigError(f"none of the gold documents of {dataset} is in {kb.directory}: was the set made from "
                          "this knowledge base?")
    return found
