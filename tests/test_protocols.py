"""The protocols the field publishes on, run through the real `luigi` command on the real
ml-100k release: its official folds and recommenders' per-item stratified split, and the
relevance rule under which every test rating counts."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pyarrow.parquet as pq
import pytest

from movielens_als import bpmf, metrics
from movielens_als.ratings import rating_arrays
from movielens_als.releases import read_fold, release
from tests.helpers import run_luigi

pytestmark = pytest.mark.e2e


@pytest.fixture
def ml_100k_config(ml_100k_zip, mirror, pipeline_config, tmp_path):
    data = ml_100k_zip.read_bytes()
    mirror.publish("ml-100k", data)
    # This copy of ml-100k is not GroupLens's zip byte for byte: its MD5 is pinned, as the data README says.
    md5s = json.dumps({"ml-100k": hashlib.md5(data).hexdigest()})
    return pipeline_config(store={"root": tmp_path / "store"}, movielens={"base_url": mirror.base_url, "md5s": md5s})


def fold_lines(zip_path, member: str) -> int:
    with zipfile.ZipFile(zip_path) as archive:
        return sum(1 for _ in io.TextIOWrapper(archive.open(member), encoding="latin-1"))


def test_an_official_fold_is_the_releases_own_base_and_test(ml_100k_zip, ml_100k_config, tmp_path, workdir):
    args = ["SplitData", "--local-scheduler", "--dataset", "ml-100k", "--strategy", "official", "--fold", "u1"]
    result = run_luigi(args, ml_100k_config, workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    split = tmp_path / "store/splits/ml-100k/official-u1-seed42"
    stats = json.loads((split / "stats.json").read_text())
    assert stats["train"]["rows"] == fold_lines(ml_100k_zip, "ml-100k/u1.base") == 80_000
    assert stats["test"]["rows"] == fold_lines(ml_100k_zip, "ml-100k/u1.test") == 20_000
    assert "test_fraction" not in stats["params"] and stats["params"]["fold"] == "u1"


def test_the_item_stratified_split_keeps_each_items_share(ml_100k_config, tmp_path, workdir):
    args = ["SplitData", "--local-scheduler", "--dataset", "ml-100k", "--strategy", "item_random"]
    result = run_luigi([*args, "--test-fraction", "0.25"], ml_100k_config, workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    split = tmp_path / "store/splits/ml-100k/item_random-0.25-seed42"
    train = pq.read_table(split / "train.parquet").column("item").to_numpy()
    test = pq.read_table(split / "test.parquet").column("item").to_numpy()
    counts = {}
    for item in train:
        counts[item] = counts.get(item, [0, 0])
        counts[item][0] += 1
    for item in test:
        counts.setdefault(item, [0, 0])[1] += 1
    # recommenders' python_stratified_split: round(0.75 n) of each item's ratings to train.
    assert all(kept == round(0.75 * (kept + held)) for kept, held in counts.values())
    assert len(counts) == 1682 and len(train) + len(test) == 100_000


@pytest.mark.spark
def test_every_test_rating_relevant_on_recommenders_protocol(ml_100k_config, tmp_path, workdir):
    split = ["--dataset", "ml-100k", "--strategy", "item_random", "--test-fraction", "0.25"]
    result = run_luigi(
        ["EvaluatedRanking", "--local-scheduler", *split, "--relevant-rating", "1"], ml_100k_config, workdir
    )
    assert result.returncode == 0, result.stderr[-5000:]
    [path] = (tmp_path / "store/evaluations/ml-100k/item_random-0.25-seed42").glob("ease-tuned-*/ranking-vs-*.json")
    ranking = json.loads(path.read_text())
    # Every user with a test rating counts, as recommenders' benchmark averages over all of them:
    # 942 of the 943, as one user's ratings all fell to train.
    assert (ranking["relevant_rating"], ranking["users"], ranking["sampled"]) == (1.0, 942, None)
    served = ranking["models"]["ease"]
    # recommenders' published rows on this protocol: BiVAE 0.4751 / 0.4118 / 0.2191 (NDCG, P, R
    # at 10), BPR 0.4420, LightGCN 0.4198; issue 18's bar (on the mean of seeds 42-44) 0.49 /
    # 0.42 / 0.225. Measured here: 0.4934 / 0.4294 / 0.2277 (BENCHMARKS.md).
    assert served["ndcg"] > 0.49 and served["precision"] > 0.42 and served["recall"] > 0.225
    [tuning] = (tmp_path / "store/tuning/ml-100k/item_random-0.25-seed42").glob("ease-grid-*/tuning.json")
    tuned = json.loads(tuning.read_text())
    assert tuned["relevant_rating"] == 1.0 and tuned["same_positives"] == {"4": 3.5}
    # Validation chose the genres and the discount: without them this seed served 0.4779.
    assert tuned["best"]["genre_weight"] > 0 and tuned["best"]["popularity_exponent"] < 0


def test_the_bayesian_model_beats_the_published_rows_on_fold_u1(ml_100k_zip):
    # The rating model --tuned weighs against ALS, on ml-100k's u1 at its default sweeps:
    # ahead of GC-MC and IGMC (0.905), where Spark's ALS stays near 0.93.
    with zipfile.ZipFile(ml_100k_zip) as archive:
        train, test, _ = read_fold(archive, release("ml-100k"), "u1", False)
    model = bpmf.fit(rating_arrays(train), sweeps=bpmf.SWEEPS, seed=42, rating_scale=(1.0, 5.0)).model
    held_out = rating_arrays(test)
    assert metrics.rmse(model.predict(held_out.users, held_out.items), held_out.ratings) < 0.895
