"""`pilotfish check`: is a claim (or every sentence of an answer) supported by its evidence?

    pilotfish check --pairs pairs.jsonl --json            # lines {"id", "evidence", "claim", "question"?}
    pilotfish check --answer "Paris is in France." --evidence notes.txt
    pilotfish check --answer "It opened in 1889." --evidence "when did the Eiffel Tower open" --kb .pilotfish
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pilotfish.cli.common import KbOpt, _quiet_libraries, err, fail, out
from pilotfish.errors import ConfigError, PilotfishError, QueryError
from pilotfish.jsonl import read_jsonl

LABEL_STYLE = {"supported": "green", "unsupported": "yellow", "contradicted": "red", "unverifiable": "magenta"}


def check(
    pairs: Annotated[Path | None, typer.Option(help='JSONL lines {"id", "evidence", "claim", "question"?}; '
                                                    'evidence is a string or a list of strings.')] = None,
    answer: Annotated[str | None, typer.Option(help="An answer to check sentence by sentence.")] = None,
    evidence: Annotated[str | None, typer.Option(help="With --answer: a text file, or a query to search --kb "
                                                      "with.")] = None,
    question: Annotated[str | None, typer.Option(help="With --answer: the question (reads a short answer as a "
                                                      "claim).")] = None,
    kb: KbOpt = Path(".pilotfish"),
    top_k: Annotated[int, typer.Option("--top-k", help="Passages fetched when --evidence is a KB query.")] = 5,
    model: Annotated[str, typer.Option(help="NLI model: registry name or folder.")] = "nli-small",
    llm: Annotated[str | None, typer.Option(help="LLM judge for the uncertain band (registry name, openai:MODEL, "
                                                 "...); none by default.")] = None,
    band: Annotated[str, typer.Option(help="LOW,HIGH: NLI scores in this range go to --llm.")] = "0.1,0.9",
    thresholds: Annotated[Path | None, typer.Option(help="Calibrated thresholds JSON.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one line per pair with --pairs).")] = False,
    output: Annotated[Path | None, typer.Option("--out", help="Write the JSON lines of --pairs here.")] = None,
    calibrate: Annotated[Path | None, typer.Option(help="With --pairs whose lines carry \"supported\": true/false, "
                                                        "fit the threshold and save it to this JSON file.")] = None,
) -> None:
    """Check claims against evidence with the small NLI model (and an optional LLM judge for unclear cases)."""
    _quiet_libraries()
    try:
        if (pairs is None) == (answer is None):
            raise QueryError("give either --pairs FILE.jsonl or --answer TEXT with --evidence")
        checker = _checker(model, llm, band, thresholds)
        if pairs is not None:
            _check_pairs(checker, pairs, as_json, output, calibrate)
            return
        assert answer is not None
        if not evidence:
            raise QueryError("--answer needs --evidence: a text file, or a query to search --kb with")
        passages = _evidence(evidence, kb, top_k)
        verdict = checker.check(answer, passages, question=question)
    except PilotfishError as e:
        fail(str(e))
    if as_json:
        out.print_json(json.dumps(verdict.to_dict()))
        return
    for claim in verdict.claims:
        where = f" (passage {claim.passage + 1}, {claim.judge})" if claim.passage is not None else ""
        out.print(f"[{LABEL_STYLE[claim.label]}]{claim.label:>12}[/] {claim.supported:.2f}  {claim.claim}{where}",
                  highlight=False, soft_wrap=True)
        if claim.reason:
            out.print(f"{'':>18}[dim]{claim.reason}[/]", highlight=False)
    out.print(f"[bold]answer: [{LABEL_STYLE[verdict.label]}]{verdict.label}[/][/] (weakest claim "
              f"{verdict.supported:.2f}; {verdict.reason})", highlight=False)


def _checker(model: str, llm: str | None, band: str, thresholds: Path | None) -> Any:
    from pilotfish.llms import resolve_llm
    from pilotfish.verification.checker import NLIGroundednessChecker

    try:
        low, high = (float(x) for x in band.split(","))
    except ValueError:
        raise ConfigError(f"--band takes LOW,HIGH probabilities such as 0.1,0.9, got {band!r}") from None
    options: dict[str, Any] = {"model": model, "band": (low, high), "llm": resolve_llm(llm) if llm else None}
    if thresholds is not None:
        return NLIGroundednessChecker.from_thresholds(thresholds, **options)
    return NLIGroundednessChecker(**options)


def _evidence(evidence: str, kb: Path, top_k: int) -> list[Any]:
    """A file's text, else the passages `kb` returns for the query."""
    from pilotfish.knowledge.base import KnowledgeBase

    path = Path(evidence)
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")
        if not text.strip():
            raise QueryError(f"{path} is empty: there is no evidence to check against")
        return [text]
    if not kb.exists():
        raise QueryError(f"--evidence {evidence!r} is not a file, and there is no knowledge base at {kb} to search "
                         "(give --kb DIR)")
    passages = KnowledgeBase.open(kb).search(evidence, top_k=top_k)
    if not passages:
        raise QueryError(f"the knowledge base at {kb} returned nothing for {evidence!r}")
    return passages


def read_pairs(path: Path) -> list[dict[str, Any]]:
    """Check lines: an id, a non-empty claim and evidence (string or list of strings); errors name the line."""
    records = []
    for n, record in read_jsonl(path):
        if not isinstance(record, dict) or not {"id", "evidence", "claim"} <= record.keys():
            raise QueryError(f'{path} line {n}: expected an object with "id", "evidence" and "claim"')
        claim, passages = record["claim"], record["evidence"]
        if not isinstance(claim, str) or not claim.strip():
            raise QueryError(f'{path} line {n}: "claim" must be a non-empty string')
        if isinstance(passages, str):
            passages = [passages]
        if not isinstance(passages, list) or not all(isinstance(p, str) for p in passages):
            raise QueryError(f'{path} line {n}: "evidence" must be a string or a list of strings')
        question = record.get("question")
        if question is not None and not isinstance(question, str):
            raise QueryError(f'{path} line {n}: "question" must be a string')
        gold = record.get("supported")
        if gold is not None and not isinstance(gold, bool):
            raise QueryError(f'{path} line {n}: "supported" must be true or false')
        records.append({"id": record["id"], "claim": claim, "evidence": passages, "question": question,
                        "supported": gold})
    if not records:
        raise QueryError(f"{path} holds no pairs")
    return records


def _check_pairs(checker: Any, path: Path, as_json: bool, output: Path | None, calibrate: Path | None) -> None:
    from rich.progress import track

    records = read_pairs(path)
    if calibrate is not None and any(r["supported"] is None for r in records):
        line = next(i for i, r in enumerate(records, 1) if r["supported"] is None)
        raise QueryError(f'--calibrate needs "supported": true/false on every line; record {line} has none')
    verdicts = []
    for start in track(range(0, len(records), 64), description="checking", console=err, transient=True):
        batch = records[start:start + 64]
        found, _ = checker.check_claims([(r["evidence"], r["claim"], r["question"]) for r in batch])
        verdicts += found
    lines = [json.dumps({"id": r["id"], "label": v.label, "supported": round(v.supported, 4),
                         "scores": {k: v.scores[k] for k in ("entailment", "neutral", "contradiction")
                                    if k in v.scores}, "judge": v.judge}
                        | ({"reason": v.reason} if v.reason else {})) for r, v in zip(records, verdicts)]
    if output is not None:
        output.write_text("\n".join(lines) + "\n", encoding="utf-8")
        err.print(f"wrote {len(lines)} lines to {output}")
    if as_json:
        sys.stdout.write("\n".join(lines) + "\n")
    elif output is None:
        for r, v in zip(records, verdicts):
            out.print(f"[{LABEL_STYLE[v.label]}]{v.label:>12}[/] {v.supported:.2f}  {r['id']}", highlight=False)
    counts = {label: sum(v.label == label for v in verdicts) for label in LABEL_STYLE}
    err.print(", ".join(f"{n} {label}" for label, n in counts.items() if n), highlight=False)
    if calibrate is not None:
        _calibrate(checker, records, verdicts, calibrate)


def _calibrate(checker: Any, records: list[dict[str, Any]], verdicts: list[Any], path: Path) -> None:
    from sklearn.metrics import roc_auc_score

    from pilotfish.verification.checker import calibrate_threshold

    scores, labels = [v.supported for v in verdicts], [bool(r["supported"]) for r in records]
    threshold, balanced = calibrate_threshold(scores, labels)
    auroc = roc_auc_score(labels, scores)
    checker.threshold = threshold
    checker.save_thresholds(path, calibrated_on=len(records), auroc=round(auroc, 4),
                            balanced_accuracy=round(balanced, 4))
    err.print(f"calibrated on {len(records)} pairs: threshold {threshold}, balanced accuracy {balanced:.3f}, "
              f"AUROC {auroc:.3f}; saved to {path}", highlight=False)
