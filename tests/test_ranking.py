"""The ranking model through the real `luigi` command on the real ml-latest-small release:
tuned on a validation split carved from train, ahead of every peer at top 10 on the
default split, and the same weights when fitted again."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from tests.helpers import run_luigi, tasks_run

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

SPLIT = "ml-latest-small/user_random-0.2-seed42"
METRICS = {"label", "ndcg", "ndcg_se", "precision", "recall", "map", "coverage", "mean_popularity"}
PARAMS = ("positive_rating", "l2", "genre_weight", "popularity_exponent")


def test_the_ranking_model_beats_its_peers_on_the_real_release(
    real_release_zip, mirror, pipeline_config, tmp_path, workdir
):
    mirror.publish("ml-latest-small", real_release_zip.read_bytes())
    root = tmp_path / "store"
    config = pipeline_config(store={"root": root}, movielens={"base_url": mirror.base_url})

    result = run_luigi(["EvaluatedRanking", "--local-scheduler"], config, workdir)

    assert result.returncode == 0, result.stderr[-5000:]
    [path] = root.glob(f"evaluations/{SPLIT}/ease-tuned-grid-*/ranking-vs-biased_als-rank32-reg0.15-iter15.json")
    ranking = json.loads(path.read_text())
    models = ranking["models"]
    assert list(models) == ["ease", "explicit", "popularity"] and ranking["served"] == "ease"
    assert all(set(m) == METRICS for m in models.values())
    assert (ranking["users"], ranking["eligible_users"], ranking["sampled"], ranking["k"]) == (603, 603, None, 10)
    # Ahead of the best peer measured on this split (EASE, λ 200 on ratings ≥ 4: 0.310), and of
    # EASE without the genres and the popularity discount (λ 200 on ratings ≥ 3.5: 0.3168).
    assert models["ease"]["ndcg"] >= 0.32
    assert models["ease"]["ndcg"] > 1.8 * models["popularity"]["ndcg"] > 3 * models["explicit"]["ndcg"]
    assert models["ease"]["map"] > models["popularity"]["map"] > models["explicit"]["map"]
    assert models["popularity"]["coverage"] < models["ease"]["coverage"]

    # Tuned on the training ratings only: the validation split is carved out of them.
    [tuning_path] = root.glob(f"tuning/{SPLIT}/ease-grid-*/tuning.json")
    tuning = json.loads(tuning_path.read_text())
    stats = json.loads((root / "splits" / SPLIT / "stats.json").read_text())
    assert tuning["validation"]["fit"]["rows"] + tuning["validation"]["validation"]["rows"] == stats["train"]["rows"]
    # Ratings ≥ 0.5 (every one), ≥ 3.5 and ≥ 4 (half stars) on the 2,048 most-liked items: for
    # the first, from the middles (λ 400, genre weight 3), a bracket along λ, then along the
    # genre weight at the best λ; for the next, from the best so far, along λ at its genre weight;
    # each fit judged with a bracket of popularity exponents. Then each liked rating's best, as
    # the search could not tell them apart, again on all the items it likes: 13 fits, 3 whole.
    assert tuning["fitted"] == {
        "0.5": [[200, 3], [400, 3], [800, 1], [800, 3], [800, 10], [1600, 3]],
        "3.5": [[200, 3], [400, 3], [800, 3]],
        "4": [[200, 3], [400, 3], [800, 3], [1600, 3]],
    }
    searched = [c for c in tuning["candidates"] if c["items"] == 2048]
    final = [c for c in tuning["candidates"] if c["items"] > 2048]
    assert {(c["positive_rating"], c["l2"], c["genre_weight"]) for c in searched} == {
        (float(t), l2, w) for t, points in tuning["fitted"].items() for l2, w in points
    }
    assert [tuple(c[p] for p in PARAMS) for c in final] == [(0.5, 800, 3, 0), (4, 800, 3, -0.1), (3.5, 400, 3, -0.1)]
    assert tuning["best"] == {**dict(zip(PARAMS, (3.5, 400, 3, -0.1), strict=True)), "ndcg": final[-1]["ndcg"]}
    assert tuning["best"]["ndcg"] == max(c["ndcg"] for c in final)
    assert tuning["best_at_grid_edge"] is False  # inside every grid
    model_dir = path.parent.as_posix().replace("/evaluations/", "/models/")
    model = json.loads((root / model_dir / "model.json").read_text())
    assert {p: model[p] for p in PARAMS} == {p: tuning["best"][p] for p in PARAMS}

    # Fitted again, the same weights, byte for byte.
    weights = root / model_dir / "weights.npy"
    first = hashlib.sha256(weights.read_bytes()).hexdigest()
    shutil.rmtree(root / model_dir)
    again = run_luigi(["TrainedEASE", "--local-scheduler"], config, workdir)
    assert again.returncode == 0, again.stderr[-5000:]
    assert tasks_run(again.stderr) == ["TrainedEASE"]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == first
