"""`pilotfish route`: train a router on your own (prompt, per-model score) data and evaluate it.

    pilotfish route train --data scores.jsonl --models small,large --out router/ --costs small=0.2,large=3
    pilotfish route eval --router router/ --data heldout.jsonl --plot curve.png
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pilotfish.cli.common import _quiet_libraries, fail, out
from pilotfish.errors import ConfigError, PilotfishError

route_app = typer.Typer(help="Route prompts between models: train a router, evaluate its deferral curve.",
                        no_args_is_help=True)

KINDS = ("knn", "classifier")
COSTS_HELP = escape("MODEL=PRICE,... (default: pilotfish.toml [prices]).")  # help is rich markup: keep [prices]


@route_app.command("train")
def route_train(
    data: Annotated[Path, typer.Option(help='JSONL of {"prompt": ..., "scores": {"MODEL": 0.0-1.0}}.')],
    models: Annotated[str, typer.Option(help="Models to route between, comma-separated (any order).")],
    output: Annotated[Path, typer.Option("--out", help="Folder to save the router in.")],
    kind: Annotated[str, typer.Option(help="knn or classifier.")] = "classifier",
    costs: Annotated[str | None, typer.Option(help=COSTS_HELP)] = None,
    target_quality: Annotated[float | None, typer.Option(help="Calibrate to this share of the best model's score "
                                                              "(default 0.95).")] = None,
    budget: Annotated[float | None, typer.Option(help="Calibrate to this mean cost per prompt instead.")] = None,
    embedder: Annotated[str, typer.Option(help="Embedding model for prompts.")] = "minilm-l6",
    k: Annotated[int, typer.Option("-k", help="Neighbours for the knn router.")] = 60,
) -> None:
    """Train a router, calibrate its cost knob on out-of-fold predictions, and save it."""
    from pilotfish.routing.data import load_routing_data

    _quiet_libraries()
    try:
        _check_kind(kind)
        names = _model_list(models)
        prices = _costs(names, costs)
        table = load_routing_data(data, sorted(names, key=lambda m: prices[m]))
        router = _fit_router(table, kind=kind, prices=prices, embedder=embedder, k=k, target_quality=target_quality,
                             budget=budget)
        router.save(output)
    except PilotfishError as e:
        fail(str(e))
    _print_calibration(router, kind, output)


@route_app.command("eval")
def route_eval(
    router_dir: Annotated[Path, typer.Option("--router", help="Folder of a trained router.")],
    data: Annotated[Path, typer.Option(help="Labelled JSONL to evaluate on (held out from training).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Draw the deferral curve into this PNG.")] = None,
) -> None:
    """The deferral curve and RouteLLM's APGR, CPT(50%), CPT(80%), beside a random router."""
    from pilotfish.routing.data import load_routing_data
    from pilotfish.routing.load import load_router
    from pilotfish.routing.metrics import deferral_curve, random_predictions, summarise

    _quiet_libraries()
    try:
        router = load_router(router_dir)
        table = load_routing_data(data, router.models, min_examples=2)
        with out.status(f"routing {len(table.prompts)} prompts"):
            predicted = router.predict(table.prompts)
    except PilotfishError as e:
        fail(str(e))
    curves = {"router": deferral_curve(predicted, table.scores, router.costs),
              "random": deferral_curve(random_predictions(*table.scores.shape), table.scores, router.costs)}
    summary = {name: summarise(curve, table.scores, router.costs) for name, curve in curves.items()}
    chosen = router.route_batch(table.prompts)
    at_knob = {"share": {m: chosen.count(m) / len(chosen) for m in router.models},
               "quality": float(table.scores[range(len(chosen)), [router.models.index(m) for m in chosen]].mean())}
    if plot is not None:
        _plot(curves, summary["router"], router, plot)
    if as_json:
        print(json.dumps({"models": router.models, "costs": router.costs, "examples": len(table.prompts),
                          "summary": summary, "at_calibrated_knob": at_knob,
                          "curve": [p.__dict__ for p in curves["router"]]}, indent=2))
        return
    _print_eval(summary, curves["router"], at_knob, router)
    if plot is not None:
        out.print(f"deferral curve drawn to {plot}")


def _print_eval(summary: dict[str, dict[str, float]], curve: list[Any], at_knob: dict[str, Any], router: Any) -> None:
    strongest = router.models[-1]
    table = Table(title=f"deferral curve: quality against share of calls to {strongest}")
    for column in ("share to " + strongest, "normalised cost", "quality"):
        table.add_column(column, justify="right")
    for target in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):  # a readable subset of the curve
        point = min(curve, key=lambda p: abs(p.normalised_cost - target))
        table.add_row(f"{point.share_strongest:.0%}", f"{point.normalised_cost:.2f}", f"{point.quality:.3f}")
    out.print(table)
    metrics = Table(title="summary (RouteLLM metrics)")
    for column in ("router", "APGR", "CPT(50%)", "CPT(80%)"):
        metrics.add_column(column, justify="right")
    for name, s in summary.items():
        metrics.add_row(name, f"{s['apgr']:.3f}", f"{s['cpt50']:.1%}", f"{s['cpt80']:.1%}")
    out.print(metrics)
    s = summary["router"]
    shares = ", ".join(f"{m} {v:.0%}" for m, v in at_knob["share"].items())
    out.print(f"single models: {router.models[0]} {s['quality_cheapest']:.3f}, {strongest} "
              f"{s['quality_strongest']:.3f}, oracle {s['quality_oracle']:.3f}; at the calibrated knob: quality "
              f"{at_knob['quality']:.3f} with {shares}", highlight=False, soft_wrap=True)


def _plot(curves: dict[str, list[Any]], summary: dict[str, float], router: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        ax.plot([p.normalised_cost * 100 for p in curve], [p.quality for p in curve],
                label=name, linestyle="-" if name == "router" else ":")
    ax.axhline(summary["quality_cheapest"], color="grey", linestyle="--", label=f"{router.models[0]} only")
    ax.axhline(summary["quality_strongest"], color="red", linestyle="--", label=f"{router.models[-1]} only")
    ax.set_xlabel("normalised cost (%); with two models, share of calls to the strongest")
    ax.set_ylabel("quality")
    ax.set_title(f"APGR {summary['apgr']:.3f}, CPT(50%) {summary['cpt50']:.0%}, CPT(80%) {summary['cpt80']:.0%}")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown router kind {kind!r}: use knn or classifier")


def _fit_router(table: Any, *, kind: str, prices: dict[str, float], embedder: str, k: int,
                target_quality: float | None, budget: float | None) -> Any:
    """A `kind` router over `table`'s models, ordered by cost (routers keep them so), fitted and calibrated."""
    from pilotfish.routing.data import RoutingData

    ordered = sorted(table.models, key=lambda m: prices[m])
    if ordered != list(table.models):
        columns = [table.models.index(m) for m in ordered]
        table = RoutingData(table.prompts, table.scores[:, columns], ordered)
    router = _new_router(kind, ordered, [prices[m] for m in ordered], embedder, k)
    with out.status(f"embedding {len(table.prompts)} prompts and fitting the {kind} router"):
        router.fit(table, target_quality=target_quality, budget=budget)
    return router


def _print_calibration(router: Any, kind: str, output: Path) -> None:
    """What `route train` prints of a saved router: its models and how its cost knob was calibrated."""
    c, ordered = router.calibration, router.models
    goal = (f"target {c['target_quality']:.0%} of the best model's score" if c["target_quality"] is not None
            else f"budget {c['budget']} per prompt")
    out.print(f"saved {kind} router for {', '.join(ordered)} to {output}", markup=False, highlight=False,
              soft_wrap=True)
    out.print(f"calibrated on {c['examples']} examples ({goal}): quality {c['quality']:.3f} against "
              f"{c['quality_of_best_model']:.3f} for the best model, {c['share_strongest']:.0%} of prompts to "
              f"{ordered[-1]}, mean cost {c['mean_cost']:g}" + ("" if c["met"] else " - target NOT reachable"),
              highlight=False, soft_wrap=True)


def _model_list(models: str) -> list[str]:
    names = [m.strip() for m in models.split(",") if m.strip()]
    if len(names) < 2:
        raise ConfigError(f"--models needs at least two comma-separated names, got {models!r}")
    return names


def _costs(models: list[str], spec: str | None) -> dict[str, float]:
    """Per-model cost from `a=0.2,b=3`, else from pilotfish.toml's [prices."MODEL"] (mean of in and out)."""
    from pilotfish.config import load_settings
    from pilotfish.llms import _prices

    prices: dict[str, float] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        try:
            prices[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--costs: {part!r} is not MODEL=PRICE") from None
        if not sep:
            raise ConfigError(f"--costs: {part!r} is not MODEL=PRICE")
    stray = [m for m in prices if m not in models]
    if stray:
        raise ConfigError(f"--costs names {', '.join(stray)}, which --models does not list")
    settings = load_settings()
    for m in models:
        listed = _prices(settings, m) if m not in prices else {}
        if listed:
            prices[m] = (listed["price_per_mtok_in"] + listed["price_per_mtok_out"]) / 2
    missing = [m for m in models if m not in prices]
    if missing:
        raise ConfigError(f"no cost for model {', '.join(map(repr, missing))}: give --costs "
                          f"{missing[0]}=PRICE or a [prices.\"{missing[0]}\"] table in pilotfish.toml")
    return prices


def _new_router(kind: str, models: list[str], costs: list[float], embedder: str, k: int) -> Any:
    from pilotfish.routing.classifier import ClassifierRouter
    from pilotfish.routing.knn import KNNRouter

    if kind == "knn":
        return KNNRouter(models=models, costs=costs, embedder=embedder, k=k)
    return ClassifierRouter(models=models, costs=costs, embedder=embedder)
