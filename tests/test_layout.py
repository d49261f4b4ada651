"""The one key layout: every key a task writes is built by pipeline.layout, parses back to its
run, and lies under a prefix `movielens-als-clean` removes for its dataset."""

from __future__ import annotations

import itertools

import pytest

from pipeline import (
    BucketReady,
    DownloadedZip,
    EvaluatedRanking,
    EvaluatedRMSE,
    Recommendations,
    Report,
    SplitData,
    TrainedALS,
    TrainedBPMF,
    TrainedEASE,
    TunedALS,
    TunedEASE,
    ValidatedBPMF,
    layout,
)
from pipeline.base import StoreTask
from pipeline.cli import clean_main
from pipeline.config import configured_store

TASKS = (
    DownloadedZip,
    SplitData,
    TunedALS,
    TunedEASE,
    TrainedEASE,
    ValidatedBPMF,
    TrainedBPMF,
    TrainedALS,
    EvaluatedRMSE,
    EvaluatedRanking,
    Recommendations,
    Report,
)


def every_output(dataset: str) -> list[StoreTask]:
    """One instance of every task with an output, tuned and not, serving either model, on a
    non-default split and ranking grid."""
    options = {"dataset": dataset, "strategy": "user_time", "test_fraction": 0.1, "seed": 7, "skip_malformed": True}
    ranking = {"l2s": [10.0], "max_items": 100, "genre_weights": [0.0, 2.0], "popularity_exponents": [-0.5]}
    tasks = [DownloadedZip(dataset=dataset), SplitData(**options), TunedALS(**options, ranks=[4])]
    tasks += [TunedEASE(**options, **ranking), TrainedEASE(**options, **ranking)]
    tasks += [ValidatedBPMF(**options, bpmf_sweeps=20), TrainedBPMF(**options, bpmf_sweeps=20)]
    for cls, tuned in itertools.product(TASKS[7:], (False, True)):
        own = {name: value for name, value in ranking.items() if name in cls.get_param_names()}
        tasks.append(cls(**options, **own, tuned=tuned, ranks=[4], rank=8))
    tasks.append(Recommendations(**options, **ranking, recommender="explicit", rank=8))
    return tasks


def keys_of(task: StoreTask) -> layout.Run:
    """The run of a task's key: the ranking model's, the Bayesian model's, or the rating model's
    (the one evaluated, where a choice is made)."""
    ranked = isinstance(task, (TrainedEASE, EvaluatedRanking)) or getattr(task, "recommender", "") == "ease"
    if ranked:
        return task.split_keys.of(task.ease_model_id)
    if isinstance(task, (ValidatedBPMF, TrainedBPMF)):
        return task.split_keys.of(task.bpmf_model_id)
    return task.split_keys.of(getattr(task, "rating_model_id", None) or task.als_model_id)


def test_every_task_class_is_covered():
    assert {type(task) for task in every_output("ml-1m")} == set(TASKS)
    assert set(StoreTask.__subclasses__()) >= {BucketReady}


@pytest.mark.parametrize("dataset", ["ml-1m", "ml-latest-small"])
def test_every_output_lies_under_one_of_its_datasets_clean_prefixes(dataset):
    prefixes = layout.dataset_prefixes(dataset)
    for task in every_output(dataset):
        key = task.key + ("/" if task.is_directory else "")
        assert [p for p in prefixes if key.startswith(p) or key == p], key
        assert key.split("/")[0] in layout.OUTPUT_ROOTS


def test_the_keys_of_a_model_parse_back_to_its_run():
    for task in every_output("ml-1m")[4:]:
        if isinstance(task, ValidatedBPMF):
            continue  # under tuning/, which names no run
        run = layout.Run.parse(task.key)
        assert run == keys_of(task)
    assert layout.Run.parse(SplitData(dataset="ml-1m").key + "/train.parquet") == SplitData(dataset="ml-1m").split_keys
    with pytest.raises(ValueError, match="not a key of a split or of a model"):
        layout.Run.parse("downloads/ml-1m.zip")


def test_keys_spell_the_parameters_that_made_them():
    task = EvaluatedRMSE(dataset="ml-1m", strategy="time", test_fraction=0.1, seed=7, rank=8, reg_param=0.05)
    assert task.key == "evaluations/ml-1m/time-0.1-seed7/biased_als-rank8-reg0.05-iter15/metrics.json"
    tuned = Report(dataset="ml-1m", tuned=True, ranks=[4, 8])
    grid_id = layout.grid_id(tuned.als_grid)
    models = f"biased_als-tuned-{grid_id}-or-bpmf-sweeps60/ease-tuned-{layout.ease_grid_id(tuned.ease_search)}"
    assert tuned.key == f"reports/ml-1m/user_random-0.2-seed42/{models}/report.html"
    als_alone = Report(dataset="ml-1m", tuned=True, ranks=[4, 8], bpmf_sweeps=0)
    assert (
        als_alone.key
        == f"reports/ml-1m/user_random-0.2-seed42/biased_als-tuned-{grid_id}/" + models.split("/")[1] + "/report.html"
    )
    assert (
        ValidatedBPMF(dataset="ml-1m", bpmf_sweeps=40).key
        == "tuning/ml-1m/user_random-0.2-seed42/bpmf-sweeps40/validation.json"
    )
    assert TrainedBPMF(dataset="ml-1m", bpmf_sweeps=40).key == "models/ml-1m/user_random-0.2-seed42/bpmf-sweeps40"
    other_grid = Report(dataset="ml-1m", tuned=True, ranks=[4, 8], l2s=[50.0])
    assert other_grid.key != tuned.key  # a report of another ranking model is another page
    for grid in ({"genre_weights": [0]}, {"popularity_exponents": [0]}):  # EASE without genres, without discount
        assert TrainedEASE(dataset="ml-1m", **grid).key != TrainedEASE(dataset="ml-1m").key


def test_an_official_fold_and_a_relevance_are_spelled_in_the_keys_they_change():
    fold = EvaluatedRMSE(dataset="ml-100k", strategy="official", fold="u2", seed=3)
    assert fold.key == "evaluations/ml-100k/official-u2-seed3/biased_als-rank32-reg0.15-iter15/metrics.json"
    every = {"dataset": "ml-100k", "strategy": "item_random", "test_fraction": 0.25, "relevant_rating": 1.0}
    default = {**every, "relevant_rating": 4.0}
    assert EvaluatedRMSE(**every).key.endswith("/metrics-relevant1.json")
    assert EvaluatedRMSE(**default).key.endswith(
        "/item_random-0.25-seed42/biased_als-rank32-reg0.15-iter15/metrics.json"
    )
    # What the relevance changes: the ranking model's tuning, and so its model, its lists and its
    # comparison; the split and the rating model stay shared.
    for cls in (TunedEASE, TrainedEASE, EvaluatedRanking, Recommendations, Report):
        assert cls(**every).key != cls(**default).key, cls
    shared = [EvaluatedRMSE(**r).requires() for r in (every, default)]
    assert shared[0]["model"].key == shared[1]["model"].key and shared[0]["split"].key == shared[1]["split"].key


def test_clean_removes_every_output_of_a_dataset_and_nothing_of_another(tmp_path, luigi_config):
    luigi_config("store", "root", str(tmp_path / "store"))
    store = configured_store()
    kept, removed = every_output("ml-latest-small"), every_output("ml-1m")
    for task in kept + removed:
        if task.is_directory:
            store.write_bytes(f"{task.key}/part.parquet", b"x")
            store.mark_complete(task.key)
        else:
            store.write_bytes(task.key, b"x")
    assert all(task.complete() for task in kept + removed)

    assert clean_main(["--dataset", "ml-1m", "--yes"]) == 0

    assert [task.key for task in removed if task.output().exists()] == []
    assert all(task.complete() for task in kept)
    assert store.list_files("splits/ml-1m/") == []
