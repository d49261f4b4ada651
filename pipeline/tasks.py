"""The pipeline: BucketReady → DownloadedZip → SplitData → (TunedALS →) TrainedALS → EvaluatedRMSE,
the rating model, which with `tuned` also weighs the Bayesian model (ValidatedBPMF, TrainedBPMF)
against TunedALS's best; SplitData → TunedEASE → TrainedEASE, the ranking model; EvaluatedRanking
ranks both and popularity on the same users; Recommendations serves the ranking model (or
the rating model on request), and Report shows it all.

Each task says what it needs, what it makes and how; the logic lives in the library
(movielens_als) and the keys in pipeline.layout. Parameters that change a result appear in
the output key; operational settings come from luigi.cfg.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import sys
from collections.abc import Iterator

import luigi
import numpy as np
import pyarrow as pa
from luigi.parameter import ParameterVisibility
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from movielens_als import bpmf, ease, metrics, selection
from movielens_als import model as als_model
from movielens_als.model import MODELS, Model
from movielens_als.ranking import (
    Ranker,
    ease_ranker,
    explicit_ranker,
    popularity_ranker,
    recommend,
    with_titles,
)
from movielens_als.ratings import rating_arrays
from movielens_als.releases import RELEASES, read_fold, read_movies, read_ratings, release, release_source
from movielens_als.split import OFFICIAL, RATINGS_PARQUET, STRATEGIES, describe, split_ratings
from pipeline import layout, params
from pipeline.config import configured_store, movielens
from pipeline.download import http_session, published_md5, verified_chunks
from pipeline.sparkjob import SparkJobTask, job_flags
from pipeline.targets import RootTarget, directory_target, file_target
from storage import Store, utc_now

logger = logging.getLogger("luigi-interface")
GRID = ("ranks", "reg_params", "max_iters")
EASE_MODEL = "ease"
RECOMMENDERS = (EASE_MODEL, "explicit")


@contextlib.contextmanager
def terminal_bar(**options) -> Iterator[tqdm]:
    """A tqdm progress bar (rate and time left) on stderr while the block runs, with luigi's log
    lines printed above it; when stderr is not a terminal the bar is disabled, so that log files
    and cron's output carry no bars."""
    on_terminal = sys.stderr.isatty()
    with (
        tqdm(file=sys.stderr, disable=not on_terminal, dynamic_ncols=True, **options) as bar,
        logging_redirect_tqdm(loggers=[logger]) if on_terminal else contextlib.nullcontext(),
    ):
        yield bar


@luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)
def _log_processing_time(task: luigi.Task, seconds: float) -> None:
    logger.info("%s finished in %.1f s", task, seconds)


class StoreTask(luigi.Task):
    """A task whose output is one file, or one directory (`is_directory`), at `key` in the
    store."""

    is_directory = False

    @property
    def store(self) -> Store:
        # Read anew each time: luigi shares task instances by their parameters, not by the
        # configuration they were made under.
        return configured_store()

    @property
    def key(self) -> str:
        raise NotImplementedError

    def output(self):
        return (directory_target if self.is_directory else file_target)(self.store, self.key)

    def shaping_params(self) -> dict:
        """The parameters that shape this task's result: recorded in its output and the only
        ones luigid shows (the tuning grid only where it is used)."""
        unused = self.unused_params()
        return {
            name: getattr(self, name) for name, param in self.get_params() if param.significant and name not in unused
        }

    def unused_params(self) -> set[str]:
        """The parameters that, as this task is set, do not shape its result."""
        return set()

    def _get_param_visibilities(self):  # what luigi tells the scheduler to show of each parameter
        shaping = self.shaping_params()
        hidden = ParameterVisibility.HIDDEN.serialize()
        return {name: v if name in shaping else hidden for name, v in super()._get_param_visibilities().items()}

    def show_progress(self, percent: int | None, message: str) -> None:
        """Progress and status in the scheduler's UI; the worker installs these callbacks only
        while the task runs under it."""
        if self.set_status_message is not None:
            self.set_status_message(message)
        if percent is not None and self.set_progress_percentage is not None:
            self.set_progress_percentage(percent)


class OfRelease(StoreTask):
    """The parameters of a task about one release."""

    dataset = params.ChoiceParameter(
        choices=sorted(RELEASES), default="ml-latest-small", description="MovieLens release"
    )

    @property
    def ratings_hint(self) -> int:
        """How many ratings the release holds: a Spark job's driver is sized from it."""
        return release(self.dataset).ratings


class OfSplit(OfRelease):
    """... and about one split of it."""

    strategy = params.ChoiceParameter(
        choices=[*STRATEGIES, OFFICIAL],
        default="user_random",
        description="split strategy; official: the release's own fold, named by --fold",
    )
    fold = luigi.Parameter(
        default="", description="with --strategy official: the release's fold (ml-100k: u1…u5, ua, ub)"
    )
    test_fraction = params.FloatParameter(
        default=0.2, check=params.FRACTION, description="share of the ratings that go to test, in (0, 1)"
    )
    seed = params.IntParameter(default=42, description="seed of the split and of ALS")
    skip_malformed = params.BoolParameter(
        default=False, description="drop and count malformed or off-scale rating lines instead of failing"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        folds = release(self.dataset).folds
        if self.strategy == OFFICIAL and not folds:
            with_folds = ", ".join(name for name, r in RELEASES.items() if r.folds)
            raise ValueError(
                f"--strategy official: {self.dataset} ships no official folds (only {with_folds} does); "
                "choose another --strategy"
            )
        if self.strategy == OFFICIAL and self.fold not in folds:
            raise ValueError(f"--fold must be one of {', '.join(folds)} for {self.dataset}, not {self.fold!r}")
        if self.strategy != OFFICIAL and self.fold:
            raise ValueError(f"--fold {self.fold} applies only to --strategy official, not {self.strategy}")

    def unused_params(self) -> set[str]:
        return super().unused_params() | ({"test_fraction"} if self.strategy == OFFICIAL else {"fold"})

    @property
    def split_keys(self) -> layout.Run:
        split = layout.split_id(self.strategy, self.test_fraction, self.seed, self.skip_malformed, self.fold)
        return layout.Run(self.dataset, split)

    def job_flags(self, **options) -> list[str]:
        """A Spark job's flags: those every job takes (spark_jobs.common.job_parser), then `options`."""
        return job_flags(
            self.store,
            train=self.split_keys.train,
            output=self.key,
            seed=self.seed,
            params=json.dumps(self.shaping_params()),
            **options,
        )


class OfGrid(OfSplit):
    """... and about one kind of model and its tuning grid."""

    model = params.ChoiceParameter(choices=MODELS, default="biased_als", description="biased_als or plain als")
    ranks = params.ListParameter(default=[16, 32, 64], each=params.RANK, description="ranks to try")
    reg_params = params.ListParameter(
        default=[0.05, 0.1, 0.15, 0.2, 0.3], each=params.NON_NEGATIVE, description="regParams to try"
    )
    max_iters = params.ListParameter(default=[15], each=params.ITERATIONS, description="iteration counts to try")

    @property
    def grid_id(self) -> str:
        return layout.grid_id(self.ranks, self.reg_params, self.max_iters)

    @property
    def tuning_key(self) -> str:
        return self.split_keys.tuning(self.model, self.grid_id)

    def unused_params(self) -> set[str]:
        return super().unused_params() | (set() if getattr(self, "tuned", True) else set(GRID))


class OfModel(OfGrid):
    """... and about one trained model: its hyper-parameters, or the grid it was tuned on."""

    rank = params.IntParameter(default=32, check=params.RANK, description="number of latent factors")
    reg_param = params.FloatParameter(default=0.15, check=params.NON_NEGATIVE, description="ALS regularisation")
    max_iter = params.IntParameter(default=15, check=params.ITERATIONS, description="ALS iterations")
    tuned = params.BoolParameter(default=False, description="take rank, regParam and maxIter from TunedALS")

    @property
    def model_keys(self) -> layout.Run:
        if self.tuned:
            model = layout.tuned_model_id(self.model, self.grid_id)
        else:
            model = layout.model_id(self.model, self.rank, self.reg_param, self.max_iter)
        return dataclasses.replace(self.split_keys, model=model)


class OfSampler(luigi.Task):
    """The parameter of the Bayesian rating model (movielens_als.bpmf)."""

    bpmf_sweeps = params.IntParameter(
        default=bpmf.SWEEPS,
        check=params.SWEEPS,
        description="with --tuned: Gibbs sweeps of the Bayesian rating model weighed against TunedALS's best "
        "on validation (the first sixth burn-in); 0: ALS alone",
    )


class OfBayesian(OfSplit, OfSampler):
    """... the Bayesian rating model of one split."""

    @property
    def bpmf_keys(self) -> layout.Run:
        return dataclasses.replace(self.split_keys, model=layout.bpmf_model_id(self.bpmf_sweeps))

    def bpmf_flags(self, command: str, **options) -> list[str]:
        low, high = release(self.dataset).rating_scale
        return [command, *self.job_flags(sweeps=self.bpmf_sweeps, rating_min=low, rating_max=high, **options)]


class OfRatingChoice(OfModel, OfBayesian):
    """... and about the rating model evaluated: with `tuned`, TunedALS's best or the Bayesian
    model, whichever validation prefers (unless --bpmf-sweeps 0)."""

    @property
    def weighs_bpmf(self) -> bool:
        return self.tuned and self.bpmf_sweeps > 0

    @property
    def rating_keys(self) -> layout.Run:
        """The keys of the evaluation: those of the choice between the two models when one is made."""
        if not self.weighs_bpmf:
            return self.model_keys
        return dataclasses.replace(
            self.model_keys, model=layout.chosen_model_id(self.model_keys.model, self.bpmf_keys.model)
        )

    def unused_params(self) -> set[str]:
        return super().unused_params() | (set() if self.tuned else {"bpmf_sweeps"})


class OfRelevance(luigi.Task):
    """The parameter of a task that ranks: which test ratings count as relevant."""

    relevant_rating = params.FloatParameter(
        default=metrics.RELEVANT_RATING,
        check=params.RATING_THRESHOLD,
        description="a test rating at least this is relevant to the ranking metrics; "
        "at or below the release's lowest rating, every test rating is",
    )


class OfRanking(OfSplit, OfRelevance):
    """... and about the ranking model (movielens_als.ease) and its tuning grid."""

    l2s = params.ListParameter(
        default=[100, 200, 400, 800, 1600], each=params.POSITIVE, description="EASE: the λs to try, each above 0"
    )
    positive_ratings = params.ListParameter(
        default=[0.5, 3.5, 4.0],
        each=params.RATING_THRESHOLD,
        description="EASE: the lowest rating that counts as liked, to try (0.5: every rating)",
    )
    max_items = params.IntParameter(
        default=16384, check=params.MAX_ITEMS, description="EASE: model the items liked most often, this many at most"
    )
    tune_items = params.IntParameter(
        default=2048,
        check=params.MAX_ITEMS,
        description="EASE: TunedEASE searches on the items liked most often, this many at most, "
        "then settles its close calls on four times as many (at most --max-items)",
    )
    genre_weights = params.ListParameter(
        default=[0, 1, 3, 10, 30],
        each=params.NON_NEGATIVE,
        description="EASE: each genre (and decade) counts as this many users who like all its movies, to try (0: none)",
    )
    popularity_exponents = params.ListParameter(
        default=[0, -0.1, -0.2, -0.3],
        each=params.EXPONENT,
        description="EASE: scores times (positives + 1) to this power, to try (0: none; below 0 favours rarer items)",
    )

    @property
    def ease_grid_id(self) -> str:
        return layout.ease_grid_id(
            self.l2s,
            self.positive_ratings,
            self.max_items,
            self.relevant_rating,
            min(self.tune_items, self.max_items),
            self.genre_weights,
            self.popularity_exponents,
        )

    @property
    def ease_tuning_key(self) -> str:
        return self.split_keys.tuning(EASE_MODEL, self.ease_grid_id)

    @property
    def ease_keys(self) -> layout.Run:
        return dataclasses.replace(self.split_keys, model=layout.tuned_model_id(EASE_MODEL, self.ease_grid_id))


RANKING_PARAMS = frozenset(set(OfRanking.get_param_names()) - set(OfSplit.get_param_names()))
RATING_MODEL_PARAMS = frozenset(set(OfModel.get_param_names()) - set(OfSplit.get_param_names()))


class BucketReady(StoreTask):
    """The store's bucket (S3) or root folder (local) exists."""

    def output(self):
        return RootTarget(self.store)

    def run(self):
        self.store.create_root()


class DownloadedZip(OfRelease):
    """A MovieLens release zip in the store, its MD5 verified before it is stored."""

    def requires(self):
        return BucketReady()

    @property
    def key(self) -> str:
        return layout.download(self.dataset)

    def run(self):
        config = movielens()
        source = release_source(self.dataset, config.base_url, config.urls, config.md5s)
        with http_session() as session, terminal_bar(desc=self.dataset, unit="B", unit_scale=True) as bar:
            expected_md5 = source.md5 or published_md5(session, source.url, self.dataset)
            progress = functools.partial(self._progress, bar)
            chunks = verified_chunks(session, source.url, expected_md5, progress, config.download_timeout)
            self.store.upload(self.key, chunks)

    def _progress(self, bar: tqdm, done: int, total: int | None) -> None:
        # Called once per chunk: the bar redraws at most ten times a second, and the scheduler
        # hears only whole-percent changes.
        bar.total = total
        bar.update(done - bar.n)
        percent = 100 * done // total if total else done >> 24  # without a size: every 16 MB
        if percent == getattr(self, "_percent_reported", None):
            return
        self._percent_reported = percent
        message = f"downloaded {done / 1e6:.1f}" + (f" of {total / 1e6:.1f} MB" if total else " MB")
        self.show_progress(percent if total else None, message)


class SplitData(OfSplit):
    """The release's ratings split into train.parquet and test.parquet, with stats.json."""

    is_directory = True

    def requires(self):
        return self.clone(DownloadedZip)

    @property
    def key(self) -> str:
        return self.split_keys.split_dir

    def run(self):
        keys, download = self.split_keys, layout.download(self.dataset)
        self.show_progress(10, f"reading the ratings of {self.store.uri(download)}")
        with self.store.open_zip(download) as archive:
            if self.strategy == OFFICIAL:
                train, test, report = read_fold(archive, release(self.dataset), self.fold, self.skip_malformed)
                ratings = pa.concat_tables([train, test])
            else:
                ratings, report = read_ratings(archive, release(self.dataset), self.skip_malformed)
                self.show_progress(50, f"splitting {ratings.num_rows} ratings ({self.strategy})")
                train, test = split_ratings(ratings, self.strategy, self.test_fraction, self.seed)
        self.show_progress(70, f"writing {train.num_rows} train and {test.num_rows} test ratings")
        self.store.write_parquet(keys.train, train, **RATINGS_PARQUET)
        self.store.write_parquet(keys.test, test, **RATINGS_PARQUET)
        self.store.write_json(
            keys.stats,
            {
                "params": self.shaping_params(),
                "ratings": describe(ratings),
                "train": describe(train),
                "test": describe(test),
                "read": dataclasses.asdict(report),
            },
        )
        self.store.mark_complete(self.key)


class TunedALS(OfGrid, SparkJobTask):
    """The best hyper-parameters of a grid, judged on a validation split of the training
    ratings: tuning.json with every candidate's validation RMSE, the winner and, for biased
    ALS, its calibration weights."""

    job_script = "tune_als.py"
    single_threaded_blas = True

    def requires(self):
        return self.clone(SplitData)

    @property
    def key(self) -> str:
        return self.tuning_key

    def app_options(self):
        low, high = release(self.dataset).rating_scale
        return self.job_flags(
            model=self.model,
            ranks=json.dumps(list(self.ranks)),
            reg_params=json.dumps(list(self.reg_params)),
            max_iters=json.dumps(list(self.max_iters)),
            strategy=self.strategy,
            rating_min=low,
            rating_max=high,
        )


class TrainedALS(OfModel, SparkJobTask):
    """The model fitted on all the training ratings: user and item factor tables (with the
    biases) and model.json; with `tuned`, the hyper-parameters and calibration TunedALS found."""

    is_directory = True
    job_script = "train_als.py"
    single_threaded_blas = True

    def requires(self):
        deps = {"split": self.clone(SplitData)}
        if self.tuned:
            deps["tuning"] = self.clone(TunedALS)
        return deps

    @property
    def key(self) -> str:
        return self.model_keys.model_dir

    def app_options(self):
        low, high = release(self.dataset).rating_scale
        hyper = {"rank": self.rank, "reg_param": self.reg_param, "max_iter": self.max_iter}
        tuning = {}
        if self.tuned:
            best = self.store.read_json(self.tuning_key)["best"]
            hyper = {name: best[name] for name in hyper}
            tuning = {"tuning": self.tuning_key}
            if best["calibration"]:
                tuning["calibration"] = json.dumps(best["calibration"])
        return self.job_flags(model=self.model, **hyper, rating_min=low, rating_max=high, **tuning)


class BayesianJob(OfBayesian, SparkJobTask):
    """A run of the Bayesian model's driver (spark_jobs/bpmf_jobs.py) on one split."""

    job_script = "bpmf_jobs.py"
    starts_spark_context = False
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


class ValidatedBPMF(BayesianJob):
    """The Bayesian rating model sampled on the training ratings less TunedALS's validation carve
    and scored on it: validation.json with its validation RMSE and how that fell with the sweeps."""

    @property
    def key(self) -> str:
        return self.bpmf_keys.validation

    def app_options(self):
        return self.bpmf_flags("validate", strategy=self.strategy)


class TrainedBPMF(BayesianJob):
    """The Bayesian rating model sampled on all the training ratings: the same factor tables
    and model.json as TrainedALS's, so every scorer reads it alike."""

    is_directory = True

    @property
    def key(self) -> str:
        return self.bpmf_keys.model_dir

    def app_options(self):
        return self.bpmf_flags("train")


def load_model(store: Store, keys: layout.Run) -> Model:
    """The model stored at `keys`, for scoring with numpy."""
    return als_model.from_files(store.read_files(keys.model_dir, als_model.FILES))


class EvaluatedRMSE(OfRatingChoice, OfRelevance):
    """The trained model scored on every test rating: metrics.json with its errors, the
    baselines' on the same rows, errors by activity and cold start, and ranking quality.
    With `tuned`, the model scored is TunedALS's best or the Bayesian model (ValidatedBPMF,
    TrainedBPMF), whichever has the lower RMSE on the same validation ratings; the choice is
    recorded. Scored with numpy from the stored factor tables: no Spark application, whose
    start alone would take longer than the scoring."""

    def requires(self):
        deps = {"model": self.clone(TrainedALS), "split": self.clone(SplitData)}
        if self.weighs_bpmf:
            deps |= {"bpmf_validation": self.clone(ValidatedBPMF), "bpmf": self.clone(TrainedBPMF)}
        return deps

    @property
    def key(self) -> str:
        return self.rating_keys.metrics_judged_by(self.relevant_rating)

    def run(self):
        keys, model_type, choice = self.model_keys, self.model, None
        if self.weighs_bpmf:
            tuning, validation = self.store.read_json(self.tuning_key), self.store.read_json(self.bpmf_keys.validation)
            choice = selection.choose_rating_model(
                {keys.model: tuning["best"][tuning["selected_by"]], self.bpmf_keys.model: validation["validation_rmse"]}
            )
            if choice["chosen"] == self.bpmf_keys.model:
                keys, model_type = self.bpmf_keys, "bpmf"
        self.show_progress(5, f"reading {self.store.uri(keys.test)} and the model at {self.store.uri(keys.model_dir)}")
        model = load_model(self.store, keys)
        test = self.store.read_parquet(keys.test)
        train = self.store.read_parquet(keys.train)
        self.show_progress(30, f"scoring {test.num_rows} test ratings")
        # TrainedALS's model keeps the damped biases of all the training ratings; BPMF its own.
        result = metrics.evaluate(
            model, train, test, self.seed, self.relevant_rating, biases_of_train=model_type != "bpmf"
        )
        self.store.write_json(
            self.key,
            {
                **result,
                "model_type": model_type,
                "fallback": "unseen users and items: their bias is 0 and they have no factor term "
                "(plain ALS: the global mean)",
                "params": self.shaping_params(),
                **({"choice": choice} if choice else {}),
                "model": self.store.uri(keys.model_dir),
                "test": self.store.uri(keys.test),
                "evaluated_at": utc_now(),
            },
        )
        self.show_progress(100, f"RMSE {result['rmse']:.4f} on {result['n_test']} test ratings")


class TunedEASE(OfRanking, SparkJobTask):
    """The ranking model's hyper-parameters (the λ and the lowest liked rating), judged by
    NDCG at 10 on a validation split carved from the training ratings: tuning.json with every
    candidate's validation metrics and the winner."""

    job_script = "ease_jobs.py"
    starts_spark_context = False

    def requires(self):
        return {"split": self.clone(SplitData), "zip": self.clone(DownloadedZip)}

    @property
    def key(self) -> str:
        return self.ease_tuning_key

    def app_options(self):
        return [
            "tune",
            *self.job_flags(
                l2s=json.dumps(list(self.l2s)),
                positive_ratings=json.dumps(list(self.positive_ratings)),
                genre_weights=json.dumps(list(self.genre_weights)),
                popularity_exponents=json.dumps(list(self.popularity_exponents)),
                relevant_rating=self.relevant_rating,
                max_items=self.max_items,
                tune_items=self.tune_items,
                strategy=self.strategy,
                movies=layout.download(self.dataset),
                dataset=self.dataset,
            ),
        ]


class TrainedEASE(OfRanking, SparkJobTask):
    """The ranking model fitted on all the training ratings with the hyper-parameters
    TunedEASE chose: items.parquet, weights.npy (EASE's item x item weights) and model.json."""

    is_directory = True
    job_script = "ease_jobs.py"
    starts_spark_context = False

    def requires(self):
        return {"split": self.clone(SplitData), "zip": self.clone(DownloadedZip), "tuning": self.clone(TunedEASE)}

    @property
    def key(self) -> str:
        return self.ease_keys.model_dir

    def app_options(self):
        best = self.store.read_json(self.ease_tuning_key)["best"]
        return [
            "train",
            *self.job_flags(
                l2=best["l2"],
                positive_rating=best["positive_rating"],
                genre_weight=best["genre_weight"],
                popularity_exponent=best["popularity_exponent"],
                max_items=self.max_items,
                tuning=self.ease_tuning_key,
                movies=layout.download(self.dataset),
                dataset=self.dataset,
            ),
        ]


def load_ease(store: Store, keys: layout.Run) -> ease.Ease:
    """The EASE model stored at `keys`."""
    return ease.from_files(store.read_files(keys.model_dir, ease.FILES))


class EvaluatedRanking(OfModel, OfRanking):
    """Top-10 quality of the ranking model, the rating model and the most popular items on
    the same test users (NDCG, precision, recall, MAP, catalogue coverage, mean popularity
    of what is served): ranking-vs-<rating model>.json beside the ranking model's key."""

    def requires(self):
        return {"ease": self.clone(TrainedEASE), "explicit": self.clone(TrainedALS), "split": self.clone(SplitData)}

    @property
    def key(self) -> str:
        return self.ease_keys.ranking(self.model_keys.model)

    def run(self):
        keys = self.model_keys
        self.show_progress(5, "reading the split and both models")
        train, test = self.store.read_parquet(keys.train), self.store.read_parquet(keys.test)
        ranking_model, rating_model = load_ease(self.store, self.ease_keys), load_model(self.store, keys)
        judge = metrics.Judge(
            rating_arrays(train), rating_arrays(test), seed=self.seed, relevant_rating=self.relevant_rating
        )
        rankers: dict[str, Ranker] = {
            EASE_MODEL: ease_ranker(ranking_model, judge.seen),
            "explicit": explicit_ranker(rating_model),
            "popularity": popularity_ranker(rating_model.items.ids, rating_model.items.count, judge.reach),
        }
        self.show_progress(20, f"ranking the top {metrics.RANKING_K} of three recommenders")
        result = judge.header | {name: judge(ranker) for name, ranker in rankers.items()}
        labels = {
            EASE_MODEL: f"EASE (λ {ranking_model.l2:g}, ratings ≥ {ranking_model.positive_rating:g}, "
            f"{len(ranking_model.items)} items)",
            "explicit": keys.model,
            "popularity": "most popular unseen",
        }
        self.store.write_json(
            self.key,
            {
                **{name: value for name, value in result.items() if name not in rankers},
                "served": EASE_MODEL,
                "models": {name: {"label": labels[name], **(result[name] or {})} for name in rankers},
                "rating_model": self.store.uri(keys.model_dir),
                "ranking_model": self.store.uri(self.ease_keys.model_dir),
                "params": self.shaping_params(),
                "evaluated_at": utc_now(),
            },
        )
        served = result[EASE_MODEL]
        self.show_progress(
            100, f"NDCG@{result['k']} {served['ndcg']:.4f} on {result['users']} users" if served else "no users to rank"
        )


class Recommendations(OfModel, OfRanking):
    """The top N movies each user has not rated, with their titles: one Parquet table (user,
    rank, item, title, score) from the ranking model (EASE's score) or, with `--recommender
    explicit`, the rating model (the predicted rating), which pandas or any Parquet reader
    can load and serve."""

    top_n = params.IntParameter(default=10, check=params.TOP_N, description="movies per user")
    recommender = params.ChoiceParameter(
        choices=RECOMMENDERS, default=EASE_MODEL, description="ease (the ranking model) or explicit (the rating model)"
    )

    def unused_params(self) -> set[str]:
        if self.recommender == EASE_MODEL:
            return set(RATING_MODEL_PARAMS)
        return super().unused_params() | RANKING_PARAMS

    def requires(self):
        model = self.clone(TrainedEASE) if self.recommender == EASE_MODEL else self.clone(TrainedALS)
        return {"model": model, "split": self.clone(SplitData), "zip": self.clone(DownloadedZip)}

    @property
    def key(self) -> str:
        keys = self.ease_keys if self.recommender == EASE_MODEL else self.model_keys
        return keys.recommendations(self.top_n)

    def run(self):
        train = rating_arrays(self.store.read_parquet(self.split_keys.train))
        if self.recommender == EASE_MODEL:
            ranker = ease_ranker(load_ease(self.store, self.ease_keys), train)
        else:
            ranker = explicit_ranker(load_model(self.store, self.model_keys))
        with self.store.open_zip(layout.download(self.dataset)) as archive:
            movies = read_movies(archive, release(self.dataset))
        self.show_progress(30, f"ranking the unseen items of every user ({self.recommender})")
        users = np.unique(train.users)
        with terminal_bar(desc="users ranked", total=len(users), unit=" users") as bar:

            def scores(block: np.ndarray) -> np.ndarray:
                block_scores = ranker.scores(block)
                bar.update(len(block))
                return block_scores

            top = recommend(dataclasses.replace(ranker, scores=scores), users, train.users, train.items, self.top_n)
        self.store.write_parquet(self.key, with_titles(top, movies))


class Report(OfRatingChoice, OfRanking):
    """report.html: a self-contained page of charts and tables about the evaluated rating
    model, its tuning if any, the top-10 quality of the recommenders (EvaluatedRanking), and
    every evaluation in the store at the time it was made."""

    def requires(self):
        deps = {"evaluation": self.clone(EvaluatedRMSE), "ranking": self.clone(EvaluatedRanking)}
        if self.tuned:
            deps["tuning"] = self.clone(TunedALS)
        return deps

    @property
    def key(self) -> str:
        return self.rating_keys.report(self.ease_keys.model)

    def run(self):
        from movielens_als import report  # matplotlib is slow to import, and only this task needs it

        keys = self.rating_keys
        tuning = self.store.read_json(self.tuning_key) if self.tuned else None
        history = []
        for key, _ in self.store.list_files("evaluations/"):
            if key.endswith("/metrics.json"):
                run = layout.Run.parse(key)
                history.append(report.history_row(key, run.dataset, run.split, run.model, self.store.read_json(key)))
        title = f"{self.dataset}: {keys.model} on the {keys.split} split"
        ranking = self.store.read_json(self.ease_keys.ranking(self.model_keys.model))
        metrics_key = keys.metrics_judged_by(self.relevant_rating)
        page = report.render(title, self.store.read_json(metrics_key), tuning, history, metrics_key, ranking=ranking)
        self.store.write_bytes(self.key, page.encode())
