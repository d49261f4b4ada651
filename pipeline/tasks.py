"""The pipeline: BucketReady → DownloadedZip → SplitData → TrainedALS → EvaluatedRMSE.

Each task says what it needs, what it makes and how; the logic lives in the modules it calls.
Parameters that change a result appear in the output key; operational settings come from
luigi.cfg.
"""

from __future__ import annotations

import json
import logging
import operator
from urllib.parse import urljoin

import luigi
from luigi.util import inherits, requires

from pipeline.download import http_session, published_md5, verified_chunks
from pipeline.movielens import RELEASES, read_ratings, release
from pipeline.sparkjob import SparkJobTask
from pipeline.split import STRATEGIES, describe, split_ratings
from pipeline.store import Store

logger = logging.getLogger("luigi-interface")


@luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)
def _log_processing_time(task: luigi.Task, seconds: float) -> None:
    logger.info("%s finished in %.1f s", task, seconds)


def result_params(task: luigi.Task) -> dict:
    """The parameters that shape a task's result, for the record in its output."""
    return {name: getattr(task, name) for name, param in task.get_params() if param.significant}


class movielens(luigi.Config):
    base_url = luigi.Parameter(
        default="https://files.grouplens.org/datasets/movielens/",
        description="Where release zips (and their .md5 files) are downloaded from; a mirror works.",
    )


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
        rel = release(self.dataset)
        url = urljoin(movielens().base_url, rel.zip_name)
        with http_session() as session:
            expected_md5 = rel.md5 or published_md5(session, f"{url}.md5")
            Store.from_config().upload(self.key, verified_chunks(session, url, expected_md5, self._progress))

    def _progress(self, done: int, total: int | None) -> None:
        # Called once per chunk; the scheduler hears only whole-percent changes.
        if not total or self.set_progress_percentage is None:
            return
        percent = 100 * done // total
        if percent != getattr(self, "_percent_reported", None):
            self._percent_reported = percent
            self.set_progress_percentage(percent)
            self.set_status_message(f"downloaded {done / 1e6:.1f} of {total / 1e6:.1f} MB")


@requires(DownloadedZip)
class SplitData(luigi.Task):
    """The release's ratings split into train.parquet and test.parquet, with stats.json."""

    strategy = luigi.ChoiceParameter(choices=list(STRATEGIES), default="user_random", description="split strategy")
    test_fraction = luigi.NumericalParameter(
        default=0.2,
        var_type=float,
        min_value=0.0,
        max_value=1.0,
        left_op=operator.lt,
        right_op=operator.lt,
        description="share of the ratings that goes to test",
    )
    seed = luigi.IntParameter(default=42, description="seed of the split and of ALS")

    @property
    def key(self) -> str:
        return f"splits/{self.dataset}/{self.strategy}-{self.test_fraction!r}-seed{self.seed}"

    def output(self):
        return Store.from_config().directory(self.key)

    def run(self):
        store = Store.from_config()
        with store.open_zip(self.requires().key) as archive:
            ratings = read_ratings(archive, release(self.dataset))
        train, test = split_ratings(ratings, self.strategy, self.test_fraction, self.seed)
        store.clear(self.key)
        store.write_parquet(f"{self.key}/train.parquet", train)
        store.write_parquet(f"{self.key}/test.parquet", test)
        store.write_json(
            f"{self.key}/stats.json",
            {
                "params": result_params(self),
                "ratings": describe(ratings),
                "train": describe(train),
                "test": describe(test),
            },
        )
        store.mark_complete(self.key)


@requires(SplitData)
class TrainedALS(SparkJobTask):
    """Spark ALS fitted on the training ratings: user and item factors plus model.json."""

    job_script = "train_als.py"
    rank = luigi.NumericalParameter(
        default=10, var_type=int, min_value=1, max_value=1000, description="number of latent factors"
    )
    reg_param = luigi.NumericalParameter(
        default=0.1, var_type=float, min_value=0.0, max_value=float("inf"), description="ALS regularisation"
    )
    max_iter = luigi.NumericalParameter(
        default=10, var_type=int, min_value=1, max_value=1000, description="ALS iterations"
    )

    @property
    def key(self) -> str:
        split = self.requires()
        return f"models/{self.dataset}/{split.key.rsplit('/', 1)[1]}/als-rank{self.rank}-reg{self.reg_param!r}-iter{self.max_iter}"

    def output(self):
        return Store.from_config().directory(self.key)

    def app_options(self):
        return [
            *Store.from_config().job_args(),
            "--train",
            f"{self.requires().key}/train.parquet",
            "--output",
            self.key,
            "--rank",
            self.rank,
            "--reg-param",
            self.reg_param,
            "--max-iter",
            self.max_iter,
            "--seed",
            self.seed,
            "--params",
            json.dumps(result_params(self)),
        ]


@inherits(TrainedALS)
class EvaluatedRMSE(SparkJobTask):
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
        return [
            *Store.from_config().job_args(),
            "--test",
            f"{self.requires()['split'].key}/test.parquet",
            "--model",
            self.requires()["model"].key,
            "--output",
            self.key,
            "--rating-scale",
            low,
            high,
            "--params",
            json.dumps(result_params(self)),
        ]
