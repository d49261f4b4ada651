"""The Bayesian model's drivers (drivers/bpmf_jobs.py) on a local store: validate writes where
its chain stopped and what TrainedBPMF should replay, and train replays it with --burn-in."""

from __future__ import annotations

from drivers import bpmf_jobs
from storage import Store
from tests.test_selection import generated


def test_validate_writes_the_choice_and_train_replays_it_with_its_burn_in(tmp_path):
    Store.at(str(tmp_path)).write_parquet("train.parquet", generated(4000, 100, 80, seed=3))
    common = ["--store-root", str(tmp_path), "--train", "train.parquet", "--seed", "2"]
    common += ["--rating-min", "0.5", "--rating-max", "5.0"]
    bpmf_jobs.main(["validate", *common, "--output", "validation.json", "--sweeps", "120", "--strategy", "random"])
    validation = Store.at(str(tmp_path)).read_json("validation.json")
    assert validation["sweeps"] == 120 and validation["burn_in"] == 20
    assert validation["stopped_at"] < 120 and validation["sweeps_chosen"] <= validation["stopped_at"]
    assert [p["sweep"] for p in validation["curve"]] == list(range(21, validation["stopped_at"] + 1))
    chosen, burn_in = validation["sweeps_chosen"], validation["burn_in"]
    replay = ["--output", "model", "--sweeps", str(chosen), "--burn-in", str(burn_in)]
    bpmf_jobs.main(["train", *common, *replay, "--validation", "validation.json"])
    described = Store.at(str(tmp_path)).read_json("model/model.json")["bpmf"]
    assert (described["sweeps"], described["burn_in"]) == (chosen, burn_in)
    assert described["samples_side_by_side"] == chosen - burn_in
