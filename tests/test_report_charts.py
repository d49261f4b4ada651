"""The report's charts, drawn without Spark or a browser from hand-made metrics: every text is
inside its figure and clear of every other text, and no legend or label covers a bar or a
point, with awkward inputs (one run, many runs with long labels, lopsided buckets)."""

from __future__ import annotations

import re
from itertools import combinations, pairwise
from unittest import mock

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from movielens_als import report

TOLERANCE = 1.0  # pixels two extents may share: touching is not overlapping


def drawn_texts(fig: Figure) -> list[Text]:
    """Every Text the figure draws, with its text: what a reader sees. Asking `findobj` instead
    would also return the labels of spare ticks outside the view, which are never drawn."""
    drawn: list[Text] = []
    draw = Text.draw

    def recording(text, renderer):
        draw(text, renderer)
        if text.get_visible() and text.get_text().strip():
            drawn.append(text)

    with mock.patch.object(Text, "draw", recording):
        fig.canvas.draw()
    return drawn


def marks(fig: Figure) -> list[tuple[str, Bbox]]:
    """The extent of every bar and scatter point of the figure, each named for a message."""
    found = []
    for ax in fig.axes:
        for container in ax.containers:
            if isinstance(container, BarContainer):
                found += [
                    (f"bar {n} of {container.get_label()!r}", bar.get_window_extent())
                    for n, bar in enumerate(container)
                ]
        for points in ax.collections:
            if isinstance(points, PathCollection):
                offsets = points.get_offset_transform().transform(points.get_offsets())
                sizes = points.get_sizes()
                for n, (x, y) in enumerate(offsets):
                    r = (sizes[n % len(sizes)] ** 0.5) / 2 * fig.dpi / 72
                    found.append(
                        (f"point {n} of {points.get_label()!r}", Bbox.from_extents(x - r, y - r, x + r, y + r))
                    )
    return found


def strikes(text: Text, extent: Bbox, fig: Figure) -> list[str]:
    """The plotted lines (such as a reference line across the bars) that pass through a text,
    unless the text is drawn over them on an opaque box."""
    found = []
    for ax in fig.axes:
        for line in ax.get_lines():
            masked = text.get_bbox_patch() is not None and text.get_zorder() > line.get_zorder()
            ends = line.get_transform().transform(line.get_xydata())
            half = line.get_linewidth() * fig.dpi / 72 / 2
            segments = [Bbox(np.sort(pair, axis=0)).padded(half) for pair in pairwise(ends)]
            if not masked and any(overlap(extent, segment) for segment in segments):
                found.append(f"the line {line.get_label()!r} strikes through {text.get_text()!r}")
    return found


def overlap(a: Bbox, b: Bbox) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > TOLERANCE and min(a.y1, b.y1) - max(a.y0, b.y0) > TOLERANCE


def inside(inner: Bbox, outer: Bbox) -> bool:
    return (
        inner.x0 >= outer.x0 - TOLERANCE
        and inner.y0 >= outer.y0 - TOLERANCE
        and inner.x1 <= outer.x1 + TOLERANCE
        and inner.y1 <= outer.y1 + TOLERANCE
    )


def text_problems(fig: Figure) -> list[str]:
    """What a reader could not read: a text outside the figure or over another text, a legend
    over a text, a text or legend over a bar or point (a label wholly inside a bar is fine),
    and a line through a text."""
    texts = drawn_texts(fig)
    renderer = fig.canvas.get_renderer()
    extents = {text: text.get_window_extent(renderer) for text in texts}
    problems = [f"{t.get_text()!r} is outside the figure" for t, e in extents.items() if not inside(e, fig.bbox)]
    problems += [
        f"{a.get_text()!r} overlaps {b.get_text()!r}"
        for a, b in combinations(texts, 2)
        if overlap(extents[a], extents[b])
    ]
    legends = [legend for legend in fig.findobj(Legend) if legend.get_visible()]
    in_legends = {text for legend in legends for text in legend.get_texts()}
    boxes = [
        (f"the legend {[t.get_text() for t in legend.get_texts()]}", legend.get_window_extent(renderer))
        for legend in legends
    ]
    loose = [(repr(t.get_text()), e) for t, e in extents.items() if t not in in_legends]
    problems += [f"{legend} covers {text}" for legend, box in boxes for text, e in loose if overlap(box, e)]
    data = marks(fig)
    problems += [
        f"{name} covers {mark}"
        for name, box in boxes + loose
        for mark, extent in data
        if overlap(box, extent) and not (mark.startswith("bar") and inside(box, extent))
    ]
    problems += [problem for t, e in extents.items() for problem in strikes(t, e, fig)]
    return problems


def assert_readable(fig: Figure) -> None:
    problems = text_problems(fig)
    report.plt.close(fig)
    assert not problems, "\n".join(problems)


def test_the_check_finds_each_fault_it_looks_for():
    """So that a check which stopped seeing texts (after a matplotlib change, say) cannot pass vacuously."""
    fig, ax = report._subplots(4, 3)
    ax.bar([0, 1], [1, 2], label="bars")
    ax.text(0, 0.5, "in", ha="center")  # fine: wholly inside bar 0
    ax.text(0, 1.6, "one", ha="center")
    ax.text(0, 1.6, "two", ha="center")
    ax.text(1, 1.95, "astride", ha="center", va="center")
    ax.axhline(1.3, color="black", label="a line")
    ax.text(0, 1.3, "struck", ha="center", va="center")
    ax.set_title("a title far too long to fit in a figure four inches wide, however laid out")
    ax.legend(loc="lower right")
    problems = text_problems(fig)
    report.plt.close(fig)
    assert any(p.startswith("'a title far too long") and p.endswith("outside the figure") for p in problems)
    assert "'one' overlaps 'two'" in problems
    assert "'astride' covers bar 1 of 'bars'" in problems
    assert "the legend ['a line', 'bars'] covers bar 1 of 'bars'" in problems
    assert "the line 'a line' strikes through 'struck'" in problems
    assert not any("'in'" in p for p in problems)


def metrics(cold_users: int = 0, cold_items: int = 1_870) -> dict:
    """A metrics.json as `evaluate` writes it: lopsided activity buckets with tens of thousands of
    ratings beside a few dozen, and cold items."""
    return {
        "rmse": 0.8734,
        "mae": 0.6712,
        "n_test": 100_836,
        "coverage": 0.981,
        "rmse_covered": 0.8655,
        "evaluated_at": "2024-05-01T12:00:00+00:00",
        "baselines": {"global_mean": {"rmse": 1.0412, "mae": 0.8311}, "bias": {"rmse": 0.9012, "mae": 0.6934}},
        "improvement_over_bias": 1 - 0.8734 / 0.9012,
        "by_activity": [
            {"ratings_in_train": "cold (0)", "n": cold_users, "rmse": 1.0123 if cold_users else None},
            {"ratings_in_train": "1-9", "n": 48, "rmse": 1.6241},
            {"ratings_in_train": "10-49", "n": 3_120, "rmse": 0.7802},
            {"ratings_in_train": "50-199", "n": 18_250, "rmse": 1.3401},
            {"ratings_in_train": "200+", "n": 41_234, "rmse": 0.8102},
        ],
        "cold": {
            "users": {"n": cold_users, "rmse": 1.0123 if cold_users else None},
            "items": {"n": cold_items, "rmse": 1.1203 if cold_items else None},
        },
        "ranking": {
            "k": 10,
            "relevant_rating": 4.0,
            "users": 603,
            "eligible_users": 603,
            "sampled": None,
            "model": {"precision": 0.061, "recall": 0.050, "ndcg": 0.074},
            "popularity": {"precision": 0.126, "recall": 0.102, "ndcg": 0.167},
        },
        "distribution": {
            "rating": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0],
            "actual": [1_370, 2_811, 1_791, 7_551, 5_550, 20_047, 13_136, 26_818, 8_551, 13_211],
            "predicted": [3, 120, 610, 2_480, 9_872, 24_960, 36_120, 22_050, 4_410, 211],
        },
    }


def tuning() -> dict:
    """A tuning.json of a 3 ranks x 5 regParams x 2 iteration counts grid."""
    candidates = [
        {
            "rank": rank,
            "reg_param": reg,
            "max_iter": iters,
            "validation_rmse": 0.85 + abs(reg - 0.1) + 0.001 * rank + 0.01 / iters,
            "validation_rmse_calibrated": 0.84 + abs(reg - 0.1) + 0.001 * rank + 0.01 / iters,
        }
        for rank in (8, 16, 32)
        for reg in (0.01, 0.03, 0.1, 0.3, 1.0)
        for iters in (10, 20)
    ]
    return {
        "model": "biased_als",
        "selected_by": "validation_rmse_calibrated",
        "validation": {"validation": {"rows": 7_912}},
        "candidates": candidates,
        "best": min(candidates, key=lambda c: c["validation_rmse_calibrated"]),
    }


def history(n: int) -> list[dict]:
    """n evaluations across datasets and splits, tuned and untuned models with long ids."""
    datasets = ["ml-latest-small", "ml-1m", "ml-25m"]
    splits = ["user_random-0.2-seed42", "user_time-0.2-seed42-skip-malformed", "random-0.1-seed7"]
    models = [
        "biased_als-rank32-reg0.15-iter15",
        "biased_als-tuned-grid-1a2b3c4d",
        "ease-tuned-grid-5e6f7a8b",
        "als-rank128-reg0.05-iter25",
        "biased_als-rank256-reg0.0125-iter100",
    ]
    rows = []
    for i in range(n):
        dataset, split, model = datasets[i % 3], splits[(i // 3) % 3], models[i % 5]
        key = f"evaluations/{dataset}/{split}/{model}/metrics.json"
        row = report.history_row(key, dataset, split, model, metrics() | {"rmse": 0.78 + 0.013 * ((i * 7) % 15)})
        rows.append(row | {"evaluated_at": f"2024-05-{i + 1:02d}T12:00:00+00:00"})
    return rows


@pytest.mark.parametrize("cold", [(0, 1_870), (212, 1_870), (0, 0)], ids=["cold items", "cold users too", "no cold"])
def test_error_by_activity_is_readable(cold):
    assert_readable(report.error_by_activity(metrics(*cold)))


@pytest.mark.parametrize("rmse", [0.8734, 1.0301], ids=["better than the baselines", "worse than the bias"])
def test_model_vs_baselines_is_readable(rmse):
    worse = {"rmse": rmse, "mae": rmse * 0.77, "improvement_over_bias": 1 - rmse / 0.9012}
    assert_readable(report.model_vs_baselines(metrics() | worse))


@pytest.mark.parametrize("skew", ["high", "low"], ids=["mostly high ratings", "mostly low ratings"])
def test_rating_distribution_is_readable(skew):
    m = metrics()
    if skew == "low":
        d = m["distribution"]
        m["distribution"] = d | {"actual": d["actual"][::-1], "predicted": d["predicted"][::-1]}
    assert_readable(report.rating_distribution(m))


def test_tuning_heatmap_is_readable():
    assert_readable(report.tuning_heatmap(tuning()))


def test_a_searched_tuning_heatmap_leaves_the_points_not_fitted_blank():
    searched = tuning()
    searched["candidates"] = [c for c in searched["candidates"] if c["reg_param"] != 1.0 or c["rank"] == 8]
    fig = report.tuning_heatmap(searched)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 3 * 4 + 1 and "nan" not in texts
    assert_readable(fig)


@pytest.mark.parametrize("n", [1, 2, 15])
def test_history_chart_is_readable(n):
    runs = history(n)
    assert_readable(report.history_chart(runs, runs[-1]["key"]))


def test_a_history_of_one_dataset_is_readable():
    runs = [r for r in history(15) if r["dataset"] == "ml-latest-small"]
    assert_readable(report.history_chart(runs, runs[0]["key"]))


def test_a_run_name_longer_than_a_line_is_wrapped_not_cut():
    runs = history(3)
    long = "biased_als-tuned-grid-" + "0123456789abcdef" * 6
    runs[1] = report.history_row(runs[1]["key"], runs[1]["dataset"], runs[1]["split"], long, {"rmse": 0.85})
    assert_readable(report.history_chart(runs, runs[1]["key"]))


def test_history_labels_tell_runs_apart_and_the_title_names_what_they_share():
    runs = [r for r in history(15) if r["dataset"] == "ml-latest-small"]
    fig = report.history_chart(runs, runs[0]["key"])
    labels = [label.get_text() for label in fig.axes[0].get_yticklabels()]
    report.plt.close(fig)
    assert len(set(labels)) == len(runs)
    assert not any("ml-latest-small" in label for label in labels)
    assert "dataset ml-latest-small" in fig.get_suptitle()


RANKING = {
    "k": 10,
    "relevant_rating": 4.0,
    "users": 603,
    "eligible_users": 603,
    "sampled": None,
    "catalogue": 9724,
    "served": "ease",
    "models": {
        "ease": {
            "label": "EASE (λ 200, ratings ≥ 3.5)",
            "ndcg": 0.3168,
            "precision": 0.2317,
            "recall": 0.2218,
            "map": 0.1734,
            "coverage": 0.121,
            "mean_popularity": 63.2,
        },
        "explicit": {
            "label": "biased ALS (rank 32)",
            "ndcg": 0.074,
            "precision": 0.061,
            "recall": 0.050,
            "map": 0.03,
            "coverage": 0.35,
            "mean_popularity": 4.1,
        },
        "popularity": {
            "label": "most popular unseen",
            "ndcg": 0.167,
            "precision": 0.126,
            "recall": 0.102,
            "map": 0.08,
            "coverage": 0.004,
            "mean_popularity": 215.0,
        },
    },
}
# A sample of a large release's users, long labels, and the explicit model served.
SAMPLED = RANKING | {
    "users": 10_000,
    "eligible_users": 162_541,
    "sampled": {"seed": 42},
    "catalogue": 59_047,
    "served": "explicit",
    "models": {
        name: model | {"label": f"{model['label']}, trained on every rating of the release"}
        for name, model in RANKING["models"].items()
    },
}


@pytest.mark.parametrize("ranking", [RANKING, SAMPLED], ids=["every user", "a sample, long labels"])
def test_ranking_chart_is_readable(ranking):
    assert_readable(report.ranking_chart(ranking))


def page(ranking: dict | None) -> str:
    runs = history(2)
    return report.render("ml-latest-small: ease", metrics(), tuning(), runs, runs[0]["key"], ranking=ranking)


def section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}">')
    return html[start : html.index("</section>", start)]


def test_the_ranking_section_has_every_recommender_and_marks_the_served_one():
    html = page(RANKING)
    ranking = section(html, "ranking")
    assert "<h2>Top-10 recommendations</h2>" in ranking and 'alt="Top-10 recommendations"' in ranking
    rows = re.findall(r"<tr( class=current)?><td>([^<]*)</td>", ranking)
    assert rows == [
        (" class=current", "EASE (λ 200, ratings ≥ 3.5) (served)"),
        ("", "biased ALS (rank 32)"),
        ("", "most popular unseen"),
    ]
    assert '<td class="num">0.3168</td><td class="num">0.2317</td><td class="num">0.2218</td>' in ranking
    assert '<td class="num">0.1734</td><td class="num">12.1%</td><td class="num">63.2</td>' in ranking
    assert (
        "603 test users, every one with a relevant test rating." in ranking
        and "rated it ≥ 4 in the test set" in ranking
    )
    assert "items the user did not rate in training" in ranking and "9,724 items" in ranking
    # In the table of contents and on the page, right after the model against its baselines.
    anchors = ["model", "ranking", "activity", "distribution", "tuning", "history"]
    assert re.findall(r'<a href="#(\w+)">', html) == anchors
    assert re.findall(r'<section id="(\w+)">', html) == anchors


def test_a_sampled_ranking_says_so():
    ranking = section(page(SAMPLED), "ranking")
    assert "10,000 test users, a sample (seed 42) of the 162,541 with a relevant test rating." in ranking
    assert re.findall(r"<tr class=current><td>([^<]*)</td>", ranking) == [
        "biased ALS (rank 32), trained on every rating of the release (served)"
    ]


def test_ranking_labels_are_escaped():
    models = RANKING["models"] | {"explicit": RANKING["models"]["explicit"] | {"label": "ALS <rank 32> & co"}}
    ranking = section(page(RANKING | {"models": models}), "ranking")
    assert "ALS &lt;rank 32&gt; &amp; co" in ranking and "<rank 32>" not in ranking


def test_without_a_ranking_there_is_no_ranking_section():
    html = page(None)
    assert 'id="ranking"' not in html and "#ranking" not in html
    assert "Top-10 recommendations" not in html


def test_the_model_section_says_which_rating_model_validation_chose_and_why():
    runs = history(2)
    choice = {
        "selected_by": "validation_rmse",
        "validation_rmse": {"biased_als-tuned-grid-1": 0.9189, "bpmf-sweeps300": 0.8866},
        "chosen": "bpmf-sweeps300",
    }
    html = report.render("t", metrics() | {"choice": choice}, tuning(), runs, runs[0]["key"])
    assert "The model is bpmf-sweeps300, chosen for the lower RMSE on the same validation ratings" in section(
        html, "model"
    )
    assert "biased_als-tuned-grid-1 0.9189, bpmf-sweeps300 0.8866" in section(html, "model")
    assert "chosen for the lower RMSE" not in page(None)
