"""--tuned end to end on a small generated release, and determinism of the whole chain."""

from __future__ import annotations

import json
import sys

import pyarrow.parquet as pq
import pytest

from movielens_als.synthetic import synthetic_ratings, write_release
from tests.fakes import md5
from tests.helpers import BIN, run_command

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

GRID = ["--ranks", "[2,4]", "--reg-params", "[0.05,0.3]", "--max-iters", "[5,25]"]


@pytest.fixture
def synthetic_mirror(mirror):
    data = synthetic_ratings(4000, 120, 90, seed=3)
    write_release(data, mirror.directory / "ml-latest-small.zip", "ml-latest-small")
    checksum = md5((mirror.directory / "ml-latest-small.zip").read_bytes())
    (mirror.directory / "ml-latest-small.zip.md5").write_text(f"{checksum}  ml-latest-small.zip\n")
    return mirror


def run(config, workdir, *args):
    result = run_command([str(BIN / "movielens-als"), "--local-scheduler", *args], config, workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    return result


def test_tuned_searches_on_training_data_then_trains_and_evaluates(
    synthetic_mirror, pipeline_config, tmp_path, workdir
):
    root = tmp_path / "store"
    config = pipeline_config(store={"root": root}, movielens={"base_url": synthetic_mirror.base_url})

    result = run(config, workdir, "--tuned", *GRID, "--bpmf-sweeps", "24")

    [tuning_file] = root.glob("tuning/ml-latest-small/user_random-0.2-seed42/biased_als-grid-*/tuning.json")
    tuning = json.loads(tuning_file.read_text())
    stats = json.loads((root / "splits/ml-latest-small/user_random-0.2-seed42/stats.json").read_text())
    # The validation split is carved from the training ratings: the test ratings are never seen.
    assert tuning["validation"]["fit"]["rows"] + tuning["validation"]["validation"]["rows"] == stats["train"]["rows"]
    candidates = tuning["candidates"]
    # The search fits some of the grid and names the rest: together, the grid, each point once.
    fitted = [(c["rank"], c["reg_param"], c["max_iter"]) for c in candidates]
    skipped = [tuple(point) for point in tuning["skipped"]]
    assert sorted(fitted + skipped) == sorted((r, g, i) for r in (2, 4) for g in (0.05, 0.3) for i in (5, 25))
    assert len(fitted) >= 3 and tuning["search"] and tuning["validation"]["sample"] is None
    assert tuning["best"] == min(candidates, key=lambda c: c["validation_rmse_calibrated"])
    assert all(c["validation_rmse_calibrated"] <= c["validation_rmse"] + 1e-12 for c in candidates)

    grid_id = tuning_file.parent.name.split("-", 1)[1]
    models = root / "models/ml-latest-small/user_random-0.2-seed42"
    # The Bayesian model, sampled on the same carve, is weighed against ALS's best on the same
    # validation ratings; the one with the lower RMSE is evaluated, and the choice recorded.
    split = root / "tuning/ml-latest-small/user_random-0.2-seed42"
    validation = json.loads((split / "bpmf-sweeps24/validation.json").read_text())
    assert validation["validation"] == tuning["validation"]
    # The running mean's RMSE after every sweep past the burn-in, until the chain stopped.
    first = validation["burn_in"] + 1
    assert [point["sweep"] for point in validation["curve"]] == list(range(first, validation["stopped_at"] + 1))
    assert first <= validation["sweeps_chosen"] <= validation["stopped_at"] <= 24
    [metrics_file] = root.glob(
        f"evaluations/ml-latest-small/user_random-0.2-seed42/biased_als-tuned-{grid_id}-or-bpmf-sweeps24/metrics.json"
    )
    metrics = json.loads(metrics_file.read_text())
    scores = {
        f"biased_als-tuned-{grid_id}": tuning["best"]["validation_rmse_calibrated"],
        "bpmf-sweeps24": validation["validation_rmse"],
    }
    assert metrics["choice"]["validation_rmse"] == scores
    chosen = min(scores, key=scores.__getitem__)
    assert metrics["choice"]["chosen"] == chosen and metrics["model"].endswith(f"/{chosen}")
    # Only the chosen model is fitted on all the training ratings.
    assert sorted(p.name for p in models.iterdir()) == [chosen]
    model = json.loads((models / chosen / "model.json").read_text())
    if chosen == "bpmf-sweeps24":
        # TrainedBPMF replays the sweeps and the burn-in validation chose.
        assert model["bpmf"]["sweeps"] == validation["sweeps_chosen"]
        assert model["bpmf"]["burn_in"] == validation["burn_in"] == 4
    else:
        assert {k: model["als"][k] for k in ("rank", "reg_param", "max_iter")} == {
            k: tuning["best"][k] for k in ("rank", "reg_param", "max_iter")
        }
        assert model["calibration"] == tuning["best"]["calibration"]
        assert model["tuning"] == str(tuning_file.relative_to(root))
    assert metrics["params"]["tuned"] is True and metrics["params"]["ranks"] == [2, 4]
    assert metrics["rmse"] < metrics["baselines"]["global_mean"]["rmse"]
    # One Spark application for the whole search, its progress told against the grid's 8 points.
    assert f"candidate {len(fitted)} of at most 8:" in result.stderr
    # ALS's tuning, and its fit if chosen; the Bayesian model's validation, and its fit if
    # chosen, are numpy drivers run with the worker's Python; the evaluation needs no Spark
    bayesian = chosen == "bpmf-sweeps24"
    assert result.stderr.count("spark-submit --master") == 1 + (not bayesian)
    assert result.stderr.count(f"Running {sys.executable} ") == 1 + bayesian


def test_two_runs_with_the_same_parameters_give_the_same_metrics(synthetic_mirror, pipeline_config, tmp_path, workdir):
    outcomes = []
    for run_number in range(2):
        root = tmp_path / f"store-{run_number}"
        config = pipeline_config(store={"root": root}, movielens={"base_url": synthetic_mirror.base_url})
        run(config, workdir, "--rank", "6")
        outcomes.append(json.loads(next(root.glob("evaluations/**/metrics.json")).read_text()))
    first, second = outcomes
    for name in ("rmse", "mae", "coverage", "rmse_covered", "improvement_over_bias"):
        assert first[name] == pytest.approx(second[name], abs=1e-6)
    assert first["ranking"] == second["ranking"]
    assert first["by_activity"] == second["by_activity"]


@pytest.mark.parametrize(
    ("recommender", "model_dir"), [("ease", "ease-tuned-grid-*"), ("explicit", "biased_als-rank4-*")]
)
def test_recommendations_are_unseen_titled_and_ordered(
    recommender, model_dir, synthetic_mirror, pipeline_config, tmp_path, workdir
):
    root = tmp_path / "store"
    config = pipeline_config(store={"root": root}, movielens={"base_url": synthetic_mirror.base_url})

    result = run_command(
        [
            str(BIN / "luigi"),
            "--module",
            "pipeline",
            "Recommendations",
            "--local-scheduler",
            "--top-n",
            "5",
            "--rank",
            "4",
            "--recommender",
            recommender,
        ],
        config,
        workdir,
    )

    assert result.returncode == 0, result.stderr[-5000:]
    [path] = root.glob(f"recommendations/ml-latest-small/user_random-0.2-seed42/{model_dir}/top5.parquet")
    table = pq.read_table(path)
    assert table.column_names == ["user", "rank", "item", "title", "score"]
    train = pq.read_table(root / "splits/ml-latest-small/user_random-0.2-seed42/train.parquet")
    seen = set(zip(train.column("user").to_pylist(), train.column("item").to_pylist(), strict=True))
    rows = table.to_pylist()
    assert len({r["user"] for r in rows}) == len(set(train.column("user").to_pylist()))
    assert not any((r["user"], r["item"]) in seen for r in rows)
    assert all(r["title"] and r["title"].startswith(f"Movie {r['item']}, The") for r in rows)
    for user in {r["user"] for r in rows}:
        mine = [r for r in rows if r["user"] == user]
        assert [r["rank"] for r in mine] == [1, 2, 3, 4, 5]
        assert [r["score"] for r in mine] == sorted((r["score"] for r in mine), reverse=True)
