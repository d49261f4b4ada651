"""The rating models: TunedALS → TrainedALS (Spark's ALS), and with `--tuned` the Bayesian model
weighed beside it (ValidatedBPMF, TrainedBPMF: numpy, no Spark)."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from pipeline.blas import als_blas_options, build_als_blas
from pipeline.data import SplitData
from pipeline.groups import AlsGridParams, AlsParams, BpmfParams, SplitParams
from pipeline.jobs import DRIVERS, DriverTask
from pipeline.sparkjob import SPARK_JOBS, SparkJobTask

logger = logging.getLogger("luigi-interface")


class AlsJob(SparkJobTask):
    """A run of an ALS driver of spark_jobs/. Spark's ALS calls BLAS once per rating on
    rank-wide vectors, from each of its task threads, on the BLAS these jobs name (als_blas)."""

    single_threaded_blas = True

    def jvm_options(self) -> list[str]:
        return [*super().jvm_options(), *als_blas_options()]

    def run(self) -> None:
        if notice := build_als_blas():
            logger.warning(notice)
        super().run()


class TunedALS(SplitParams, AlsGridParams, AlsJob):
    """The best hyper-parameters of a grid, judged on a validation split of the training
    ratings: tuning.json with every candidate's validation RMSE, the winner and, for biased
    ALS, its calibration weights."""

    script = SPARK_JOBS / "tune_als.py"

    def requires(self):
        return self.clone(SplitData)

    @property
    def key(self) -> str:
        return self.split_keys.tuning(self.als_tuning_id)

    def driver_options(self) -> dict[str, Any]:
        return {
            **self.split_options(strategy=True),
            "model": self.model,
            "grid": json.dumps(dataclasses.asdict(self.als_grid)),
            **self.rating_scale_options(),
        }


class TrainedALS(SplitParams, AlsParams, AlsJob):
    """The model fitted on all the training ratings: user and item factor tables (with the
    biases) and model.json; with `tuned`, the hyper-parameters and calibration TunedALS found."""

    is_directory = True
    script = SPARK_JOBS / "train_als.py"

    def requires(self):
        deps = {"split": self.clone(SplitData)}
        if self.tuned:
            deps["tuning"] = self.clone(TunedALS)
        return deps

    @property
    def key(self) -> str:
        return self.split_keys.of(self.als_model_id).model_dir

    def driver_options(self) -> dict[str, Any]:
        hyper: dict[str, Any] = {"rank": self.rank, "reg_param": self.reg_param, "max_iter": self.max_iter}
        if self.tuned:
            tuning = self.split_keys.tuning(self.als_tuning_id)
            best = self.store.read_json(tuning)["best"]
            hyper = {name: best[name] for name in hyper} | {"tuning": tuning}
            if best["calibration"]:
                hyper["calibration"] = json.dumps(best["calibration"])
        return {**self.split_options(), "model": self.model, **hyper, **self.rating_scale_options()}


class BayesianJob(SplitParams, BpmfParams, DriverTask):
    """A run of the Bayesian model's driver (drivers/bpmf_jobs.py) on one split."""

    script = DRIVERS / "bpmf_jobs.py"
    single_threaded_blas = True  # batches of rank × rank solves: threads only contend

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.bpmf_sweeps < 1:
            raise ValueError(
                f"{type(self).__name__} needs --bpmf-sweeps of 1 or more, not {self.bpmf_sweeps}; "
                "0 only tells --tuned to leave the Bayesian model out"
            )

    def requires(self):
        return self.clone(SplitData)

    def driver_options(self) -> dict[str, Any]:
        return {**self.split_options(), "sweeps": self.bpmf_sweeps, **self.rating_scale_options()}


class ValidatedBPMF(BayesianJob):
    """The Bayesian rating model sampled on the training ratings less TunedALS's validation carve
    and scored on it: validation.json with its validation RMSE and how that fell with the sweeps."""

    command = "validate"

    @property
    def key(self) -> str:
        return self.split_keys.of(self.bpmf_model_id).validation

    def driver_options(self) -> dict[str, Any]:
        return super().driver_options() | self.split_options(strategy=True)


class TrainedBPMF(BayesianJob):
    """The Bayesian rating model sampled on all the training ratings for as many sweeps, and
    with the burn-in, ValidatedBPMF's validation chose (at most --bpmf-sweeps): the same factor
    tables and model.json as TrainedALS's, so every scorer reads it alike."""

    is_directory = True
    command = "train"

    def requires(self):
        return {"split": self.clone(SplitData), "validation": self.clone(ValidatedBPMF)}

    @property
    def key(self) -> str:
        return self.split_keys.of(self.bpmf_model_id).model_dir

    def driver_options(self) -> dict[str, Any]:
        validation = self.split_keys.of(self.bpmf_model_id).validation
        chosen = self.store.read_json(validation)
        return super().driver_options() | {
            "sweeps": chosen["sweeps_chosen"],
            "burn_in": chosen["burn_in"],
            "validation": validation,
        }
