"""report.html: one self-contained page (charts embedded as PNG data) about an evaluated
model: against its baselines, the top-k quality of the recommenders when given, by user
activity, its rating distribution, its tuning grid, and the history of every evaluation
found in the store."""

from __future__ import annotations

import base64
import html
import io
import itertools
import textwrap

import matplotlib

matplotlib.use("Agg")  # no display, and no GUI toolkit needed
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

MODEL_COLOUR, BASELINE_COLOUR, OTHER_COLOUR = "#1f77b4", "#aaaaaa", "#ff7f0e"
PEER_COLOURS = ("#7f7f7f", "#c7c7c7")  # the recommenders compared with the served one
DPI = 110
# The history's row labels: longer lines would squeeze its plot off the figure's right edge.
HISTORY_FONT, LABEL_CHARS = 7, 44
# A title line at matplotlib's default title size fits the 6.4-inch-wide figures.
TITLE_CHARS = 60


def model_vs_baselines(metrics: dict) -> Figure:
    """RMSE and MAE of the model and its two baselines; the legend goes below the plot, where
    it covers no bar whatever their heights."""
    names = ["global mean", "user+item bias", "model"]
    sources = [metrics["baselines"]["global_mean"], metrics["baselines"]["bias"], metrics]
    fig, ax = _subplots(6.4, 3.6)
    x = np.arange(len(names))
    for offset, measure, alpha in ((-0.2, "rmse", 1.0), (0.2, "mae", 0.55)):
        values = [s[measure] for s in sources]
        bars = ax.bar(
            x + offset,
            values,
            0.4,
            label=measure.upper(),
            alpha=alpha,
            color=[BASELINE_COLOUR, BASELINE_COLOUR, MODEL_COLOUR],
        )
        ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2)
    ax.set_xticks(x, names)
    ax.set_ylabel("error on the test ratings")
    improvement = metrics["improvement_over_bias"]
    side = "below" if improvement >= 0 else "above"
    ax.set_title(f"Model vs baselines: {abs(improvement):.1%} {side} the bias baseline's RMSE")
    ax.margins(y=0.12)  # room for the tallest bar's label under the title
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    return fig


def ranking_chart(ranking: dict) -> Figure:
    """NDCG, precision, recall and MAP at k of each recommender, grouped by measure, the served
    one in the model's colour and its peers in greys."""
    k, models = ranking["k"], ranking["models"]
    measures = {"ndcg": "NDCG", "precision": "precision", "recall": "recall", "map": "MAP"}
    fig, ax = _subplots(6.4, 4.2)
    x = np.arange(len(measures))
    width = 0.8 / len(models)
    peers = itertools.cycle(PEER_COLOURS)
    for n, (name, model) in enumerate(models.items()):
        served = name == ranking["served"]
        bars = ax.bar(
            x + (n - (len(models) - 1) / 2) * width,
            [model[m] for m in measures],
            width,
            label=model["label"] + (" (served)" if served else ""),
            color=MODEL_COLOUR if served else next(peers),
        )
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(x, [f"{label}@{k}" for label in measures.values()])
    ax.set_ylabel("mean over the ranked users")
    who = f"{ranking['users']:,} test users" + (
        f" (a sample of {ranking['eligible_users']:,})" if ranking["sampled"] else ""
    )
    title = f"Top-{k} quality on {who} (relevant: rated ≥ {ranking['relevant_rating']:g})"
    ax.set_title("\n".join(textwrap.wrap(title, TITLE_CHARS)))
    ax.margins(y=0.12)
    fig.legend(loc="outside lower center", fontsize=8)
    return fig


def error_by_activity(metrics: dict) -> Figure:
    """RMSE per bucket of user activity and for cold items. Each bucket's number of test ratings
    goes under its name, leaving one short label over the bar; the legend sits below the plot."""
    rows = [r for r in metrics["by_activity"] if r["n"]]
    if metrics["cold"]["items"]["n"]:
        rows.append({"ratings_in_train": "cold items", **metrics["cold"]["items"]})
    fig, ax = _subplots(6.4, 3.6)
    names = [f"{r['ratings_in_train']}\nn={r['n']:,}" for r in rows]
    bars = ax.bar(names, [r["rmse"] for r in rows], color=MODEL_COLOUR)
    # On white, so that the line of all rows, which may pass right over a bar's top, never strikes through it.
    ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2, bbox={"color": "white", "pad": 1})
    ax.axhline(metrics["rmse"], color="black", linestyle="--", linewidth=1, label=f"all rows: {metrics['rmse']:.3f}")
    ax.set_xlabel("the user's ratings in the training data (n: test ratings)")
    ax.set_ylabel("RMSE")
    ax.set_title("Error by user activity, and for items never seen in training")
    ax.margins(y=0.15)
    fig.legend(loc="outside lower center", fontsize=8)
    return fig


def rating_distribution(metrics: dict) -> Figure:
    """Counts of actual and predicted ratings per half star; the legend goes below the plot."""
    d = metrics["distribution"]
    x = np.arange(len(d["rating"]))
    fig, ax = _subplots(6.4, 3.6)
    ax.bar(x - 0.2, d["actual"], 0.4, label="actual", color=BASELINE_COLOUR)
    ax.bar(x + 0.2, d["predicted"], 0.4, label="predicted (to the nearest half star)", color=MODEL_COLOUR)
    ax.set_xticks(x, [f"{r:g}" for r in d["rating"]])
    ax.set_xlabel("rating")
    ax.set_ylabel("test ratings")
    ax.set_title("Predicted vs actual ratings")
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    return fig


def tuning_heatmap(tuning: dict) -> Figure:
    """Validation RMSE over rank x regParam (the best over iteration counts); a cell the search
    did not fit (tuning.json's "skipped") is left blank."""
    measure = tuning["selected_by"]
    ranks = sorted({c["rank"] for c in tuning["candidates"]})
    regs = sorted({c["reg_param"] for c in tuning["candidates"]})
    grid = np.full((len(ranks), len(regs)), np.nan)
    for c in tuning["candidates"]:
        cell = (ranks.index(c["rank"]), regs.index(c["reg_param"]))
        grid[cell] = np.fmin(grid[cell], c[measure])
    fig, ax = _subplots(6.4, 3.6)
    image = ax.imshow(grid, cmap="viridis_r", aspect="auto")
    middle = np.nanmean([np.nanmin(grid), np.nanmax(grid)])
    for (i, j), value in np.ndenumerate(grid):
        if np.isnan(value):
            continue
        ax.text(
            j, i, f"{value:.4f}", ha="center", va="center", fontsize=8, color="black" if value < middle else "white"
        )
    best = tuning["best"]
    ax.add_patch(
        plt.Rectangle(
            (regs.index(best["reg_param"]) - 0.5, ranks.index(best["rank"]) - 0.5),
            1,
            1,
            fill=False,
            edgecolor="red",
            linewidth=2,
            clip_on=False,  # a winner in the first or last row keeps its whole frame
        )
    )
    ax.set_xticks(range(len(regs)), [f"{r:g}" for r in regs])
    ax.set_yticks(range(len(ranks)), ranks)
    ax.set_xlabel("regParam")
    ax.set_ylabel("rank")
    ax.set_title(f"Tuning: {measure.replace('_', ' ')} (winner framed)")
    fig.colorbar(image, ax=ax)
    return fig


def history_chart(history: list[dict], current: str) -> Figure:
    """Every evaluated run's test RMSE, the best at the top. A dataset or split that all runs
    share goes in the title, so the row labels keep only what tells runs apart; the figure
    grows with the rows and their lines, so that no label is squeezed off it."""
    runs = sorted(history, key=lambda r: r["rmse"], reverse=True)
    shared = [part for part in ("dataset", "split") if len({r[part] for r in runs}) == 1]
    labels = [_run_label([r[part] for part in ("dataset", "split", "model") if part not in shared]) for r in runs]
    lines = max(label.count("\n") + 1 for label in labels)
    fig, ax = _subplots(6.4, 1.9 + len(runs) * (lines * 1.3 * HISTORY_FONT + 6) / 72)
    y = np.arange(len(runs))
    mine = np.array([r["key"] == current for r in runs])
    rmse = np.array([r["rmse"] for r in runs])
    if mine.any():
        ax.scatter(rmse[mine], y[mine], color=MODEL_COLOUR, s=60, zorder=3, label="this report's run")
    if (~mine).any():
        ax.scatter(rmse[~mine], y[~mine], color=OTHER_COLOUR, zorder=3, label="other runs")
    for yy, value in zip(y, rmse, strict=True):
        ax.annotate(f"{value:.4f}", (value, yy), textcoords="offset points", xytext=(6, -3), fontsize=8)
    ax.set_yticks(y, labels, fontsize=HISTORY_FONT)
    for label, is_mine in zip(ax.get_yticklabels(), mine, strict=True):
        if is_mine:
            label.set(color=MODEL_COLOUR, fontweight="bold")
    ax.set_ylim(-0.6, len(runs) - 0.4)
    ax.margins(x=0.25)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel("test RMSE")
    title = ["Test RMSE of every evaluated run"]
    if shared:
        title += textwrap.wrap(", ".join(f"{part} {runs[0][part]}" for part in shared), TITLE_CHARS)
    fig.suptitle("\n".join(title))
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    return fig


def _run_label(parts: list[str]) -> str:
    """The parts of a run's name on as few lines of at most LABEL_CHARS as they fit, a part
    too long for one line wrapped at its hyphens."""
    lines: list[str] = []
    for part in parts:
        first, *rest = textwrap.wrap(part, LABEL_CHARS)
        if lines and len(lines[-1]) + len(" · ") + len(first) <= LABEL_CHARS:
            lines[-1] += " · " + first
        else:
            lines.append(first)
        lines += rest
    return "\n".join(lines)


def history_row(key: str, dataset: str, split: str, model: str, metrics: dict) -> dict:
    """One line of the history, from an evaluation's key, the run it belongs to and its metrics.json."""
    return {
        "key": key,
        "dataset": dataset,
        "split": split,
        "model": model,
        "rmse": metrics["rmse"],
        "bias_rmse": metrics.get("baselines", {}).get("bias", {}).get("rmse"),
        "evaluated_at": metrics.get("evaluated_at", ""),
    }


def render(
    title: str,
    metrics: dict,
    tuning: dict | None,
    history: list[dict],
    current: str,
    *,
    ranking: dict | None = None,
) -> str:
    """The whole page; `ranking` (the top-k quality of the recommenders) adds a section."""
    sections = [("model", "Model vs baselines", _png(model_vs_baselines(metrics)), _summary_table(metrics))]
    if ranking:
        sections.append(
            ("ranking", f"Top-{ranking['k']} recommendations", _png(ranking_chart(ranking)), _ranking_table(ranking))
        )
    sections += [
        ("activity", "Error by user activity", _png(error_by_activity(metrics)), ""),
        ("distribution", "Predicted vs actual ratings", _png(rating_distribution(metrics)), ""),
    ]
    if tuning:
        sections.append(("tuning", "Tuning grid", _png(tuning_heatmap(tuning)), _tuning_note(tuning)))
    sections.append(("history", "History", _png(history_chart(history, current)), _history_table(history, current)))
    toc = " · ".join(f'<a href="#{anchor}">{html.escape(name)}</a>' for anchor, name, _, _ in sections)
    body = "\n".join(
        f'<section id="{anchor}"><h2>{html.escape(name)}</h2>'
        f'<img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">{extra}</section>'
        for anchor, name, png, extra in sections
    )
    if not tuning:
        body += '<p class="note">Not tuned: run with <code>--tuned</code> to search the hyper-parameters.</p>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }} td, th {{ border: 1px solid #ccc; padding: .25rem .6rem; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }} tr.current {{ font-weight: bold; }}
img {{ max-width: 100%; }} .note {{ color: #666; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(metrics.get("evaluated_at", ""))} · {metrics["n_test"]} test ratings · {toc}</p>
{body}
</body></html>
"""


def _summary_table(metrics: dict) -> str:
    rows = [
        ("RMSE", metrics["rmse"], metrics["baselines"]["bias"]["rmse"], metrics["baselines"]["global_mean"]["rmse"]),
        ("MAE", metrics["mae"], metrics["baselines"]["bias"]["mae"], metrics["baselines"]["global_mean"]["mae"]),
    ]
    table = "<table><tr><th></th><th>model</th><th>user+item bias</th><th>global mean</th></tr>"
    table += "".join(
        f"<tr><td>{n}</td>" + "".join(f'<td class="num">{v:.4f}</td>' for v in vs) + "</tr>" for n, *vs in rows
    )
    table += "</table>"
    if choice := metrics.get("choice"):
        scores = choice["validation_rmse"]
        weighed = ", ".join(f"{html.escape(name)} {rmse:.4f}" for name, rmse in scores.items())
        table += (
            f'<p class="note">The model is {html.escape(choice["chosen"])}, chosen for the lower RMSE on the same '
            f"validation ratings, carved from the training ratings: {weighed}.</p>"
        )
    return table


def _ranking_table(ranking: dict) -> str:
    """One row per recommender, the served one marked, and who was ranked on what."""
    k, catalogue = ranking["k"], ranking["catalogue"]
    table = (
        f"<table><tr><th>recommender</th><th>NDCG@{k}</th><th>precision@{k}</th><th>recall@{k}</th><th>MAP@{k}</th>"
        "<th>catalogue coverage</th><th>mean popularity</th></tr>"
    )
    for name, r in ranking["models"].items():
        served = name == ranking["served"]
        table += f"<tr{' class=current' if served else ''}><td>{html.escape(r['label'])}"
        table += f"{' (served)' if served else ''}</td>"
        table += "".join(f'<td class="num">{r[m]:.4f}</td>' for m in ("ndcg", "precision", "recall", "map"))
        table += f'<td class="num">{r["coverage"]:.1%}</td><td class="num">{r["mean_popularity"]:.1f}</td></tr>'
    table += "</table>"
    who = f"{ranking['users']:,} test users, " + (
        f"a sample (seed {ranking['sampled']['seed']}) of the {ranking['eligible_users']:,}"
        if ranking["sampled"]
        else "every one"
    )
    return table + (
        f"<p>Ranked for {who} with a relevant test rating. An item is relevant if the user rated it "
        f"≥ {ranking['relevant_rating']:g} in the test set; each user's candidates are the items the user did not "
        f"rate in training, out of the {catalogue:,} items in the training data. Catalogue coverage: the share of "
        f"those items in at least one user's top {k}; mean popularity: the mean number of training ratings of the "
        "items recommended. (served): the recommender the recommendations are made with by default.</p>"
    )


def _tuning_note(tuning: dict) -> str:
    best = tuning["best"]
    return (
        f"<p>{len(tuning['candidates'])} candidates on {tuning['validation']['validation']['rows']} validation "
        f"ratings carved from the training data; winner: rank {best['rank']}, regParam {best['reg_param']:g}, "
        f"{best['max_iter']} iterations.</p>"
    )


def _history_table(history: list[dict], current: str) -> str:
    rows = "".join(
        f"<tr{' class=current' if r['key'] == current else ''}><td>{html.escape(r['evaluated_at'])}</td>"
        f"<td>{html.escape(r['dataset'])}</td><td>{html.escape(r['split'])}</td><td>{html.escape(r['model'])}</td>"
        f'<td class="num">{r["rmse"]:.4f}</td>'
        f'<td class="num">{"" if r["bias_rmse"] is None else format(r["bias_rmse"], ".4f")}</td></tr>'
        for r in sorted(history, key=lambda r: r["evaluated_at"])
    )
    return (
        "<table><tr><th>evaluated</th><th>dataset</th><th>split</th><th>model</th><th>RMSE</th>"
        f"<th>bias RMSE</th></tr>{rows}</table>"
    )


def _subplots(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure at the PNG's resolution, laid out when drawn (constrained: it makes room for
    legends outside the axes), so that what a test draws is what the page shows."""
    fig, ax = plt.subplots(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, ax


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
