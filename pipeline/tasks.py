"""The pipeline: BucketReady → DownloadedZip → SplitData → (TunedALS →) TrainedALS → EvaluatedRMSE.

Each task says what it needs, what it makes and how; the logic lives in the modules it calls.
Parameters that change a result appear in the output key; operational settings come from
luigi.cfg.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import sys

import luigi
from luigi.util import inherits, requires

from pipeline import metrics
from pipeline.download import http_session, published_md5, verified_chunks
from pipeline.model import MODELS, load_model
from pipeline.movielens import RELEASES, read_movies, read_ratings, release, release_source
from pipeline.ranking import recommend
from pipeline.sparkjob import SparkJobTask
from pipeline.split import STRATEGIES, describe, split_ratings
from pipeline.store import Store, utc_now

logger = logging.getLogger("luigi-interface")


@luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)
def _log_processing_time(task: luigi.Task, seconds: float) -> None:
    logger.info("%s finished in %.1f s", task, seconds)


def show_progress(task: luigi.Task, percent: int | None, message: str) -> None:
    """Progress and status in the scheduler's UI; the worker installs these callbacks only
    while the task runs under it."""
    if task.set_status_message is not None:
        task.set_status_message(message)
    if percent is not None and task.set_progress_percentage is not None:
        task.set_progress_percentage(percent)


def job_flags(**options) -> list[str]:
    """`--name value` pairs for a Spark job's command line (underscores become dashes)."""
    return [item for name, value in options.items() for item in (f"--{name.replace('_', '-')}", str(value))]


def result_params(task: luigi.Task) -> dict:
    """The parameters that shape a task's result, for the record in its output (the tuning
    grid only where it was used)."""
    params = {name: getattr(task, name) for name, param in task.get_params() if param.significant}
    if params.get("tuned") is False:
        params = {name: value for name, value in params.items() if name not in GRID_OF}
    return params


# The valid values of the numeric parameters, checked when a task is created (from the command
# line or from code): a bad value fails before any work, with the parameter's name.
PARAMETER_RANGES = {
    "test_fraction": (lambda v: 0 < v < 1, "strictly between 0 and 1"),
    "rank": (lambda v: 1 <= v <= 10_000, "a whole number from 1 to 10000"),
    "reg_param": (lambda v: 0 <= v < math.inf, "a finite number, 0 or more"),
    "max_iter": (lambda v: 1 <= v <= 10_000, "a whole number from 1 to 10000"),
    "top_n": (lambda v: 1 <= v <= 1000, "a whole number from 1 to 1000"),
}
# The tuning grid: lists of values, each valid as above.
GRID_OF = {"ranks": "rank", "reg_params": "reg_param", "max_iters": "max_iter"}


class CheckedParameters:
    """Mixin for tasks: rejects out-of-range values of the parameters in PARAMETER_RANGES."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, (valid, expected) in PARAMETER_RANGES.items():
            value = getattr(self, name, None)
            if value is not None and not valid(value):
                raise ValueError(f"--{name.replace('_', '-')} must be {expected}, not {value}")
        for name, single in GRID_OF.items():
            values = getattr(self, name, None)
            valid, expected = PARAMETER_RANGES[single]
            if values is not None and (not values or not all(valid(v) for v in values)):
                raise ValueError(
                    f"--{name.replace('_', '-')} must be a non-empty list of values each {expected}, not {list(values)}"
                )


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
        show_progress(self, percent if total else None, message)
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
        show_progress(self, 10, f"reading the ratings of {self.requires().key}")
        with store.open_zip(self.requires().key) as archive:
            ratings, report = read_ratings(archive, release(self.dataset), self.skip_malformed)
        show_progress(self, 50, f"splitting {ratings.num_rows} ratings ({self.strategy})")
        train, test = split_ratings(ratings, self.strategy, self.test_fraction, self.seed)
        show_progress(self, 70, f"writing {train.num_rows} train and {test.num_rows} test ratings")
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


def _grid_id(task) -> str:
    grid = json.dumps([list(task.ranks), list(task.reg_params), list(task.max_iters)])
    return f"grid-{hashlib.sha256(grid.encode()).hexdigest()[:8]}"


@requires(SplitData)
class TunedALS(CheckedParameters, SparkJobTask):
    """The best hyper-parameters of a grid, judged on a validation split of the training
    ratings: tuning.json with every candidate's validation RMSE, the winner and, for biased
    ALS, its calibration weights."""

    job_script = "tune_als.py"
    model = luigi.ChoiceParameter(choices=MODELS, default="biased_als", description="biased_als or plain als")
    ranks = luigi.ListParameter(default=[16, 32, 64], description="ranks to try")
    reg_params = luigi.ListParameter(default=[0.05, 0.1, 0.15, 0.2, 0.3], description="regParams to try")
    max_iters = luigi.ListParameter(default=[15], description="iteration counts to try")

    @property
    def key(self) -> str:
        return f"tuning/{self.dataset}/{self.requires().split_id}/{self.model}-{_grid_id(self)}/tuning.json"

    def output(self):
        return Store.from_config().file(self.key)

    def app_options(self):
        low, high = release(self.dataset).rating_scale
        return Store.from_config().job_args() + job_flags(
            train=f"{self.requires().key}/train.parquet",
            output=self.key,
            model=self.model,
            ranks=json.dumps(list(self.ranks)),
            reg_params=json.dumps(list(self.reg_params)),
            max_iters=json.dumps(list(self.max_iters)),
            strategy=self.strategy,
            seed=self.seed,
            rating_min=low,
            rating_max=high,
            params=json.dumps(result_params(self)),
        )


@inherits(TunedALS)
class TrainedALS(CheckedParameters, SparkJobTask):
    """The model fitted on all the training ratings: user and item factor tables (with the
    biases) and model.json; with `tuned`, the hyper-parameters and calibration TunedALS found."""

    job_script = "train_als.py"
    rank = luigi.IntParameter(default=32, description="number of latent factors, at least 1")
    reg_param = luigi.FloatParameter(default=0.15, description="ALS regularisation, 0 or more")
    max_iter = luigi.IntParameter(default=15, description="ALS iterations, at least 1")
    tuned = luigi.BoolParameter(default=False, description="take rank, regParam and maxIter from TunedALS")

    def requires(self):
        deps = {"split": self.clone(SplitData)}
        if self.tuned:
            deps["tuning"] = self.clone(TunedALS)
        return deps

    @property
    def key(self) -> str:
        if self.tuned:
            model_id = f"{self.model}-tuned-{_grid_id(self)}"
        else:
            model_id = f"{self.model}-rank{self.rank}-reg{self.reg_param!r}-iter{self.max_iter}"
        return f"models/{self.dataset}/{self.requires()['split'].split_id}/{model_id}"

    def output(self):
        return Store.from_config().directory(self.key)

    def app_options(self):
        store = Store.from_config()
        low, high = release(self.dataset).rating_scale
        hyper = {"rank": self.rank, "reg_param": self.reg_param, "max_iter": self.max_iter}
        tuning = {}
        if self.tuned:
            best = store.read_json(self.requires()["tuning"].key)["best"]
            hyper = {name: best[name] for name in hyper}
            tuning = {"tuning": self.requires()["tuning"].key}
            if best["calibration"]:
                tuning["calibration"] = json.dumps(best["calibration"])
        return store.job_args() + job_flags(
            train=f"{self.requires()['split'].key}/train.parquet",
            output=self.key,
            model=self.model,
            **hyper,
            seed=self.seed,
            rating_min=low,
            rating_max=high,
            params=json.dumps(result_params(self)),
            **tuning,
        )


@inherits(TrainedALS)
class EvaluatedRMSE(CheckedParameters, luigi.Task):
    """The trained model scored on every test rating: metrics.json with its errors, the
    baselines' on the same rows, errors by activity and cold start, and ranking quality.
    Scored with numpy from the stored factor tables (pipeline.model): no Spark application,
    whose start alone would take longer than the scoring."""

    def requires(self):
        return {"model": self.clone(TrainedALS), "split": self.clone(SplitData)}

    @property
    def key(self) -> str:
        return self.requires()["model"].key.replace("models/", "evaluations/", 1) + "/metrics.json"

    def output(self):
        return Store.from_config().file(self.key)

    def run(self):
        store = Store.from_config()
        model_key, split = self.requires()["model"].key, self.requires()["split"].key
        show_progress(self, 5, f"reading {store.uri(split)}/test.parquet and the model at {store.uri(model_key)}")
        model = load_model(store, model_key)
        test = store.read_parquet(f"{split}/test.parquet")
        train = store.read_parquet(f"{split}/train.parquet")
        show_progress(self, 30, f"scoring {test.num_rows} test ratings")
        result = metrics.evaluate(model, train, test, self.seed)
        store.write_json(
            self.key,
            {
                **result,
                "model_type": self.model,
                "fallback": "unseen users and items: their bias is 0 and they have no factor term "
                "(plain ALS: the global mean)",
                "params": result_params(self),
                "model": store.uri(model_key),
                "test": store.uri(f"{split}/test.parquet"),
                "evaluated_at": utc_now(),
            },
        )
        show_progress(self, 100, f"RMSE {result['rmse']:.4f} on {result['n_test']} test ratings")


@inherits(TrainedALS)
class Recommendations(CheckedParameters, luigi.Task):
    """The top N movies each user has not rated, with their titles: one Parquet table (user,
    rank, item, title, predicted_rating) computed from the stored model with numpy, which
    pandas or any Parquet reader can load and serve."""

    top_n = luigi.IntParameter(default=10, description="movies per user, 1 to 1000")

    def requires(self):
        return {"model": self.clone(TrainedALS), "split": self.clone(SplitData), "zip": self.clone(DownloadedZip)}

    @property
    def key(self) -> str:
        return self.requires()["model"].key.replace("models/", "recommendations/", 1) + f"/top{self.top_n}.parquet"

    def output(self):
        return Store.from_config().file(self.key)

    def run(self):
        store = Store.from_config()
        deps = self.requires()
        model = load_model(store, deps["model"].key)
        train = store.read_parquet(f"{deps['split'].key}/train.parquet")
        with store.open_zip(deps["zip"].key) as archive:
            movies = read_movies(archive, release(self.dataset))
        top = recommend(model, train.column("user").to_numpy(), train.column("item").to_numpy(), self.top_n)
        titled = top.join(movies, "item", join_type="left outer").sort_by(
            [("user", "ascending"), ("rank", "ascending")]
        )
        store.write_parquet(self.key, titled.select(["user", "rank", "item", "title", "predicted_rating"]))


@inherits(TrainedALS)
class Report(CheckedParameters, luigi.Task):
    """report.html: a self-contained page of charts and tables about the evaluated model,
    its tuning if any, and every evaluation in the store at the time it was made."""

    def requires(self):
        deps = {"evaluation": self.clone(EvaluatedRMSE)}
        if self.tuned:
            deps["tuning"] = self.clone(TunedALS)
        return deps

    @property
    def key(self) -> str:
        return (
            self.requires()["evaluation"]
            .key.replace("evaluations/", "reports/", 1)
            .replace("metrics.json", "report.html")
        )

    def output(self):
        return Store.from_config().file(self.key)

    def run(self):
        from pipeline import report  # matplotlib is slow to import, and only this task needs it

        store = Store.from_config()
        evaluation = self.requires()["evaluation"].key
        tuning = store.read_json(self.requires()["tuning"].key) if self.tuned else None
        history = [
            report.history_row(key, store.read_json(key))
            for key, _ in store.list_files("evaluations/")
            if key.endswith("/metrics.json")
        ]
        title = f"{self.dataset}: {evaluation.split('/')[3]} on the {evaluation.split('/')[2]} split"
        page = report.render(title, store.read_json(evaluation), tuning, history, evaluation)
        store.write_bytes(self.key, page.encode())
