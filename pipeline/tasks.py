"""The pipeline: BucketReady → DownloadedZip → SplitData → TrainedALS → EvaluatedRMSE.

Each task says what it needs, what it makes and how; the logic lives in the modules it calls.
Parameters that change a result appear in the output key; operational settings come from
luigi.cfg.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys

import luigi
from luigi.util import inherits, requires

from pipeline.download import http_session, published_md5, verified_chunks
from pipeline.movielens import RELEASES, read_ratings, release, release_source
from pipeline.sparkjob import SparkJobTask
from pipeline.split import STRATEGIES, describe, split_ratings
from pipeline.store import Store

logger = logging.getLogger("luigi-interface")


@luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)
def _log_processing_time(task: luigi.Task, seconds: float) -> None:
    logger.info("%s finished in %.1f s", task, seconds)


def job_flags(**options) -> list[str]:
    """`--name value` pairs for a Spark job's command line (underscores become dashes)."""
    return [item for name, value in options.items() for item in (f"--{name.replace('_', '-')}", str(value))]


def result_params(task: luigi.Task) -> dict:
    """The parameters that shape a task's result, for the record in its output."""
    return {name: getattr(task, name) for name, param in task.get_params() if param.significant}


# The valid values of the numeric parameters, checked when a task is created (from the command
# line or from code): a bad value fails before any work, with the parameter's name.
PARAMETER_RANGES = {
    "test_fraction": (lambda v: 0 < v < 1, "strictly between 0 and 1"),
    "rank": (lambda v: 1 <= v <= 10_000, "a whole number from 1 to 10000"),
    "reg_param": (lambda v: 0 <= v < math.inf, "a finite number, 0 or more"),
    "max_iter": (lambda v: 1 <= v <= 10_000, "a whole number from 1 to 10000"),
}


class CheckedParameters:
    """Mixin for tasks: rejects out-of-range values of the parameters in PARAMETER_RANGES."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, (valid, expected) in PARAMETER_RANGES.items():
            value = getattr(self, name, None)
            if value is not None and not valid(value):
                raise ValueError(f"--{name.replace('_', '-')} must be {expected}, not {value}")


class movielens(luigi.Config):
    base_url = luigi.Parameter(
        default="https://files.grouplens.org/datasets/movielens/",
        description="Where release zips (and their .md5 files) are downloaded from; a mirror works.",
    )
    urls = luigi.DictParameter(
        default={}, description='Per-release zip URLs, e.g. {"ml-25m": "http://host/ml-25m.zip"}.'
    )
    md5s = luigi.DictParameter(default={}, description='Per-release MD5 checksums, e.g. {"ml-25m": "6b51..."}.')
    download_timeout = luigi.FloatParameter(default=7200, description="Seconds a download may take, resumes included.")


class BucketReady(luigi.Task):
    """The store's bucket (S3) or root folder (local) exists."""

    def output(self):
        return Store.from_config().root_target()

    def run(self):
        Store.from_config().create_root()


@requires(BucketReady)
class DownloadedZip(luigi.Task):
    """A MovieLens release zip in the store, its MD5 verified before it is stored."""

    dataset = luigi.ChoiceParameter(
        choices=sorted(RELEASES), default="ml-latest-small", description="MovieLens release"
    )

    @property
    def key(self) -> str:
        return f"downloads/{release(self.dataset).zip_name}"

    def output(self):
        return Store.from_config().file(self.key)

    def run(self):
        config = movielens()
        source = release_source(self.dataset, config.base_url, config.urls, config.md5s)
        with http_session() as session:
            expected_md5 = source.md5 or published_md5(session, f"{source.url}.md5")
            chunks = verified_chunks(session, source.url, expected_md5, self._progress, config.download_timeout)
            Store.from_config().upload(self.key, chunks)
        if sys.stderr.isatty():
            print(file=sys.stderr)  # ends the progress line

    def _progress(self, done: int, total: int | None) -> None:
        # Called once per chunk; the scheduler and the terminal hear only whole-percent changes.
        percent = 100 * done // total if total else done >> 24  # without a size: every 16 MB
        if percent == getattr(self, "_percent_reported", None):
            return
        self._percent_reported = percent
        message = f"downloaded {done / 1e6:.1f}" + (f" of {total / 1e6:.1f} MB" if total else " MB")
        if self.set_progress_percentage is not None and total:
            self.set_progress_percentage(percent)
        if self.set_status_message is not None:
            self.set_status_message(message)
        if sys.stderr.isatty():
            print(f"\r{self.dataset}: {message}", end="", file=sys.stderr, flush=True)


@requires(DownloadedZip)
class SplitData(CheckedParameters, luigi.Task):
    """The release's ratings split into train.parquet and test.parquet, with stats.json."""

    strategy = luigi.ChoiceParameter(choices=list(STRATEGIES), default="user_random", description="split strategy")
    test_fraction = luigi.FloatParameter(default=0.2, description="share of the ratings that go to test, in (0, 1)")
    seed = luigi.IntParameter(default=42, description="seed of the split and of ALS")
    skip_malformed = luigi.BoolParameter(
        default=False, description="drop and count malformed or off-scale rating lines instead of failing"
    )

    @property
    def split_id(self) -> str:
        lenient = "-skip-malformed" if self.skip_malformed else ""
        return f"{self.strategy}-{self.test_fraction!r}-seed{self.seed}{lenient}"

    @property
    def key(self) -> str:
        return f"splits/{self.dataset}/{self.split_id}"

    def output(self):
        return Store.from_config().directory(self.key)

    def run(self):
        store = Store.from_config()
        with store.open_zip(self.requires().key) as archive:
            ratings, report = read_ratings(archive, release(self.dataset), self.skip_malformed)
        train, test = split_ratings(ratings, self.strategy, self.test_fraction, self.seed)
        store.write_parquet(f"{self.key}/train.parquet", train)
        store.write_parquet(f"{self.key}/test.parquet", test)
        store.write_json(
            f"{self.key}/stats.json",
            {
                "params": result_params(self),
                "ratings": describe(ratings),
                "train": describe(train),
                "test": describe(test),
                "read": dataclasses.asdict(report),
            },
        )
        store.mark_complete(self.key)


@requires(SplitData)
class TrainedALS(CheckedParameters, SparkJobTask):
    """Spark ALS fitted on the training ratings: user and item factors plus model.json."""

    job_script = "train_als.py"
    rank = luigi.IntParameter(default=10, description="number of latent factors, at least 1")
    reg_param = luigi.FloatParameter(default=0.1, description="ALS regularisation, 0 or more")
    max_iter = luigi.IntParameter(default=10, description="ALS iterations, at least 1")

    @property
    def key(self) -> str:
        model_id = f"als-rank{self.rank}-reg{self.reg_param!r}-iter{self.max_iter}"
        return f"models/{self.dataset}/{self.requires().split_id}/{model_id}"

    def output(self):
        return Store.from_config().directory(self.key)

    def app_options(self):
        return Store.from_config().job_args() + job_flags(
            train=f"{self.requires().key}/train.parquet",
            output=self.key,
            rank=self.rank,
            reg_param=self.reg_param,
            max_iter=self.max_iter,
            seed=self.seed,
            params=json.dumps(result_params(self)),
        )


@inherits(TrainedALS)
class EvaluatedRMSE(CheckedParameters, SparkJobTask):
    """The trained model scored on every test rating: metrics.json with RMSE, MAE, coverage
    and the global-mean baseline on the same rows."""

    job_script = "evaluate_als.py"

    def requires(self):
        return {"model": self.clone(TrainedALS), "split": self.clone(SplitData)}

    @property
    def key(self) -> str:
        return self.requires()["model"].key.replace("models/", "evaluations/", 1) + "/metrics.json"

    def output(self):
        return Store.from_config().file(self.key)

    def app_options(self):
        low, high = release(self.dataset).rating_scale
        return Store.from_config().job_args() + job_flags(
            test=f"{self.requires()['split'].key}/test.parquet",
            model=self.requires()["model"].key,
            output=self.key,
            rating_min=low,
            rating_max=high,
            params=json.dumps(result_params(self)),
        )
