"""Reports of stored evaluation runs: a markdown summary and one self-contained HTML file with plots.

The summary table (the same in both) gives each main metric's mean with its 95% bootstrap interval.
Plots (matplotlib): main metrics per run with 95% bootstrap confidence intervals, the distribution of
seconds per item, quality against prompt tokens, and the worst items with their answers and evidence.
`build_report(store, names)` reads runs from one `EvalStore`; `render_report` takes (run, records) pairs,
which may come from different stores.

>>> from pilotfish.evaluation.store import EvalStore
>>> store = EvalStore("sqlite://")
>>> for name, said in (("basic", ["Paris", "Lyon"]), ("verified", ["Paris", "the Seine"])):
...     run = store.start_run(name, dataset="toy", pipeline=name, config={})
...     for i, (answer, gold) in enumerate(zip(said, ["Paris", "the Seine"])):
...         store.add_record(run, f"q{i}", {"question": f"Question {i}?", "answer": answer, "gold": [gold],
...                                         "f1": float(answer == gold), "seconds": 0.5})
>>> md, html = build_report(store, ["basic", "verified"])
>>> for line in md.splitlines()[2:6]:
...     print(line)
| run | pipeline | dataset | items | f1 | p50 s | p95 s |
|---|---|---|---|---|---|---|
| basic | basic | toy | 2 | 0.500 [0.000, 1.000] | 0.5 | 0.5 |
| verified | verified | toy | 2 | 1.000 [1.000, 1.000] | 0.5 | 0.5 |
>>> html.startswith("<!doctype html>"), "<td>0.500 [0.000, 1.000]</td>" in html, "<pre>" in html
(True, True, False)
"""

from __future__ import annotations

import base64
import html as html_lib
import io
from typing import Any

import numpy as np

from pilotfish.evaluation.runner import summarise

MAIN = ("f1", "em", "recall@5", "ndcg@5", "mrr@5", "citation_precision", "groundedness")
Run = tuple[dict[str, Any], list[dict[str, Any]]]  # a stored run and its per-item records


def confidence_interval(values: list[float], *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of the mean."""
    if not values:
        return (0.0, 0.0)
    data = np.asarray(values, dtype=float)
    means = data[np.random.default_rng(seed).integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def build_report(store: Any, names: list[str], *, worst: int = 10) -> tuple[str, str]:
    """(markdown, html) for the named runs of `store`."""
    runs = []
    for name in names:
        run = store.run(name)
        runs.append((run, store.records(run["id"])))
    return render_report(runs, worst=worst)


def render_report(runs: list[Run], *, worst: int = 10) -> tuple[str, str]:
    """(markdown, html) for stored runs, each given with its records."""
    names = [run["name"] for run, _ in runs]
    metrics = [m for m in MAIN if any(m in r for _, records in runs for r in records)]
    header, rows = _summary(runs, metrics)
    lines = [f"# Evaluation report: {', '.join(names)}", "", "| " + " | ".join(header) + " |",
             "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    lines += ["", NOTE, ""]
    worst_rows = _worst(runs, worst)
    if worst_rows:
        lines += [f"## The {len(worst_rows)} lowest-F1 items", "", "| run | question | answer | gold |",
                  "|---|---|---|---|"]
        lines += [f"| {w['run']} | {_cell(w['question'])} | {_cell(w['answer'])} | {_cell(' / '.join(w['gold']))} |"
                  for w in worst_rows]
    markdown = "\n".join(lines) + "\n"
    return markdown, _html(names, (header, rows), runs, metrics, worst_rows)


NOTE = "Means with 95% bootstrap intervals."


def _summary(runs: list[Run], metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    """The summary table: its header and one row of cells per run."""
    header = ["run", "pipeline", "dataset", "items", *metrics, "p50 s", "p95 s"]
    rows = []
    for run, records in runs:
        s = summarise(records)
        cells = []
        for m in metrics:
            values = [r[m] for r in records if isinstance(r.get(m), (int, float))]
            low, high = confidence_interval(values)
            cells.append(f"{np.mean(values):.3f} [{low:.3f}, {high:.3f}]" if values else "-")
        rows.append([run["name"], run["pipeline"], run["dataset"], str(s["items"]), *cells,
                     str(s.get("p50_seconds", "-")), str(s.get("p95_seconds", "-"))])
    return header, rows


def _worst(runs: list[Run], count: int) -> list[dict[str, Any]]:
    scored = [(r["f1"], run["name"], r) for run, records in runs for r in records if isinstance(r.get("f1"), float)]
    return [{"run": name, "question": r["question"], "answer": r.get("answer", ""), "gold": r.get("gold", []),
             "f1": f1, "evidence": r.get("evidence", [])} for f1, name, r in sorted(scored, key=lambda t: t[0])[:count]]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")[:160]


def _figure(draw: Any) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(header: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html_lib.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html_lib.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _html(names: list[str], summary: tuple[list[str], list[list[str]]], runs: list[Run], metrics: list[str],
          worst_rows: list[dict[str, Any]]) -> str:
    def bars(ax: Any) -> None:
        width = 0.8 / max(1, len(runs))
        for i, (run, records) in enumerate(runs):
            means, errors = [], [[], []]
            for m in metrics:
                values = [r[m] for r in records if isinstance(r.get(m), (int, float))]
                mean = float(np.mean(values)) if values else 0.0
                low, high = confidence_interval(values)
                means.append(mean)
                errors[0].append(max(0.0, mean - low))
                errors[1].append(max(0.0, high - mean))
            ax.bar(np.arange(len(metrics)) + i * width, means, width, yerr=errors, capsize=3, label=run["name"])
        ax.set_xticks(np.arange(len(metrics)) + width * (len(runs) - 1) / 2, metrics)
        ax.set_xlabel("metric")
        ax.set_ylabel("mean (95% CI)")
        ax.legend(fontsize=7)

    def latency(ax: Any) -> None:
        for run, records in runs:
            ax.hist([r["seconds"] for r in records if "seconds" in r], bins=30, alpha=0.5, label=run["name"])
        ax.set_xlabel("seconds per item")
        ax.set_ylabel("items")
        ax.legend(fontsize=7)

    def cost(ax: Any) -> None:
        for run, records in runs:
            tokens = [r.get("prompt_tokens", 0) + r.get("completion_tokens", 0) for r in records]
            quality = [r["f1"] for r in records if isinstance(r.get("f1"), float)]
            if quality:
                ax.scatter(np.mean(tokens), np.mean(quality), s=60, label=run["name"])
        ax.set_xlabel("mean tokens per item")
        ax.set_ylabel("mean F1")
        ax.legend(fontsize=7)

    images = [(_figure(bars), "main metrics per run, with 95% intervals"), (_figure(latency), "seconds per item")]
    if any("f1" in r for _, records in runs for r in records):
        images.append((_figure(cost), "mean F1 against mean tokens per item"))
    worst_html = "".join(
        f"<tr><td>{html_lib.escape(w['run'])}</td><td>{html_lib.escape(w['question'])}</td>"
        f"<td>{html_lib.escape(w['answer'])}</td><td>{html_lib.escape(' / '.join(w['gold']))}</td>"
        f"<td>{'<br>'.join(html_lib.escape(e) for e in w['evidence'])}</td></tr>" for w in worst_rows)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>pilotfish evaluation</title>"
            "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}td,th{border:1px solid #ccc;"
            "padding:4px;vertical-align:top;font-size:13px}table{border-collapse:collapse;margin:1em 0}"
            "img{max-width:100%}</style></head><body>"
            f"<h1>Evaluation report: {html_lib.escape(', '.join(names))}</h1>"
            f"{_table(*summary)}<p>{NOTE}</p>"
            + "".join(f"<img src='{src}' alt='{html_lib.escape(alt)}'>" for src, alt in images)
            + ("<h2>Lowest-F1 items</h2><table><tr><th>run</th><th>question</th><th>answer</th><th>gold</th>"
               f"<th>evidence</th></tr>{worst_html}</table>" if worst_rows else "")
            + "</body></html>\n")
