"""Bad parameter values fail before any work, naming the option and what it accepts, whether
they come from the command line (parsed as the `luigi` command parses them) or from code."""

from __future__ import annotations

import json

import pytest
from luigi.cmdline_parser import CmdlineParser

from pipeline import EvaluatedRMSE, Recommendations, SplitData, TrainedALS, TrainedBPMF, TunedEASE, ValidatedBPMF


def task_from_command_line(*args: str):
    with CmdlineParser.global_instance(["--module", "pipeline", *args]) as parser:
        return parser.get_task_obj()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", "abc"], "--seed must be a whole number, not 'abc'"),
        (["--test-fraction", "x"], "--test-fraction must be a number, not 'x'"),
        (["--test-fraction", "1"], "--test-fraction must be strictly between 0 and 1, not 1.0"),
        (["--rank", "0"], "--rank must be a whole number from 1 to 10000, not 0"),
        (["--reg-param", "-0.1"], "--reg-param must be a finite number, 0 or more, not -0.1"),
        (["--reg-param", "inf"], "--reg-param must be a finite number, 0 or more, not inf"),
        (["--max-iter", "0"], "--max-iter must be a whole number from 1 to 10000, not 0"),
        (["--max-iter", "1.5"], "--max-iter must be a whole number, not '1.5'"),
        (["--ranks", "abc"], r"--ranks must be a JSON list such as \[16, 32\], not 'abc'"),
        (
            ["--ranks", "[]"],
            r"--ranks must be a non-empty list of values each a whole number from 1 to 10000, not \[\]",
        ),
        (["--reg-params", "[0.1, -1]"], r"--reg-params must be .* each a finite number, 0 or more, not \[0.1, -1\]"),
        (["--max-iters", "[true]"], r"--max-iters must be .* each a whole number from 1 to 10000, not \[True\]"),
        (
            ["--dataset", "ml-2m"],
            "--dataset must be one of ml-100k, ml-10m, ml-1m, ml-20m, ml-25m, ml-32m, ml-latest, ml-latest-small, "
            "not 'ml-2m'",
        ),
        (
            ["--strategy", "newest"],
            "--strategy must be one of item_random, official, random, time, user_random, user_time, not 'newest'",
        ),
        (["--model", "svd"], "--model must be one of als, biased_als, not 'svd'"),
        (
            ["--strategy", "official", "--fold", "u1"],
            r"--strategy official: ml-latest-small ships no official folds \(only ml-100k does\); "
            "choose another --strategy",
        ),
        (
            ["--dataset", "ml-100k", "--strategy", "official", "--fold", "u9"],
            "--fold must be one of u1, u2, u3, u4, u5, ua, ub for ml-100k, not 'u9'",
        ),
        (["--dataset", "ml-100k", "--strategy", "official"], "--fold must be one of .* for ml-100k, not ''"),
        (["--fold", "u1"], "--fold u1 applies only to --strategy official, not user_random"),
        (["--relevant-rating", "0"], "--relevant-rating must be a rating above 0, at most 5, not 0.0"),
    ],
)
def test_a_bad_value_on_the_command_line_names_its_option(args, message):
    with pytest.raises(ValueError, match=message):
        task_from_command_line("EvaluatedRMSE", *args)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--genre-weights", "[0, -1]"], r"--genre-weights must be .* each a finite number, 0 or more, not \[0, -1\]"),
        (["--popularity-exponents", "[0, -3]"], r"--popularity-exponents must be .* each a number from -2 to 2"),
    ],
)
def test_a_bad_ranking_grid_names_its_option(args, message):
    with pytest.raises(ValueError, match=message):
        task_from_command_line("Recommendations", *args)


def test_top_n_is_checked_on_the_command_line():
    with pytest.raises(ValueError, match="--top-n must be a whole number from 1 to 1000, not 1001"):
        task_from_command_line("Recommendations", "--top-n", "1001")


def test_bad_values_from_code_are_rejected_too():
    with pytest.raises(ValueError, match="--test-fraction must be strictly between 0 and 1, not 0"):
        SplitData(test_fraction=0)
    with pytest.raises(ValueError, match=r"--ranks must be .*, not \[8, 0\]"):
        TrainedALS(ranks=[8, 0])
    with pytest.raises(ValueError, match="--top-n must be a whole number from 1 to 1000, not 0"):
        Recommendations(top_n=0)


def test_good_values_pass():
    task = task_from_command_line("EvaluatedRMSE", "--seed", "7", "--ranks", "[8, 16]", "--reg-param", "0")
    assert (task.seed, task.ranks, task.reg_param) == (7, (8, 16), 0.0)
    fold = task_from_command_line("EvaluatedRMSE", "--dataset", "ml-100k", "--strategy", "official", "--fold", "ua")
    assert fold.split_keys.split == "official-ua-seed42" and "test_fraction" not in fold.shaping_params()
    relevance = task_from_command_line("Recommendations", "--relevant-rating", "1")
    assert relevance.relevant_rating == 1.0 and relevance.ease_model_id != Recommendations().ease_model_id
    # The items TunedEASE searches on change its tuning, and so its key; beyond --max-items, they are all of them.
    assert Recommendations(tune_items=1024).ease_model_id != Recommendations().ease_model_id
    # A knob added to the search later changes the key only when set to another value than its default.
    assert Recommendations(tuning_users=3000).ease_model_id == Recommendations().ease_model_id
    assert Recommendations(tuning_users=500).ease_model_id != Recommendations().ease_model_id
    assert json.loads(TunedEASE(tuning_users=500).driver_options()["search"])["tuning_users"] == 500
    everything = Recommendations(max_items=4096, tune_items=4096).ease_model_id
    assert Recommendations(max_items=4096, tune_items=32_768).ease_model_id == everything


def test_a_task_records_only_the_parameters_that_shape_it():
    untuned = set(TrainedALS().shaping_params())
    assert not {"ranks", "reg_params", "max_iters", "fold"} & untuned and {"rank", "tuned", "model"} <= untuned
    tuned = set(EvaluatedRMSE(tuned=True).shaping_params())
    assert {"ranks", "tuned", "rank", "bpmf_sweeps"} <= tuned and "fold" not in tuned
    assert "bpmf_sweeps" not in EvaluatedRMSE().shaping_params()


def test_the_bayesian_models_tasks_need_a_sweep_and_say_what_0_means():
    for task in (ValidatedBPMF, TrainedBPMF):
        with pytest.raises(ValueError, match="needs --bpmf-sweeps of 1 or more, not 0; 0 only tells --tuned"):
            task(bpmf_sweeps=0)
    with pytest.raises(ValueError, match="--bpmf-sweeps must be a whole number from 0 to 100000, not -1"):
        EvaluatedRMSE(tuned=True, bpmf_sweeps=-1)
    assert EvaluatedRMSE(tuned=True, bpmf_sweeps=0).requires().keys() == {"model", "split"}
    assert EvaluatedRMSE(tuned=True).requires().keys() == {"tuning", "bpmf_validation", "split"}
