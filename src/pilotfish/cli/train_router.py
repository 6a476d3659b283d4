"""`pilotfish train router`: router data from two evaluation runs, and a router trained on it.

    pilotfish eval run --dataset qa.jsonl --pipeline basic --llm qwen2.5-0.5b --name small
    pilotfish eval run --dataset qa.jsonl --pipeline basic --llm qwen2.5-1.5b --name large
    pilotfish train router --from-eval small large --out router/ --costs qwen2.5-0.5b=0.2,qwen2.5-1.5b=1

The runs are found as `eval compare` finds them (./.pilotfish-eval, the folders `eval run --out` wrote
to, or --eval-out / --db) and paired by item id; `pilotfish.routing.from_eval` builds the data, and the
router is trained, calibrated and saved as `pilotfish route train` does it.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from pilotfish.cli.common import _quiet_libraries, fail, out
from pilotfish.cli.eval import REGISTRY
from pilotfish.cli.route import COSTS_HELP, _check_kind, _costs, _fit_router, _model_list, _print_calibration
from pilotfish.cli.train import train_app
from pilotfish.errors import ConfigError, PilotfishError

CARD = "router-card.json"


@train_app.command("router")
def train_router_command(
    runs: Annotated[tuple[str, str], typer.Option("--from-eval", metavar="RUN_SMALL RUN_LARGE",
                                                  help="Two `eval run` names: the small model's run, then the "
                                                       "large model's, over the same dataset.")],
    output: Annotated[Path, typer.Option("--out", help="Folder to save the router in.")],
    metric: Annotated[str, typer.Option(help="Per-item score to route on: f1, em or any numeric metric in [0, 1] "
                                             "the runs recorded.")] = "f1",
    models: Annotated[str | None, typer.Option(help="Names for the two models, small,large (default: the LLM each "
                                                    "run recorded).")] = None,
    write_data: Annotated[Path | None, typer.Option(help="Also save the router data as JSONL (what `route train "
                                                         "--data` reads).")] = None,
    name: Annotated[str | None, typer.Option(help="Register the router folder under this name.")] = None,
    eval_out: Annotated[Path | None, typer.Option(help="The `eval run --out` folder holding the runs (default: "
                                                       "./.pilotfish-eval and every folder recorded in "
                                                       f"{REGISTRY}).")] = None,
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL of the run store, when `eval run` was "
                                                        "given --db.", envvar="PILOTFISH_DB")] = None,
    kind: Annotated[str, typer.Option(help="knn or classifier.")] = "classifier",
    costs: Annotated[str | None, typer.Option(help=COSTS_HELP)] = None,
    target_quality: Annotated[float | None, typer.Option(help="Calibrate to this share of the best model's score "
                                                              "(default 0.95).")] = None,
    budget: Annotated[float | None, typer.Option(help="Calibrate to this mean cost per prompt instead.")] = None,
    embedder: Annotated[str, typer.Option(help="Embedding model for prompts.")] = "minilm-l6",
    k: Annotated[int, typer.Option("-k", help="Neighbours for the knn router.")] = 60,
) -> None:
    """Turn two evaluation runs (a small and a large model on the same questions) into router data, then train,
    calibrate and save a router on it as `route train` does."""
    from pilotfish.routing.data import save_routing_data
    from pilotfish.routing.from_eval import router_data_from_runs

    _quiet_libraries()
    try:
        _check_kind(kind)
        found = _read_runs(runs, eval_out, db)
        names = _model_names(models, *found)
        (small_run, small), (large_run, large) = found
        prices = _costs(list(names), costs)
        built = router_data_from_runs(small, large, models=names, metric=metric)
        _print_data(built, runs)
        if write_data is not None:
            save_routing_data(built.data, write_data)
            out.print(f"wrote the router data to {write_data}", markup=False, highlight=False, soft_wrap=True)
        router = _fit_router(built.data, kind=kind, prices=prices, embedder=embedder, k=k,
                             target_quality=target_quality, budget=budget)
        router.save(output)
    except PilotfishError as e:
        fail(str(e))
    card = _card((small_run, large_run), names, built, router, kind=kind, costs=costs,
                 target_quality=target_quality, budget=budget, embedder=embedder, k=k)
    (output / CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    _print_calibration(router, kind, output)
    if name is not None:
        from pilotfish.models.trained import register_model

        try:
            register_model(name, output, role="router", card=card)
        except PilotfishError as e:
            fail(f"the router is saved in {output} but not registered: {e}")
        out.print(f"registered it as {name!r}", markup=False, highlight=False)


def _read_runs(runs: tuple[str, str], eval_out: Path | None,
               db: str | None) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(run, records) of the two named runs, found as `eval compare` finds them."""
    from pilotfish.cli.eval import _find_run, _stores

    if runs[0] == runs[1]:
        raise ConfigError(f"--from-eval names run {runs[0]!r} twice: give the small model's run, then the large "
                          "model's")
    stores = _stores(eval_out, db)
    found = [_find_run(stores, run) for run in runs]
    return [(run, store.records(run["id"])) for store, run in found]


def _model_names(models: str | None, *runs: tuple[dict[str, Any], list[dict[str, Any]]]) -> tuple[str, str]:
    """(small, large): --models, else the LLM each run recorded; the two must differ."""
    from pilotfish.routing.from_eval import run_model

    if models is not None:
        names = _model_list(models)
        if len(names) != 2:
            raise ConfigError(f"--models names the two models of --from-eval, small,large; got {len(names)} names")
    else:
        names = []
        for run, records in runs:
            model = run_model(run, records)
            if model is None:
                raise ConfigError(f"run {run['name']!r} does not record which LLM answered it: name the two models "
                                  "with --models SMALL,LARGE (the names the router routes between)")
            names.append(model)
    small, large = names
    if small == large:
        raise ConfigError(f"both runs are named model {small!r}: a router chooses between two different models; "
                          "give runs of two models, or two names with --models SMALL,LARGE")
    return small, large


def _print_data(built: Any, runs: tuple[str, str]) -> None:
    """One line on what the router data holds, one on what was skipped."""
    data, counts = built.data, built.counts()
    means = ", ".join(f"{m} {v:.3f}" for m, v in zip(data.models, data.scores.mean(axis=0).tolist()))
    out.print(f"router data: {counts['used']} questions answered in both {runs[0]!r} ({data.models[0]}) and "
              f"{runs[1]!r} ({data.models[1]}); mean {built.metric}: {means}", markup=False, highlight=False,
              soft_wrap=True)
    reasons = {"only_small": f"only in {runs[0]!r}", "only_large": f"only in {runs[1]!r}",
               "different_question": "with a different question in each run",
               "without_metric": f"without a {built.metric} score in both runs"}
    skipped = [f"{counts[key]} {words}" for key, words in reasons.items() if counts[key]]
    if skipped:
        out.print(f"skipped {', '.join(skipped)}", markup=False, highlight=False, soft_wrap=True)


def _card(runs: tuple[dict[str, Any], dict[str, Any]], names: tuple[str, str], built: Any, router: Any,
          **options: Any) -> dict[str, Any]:
    """What the router was trained from and how: saved beside it as router-card.json and in the registry."""
    command = ["pilotfish", "train", "router", "--from-eval", runs[0]["name"], runs[1]["name"],
               "--metric", built.metric, "--models", ",".join(names)]
    for option, value in options.items():
        if value is not None:
            command += ["-k" if option == "k" else "--" + option.replace("_", "-"), str(value)]
    sides = {side: {"run": run["name"], "model": model, "dataset": run["dataset"], "pipeline": run["pipeline"]}
             for side, run, model in zip(("small", "large"), runs, names)}
    return {"from_eval": sides,
            "metric": built.metric, "items": built.counts(), "models": router.models, "costs": router.costs,
            "kind": router.kind, "command": shlex.join(command), "calibration": router.calibration}
