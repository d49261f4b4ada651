"""Judging and serving: EvaluatedRMSE (the rating model's errors), EvaluatedRanking (the top 10
of the ranking model, the rating model and popularity), Recommendations (every user's top N)
and Report (all of it in one page). Each scores with numpy from the stored models: no Spark
application, whose start alone would take longer than the scoring."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from movielens_als import ease, metrics, selection
from movielens_als import model as rating_model
from movielens_als.ranking import (
    Ranker,
    ease_ranker,
    explicit_ranker,
    popularity_ranker,
    recommend,
    with_titles,
)
from movielens_als.ratings import Ratings, rating_arrays
from movielens_als.releases import read_movies, release
from pipeline import layout
from pipeline.base import StoreTask, terminal_bar
from pipeline.data import DownloadedZip, SplitData
from pipeline.groups import EASE_MODEL, EaseParams, RatingModelParams, RelevanceParams, SplitParams
from pipeline.params import TOP_N, ChoiceParameter, IntParameter
from pipeline.ranking import TrainedEASE
from pipeline.rating import TrainedALS, TrainedBPMF, TunedALS, ValidatedBPMF
from storage import Store, utc_now

RECOMMENDERS = (EASE_MODEL, "explicit")
BPMF = "bpmf"


@dataclasses.dataclass(frozen=True)
class RatingModel:
    """The rating model a task judges or serves: its keys, its kind, and with `--tuned` the
    choice between TunedALS's best and the Bayesian model that made it the one."""

    keys: layout.Run
    kind: str
    choice: dict | None = None

    def load(self, store: Store) -> rating_model.Model:
        return rating_model.from_files(store.read_files(self.keys.model_dir, rating_model.FILES))


def load_ease(store: Store, keys: layout.Run) -> ease.Ease:
    return ease.from_files(store.read_files(keys.model_dir, ease.FILES))


class OfRatingModel(SplitParams, RatingModelParams, StoreTask):
    """A task about the rating model: TrainedALS's, or with `tuned` TunedALS's best or the
    Bayesian model, whichever has the lower RMSE on the same validation ratings. The choice
    needs only the two validations; the chosen model alone is then trained, a dependency the
    task's run yields (`trained_rating_model`), so the other is never fitted on everything."""

    def rating_model_requires(self) -> dict:
        if not self.weighs_bpmf:
            return {"model": self.clone(TrainedALS), "split": self.clone(SplitData)}
        return {
            "tuning": self.clone(TunedALS),
            "bpmf_validation": self.clone(ValidatedBPMF),
            "split": self.clone(SplitData),
        }

    def trained_rating_model(self) -> StoreTask:
        """The task that fits the rating model this task judges or serves on all the training
        ratings: run() yields it, since with `tuned` which one it is is known only once both
        validations are stored."""
        if self.weighs_bpmf and self.rating_model().kind == BPMF:
            return self.clone(TrainedBPMF)
        return self.clone(TrainedALS)

    def rating_model(self) -> RatingModel:
        als = RatingModel(self.split_keys.of(self.als_model_id), self.model)
        if not self.weighs_bpmf:
            return als
        bpmf = self.split_keys.of(self.bpmf_model_id)
        tuning = self.store.read_json(self.split_keys.tuning(self.als_tuning_id))
        validation = self.store.read_json(bpmf.validation)
        choice = selection.choose_rating_model(
            {als.keys.model: tuning["best"][tuning["selected_by"]], bpmf.model: validation["validation_rmse"]}
        )
        if choice["chosen"] == bpmf.model:
            return RatingModel(bpmf, BPMF, choice)
        return dataclasses.replace(als, choice=choice)


class EvaluatedRMSE(OfRatingModel, RelevanceParams):
    """The trained model scored on every test rating: metrics.json with its errors, the
    baselines' on the same rows, errors by activity and cold start, and ranking quality.
    With `tuned`, the model scored is the one validation chose (OfRatingModel); the choice is
    recorded."""

    def requires(self):
        return self.rating_model_requires()

    @property
    def key(self) -> str:
        return self.split_keys.of(self.rating_model_id).metrics_judged_by(self.relevant_rating)

    def run(self):
        yield self.trained_rating_model()
        chosen = self.rating_model()
        keys = chosen.keys
        self.show_progress(5, f"reading {self.store.uri(keys.test)} and the model at {self.store.uri(keys.model_dir)}")
        model = chosen.load(self.store)
        test = self.store.read_parquet(keys.test)
        train = self.store.read_parquet(keys.train)
        self.show_progress(30, f"scoring {test.num_rows} test ratings")
        # TrainedALS's model keeps the damped biases of all the training ratings; BPMF its own.
        result = metrics.evaluate(
            model, train, test, self.seed, self.relevant_rating, biases_of_train=chosen.kind != BPMF
        )
        self.store.write_json(
            self.key,
            {
                **result,
                "model_type": chosen.kind,
                "fallback": "unseen users and items: their bias is 0 and they have no factor term "
                "(plain ALS: the global mean)",
                "params": self.shaping_params(),
                **({"choice": chosen.choice} if chosen.choice else {}),
                "model": self.store.uri(keys.model_dir),
                "test": self.store.uri(keys.test),
                "evaluated_at": utc_now(),
            },
        )
        self.show_progress(100, f"RMSE {result['rmse']:.4f} on {result['n_test']} test ratings")


class EvaluatedRanking(OfRatingModel, EaseParams):
    """Top-10 quality of the ranking model, the rating model (the one EvaluatedRMSE judges) and
    the most popular items on the same test users (NDCG, precision, recall, MAP, catalogue
    coverage, mean popularity of what is served): ranking-vs-<rating model>.json beside the
    ranking model's key."""

    def requires(self):
        return self.rating_model_requires() | {"ease": self.clone(TrainedEASE)}

    @property
    def key(self) -> str:
        return self.split_keys.of(self.ease_model_id).ranking(self.rating_model_id)

    def run(self):
        yield self.trained_rating_model()
        chosen, ease_keys = self.rating_model(), self.split_keys.of(self.ease_model_id)
        self.show_progress(5, "reading the split and both models")
        train, test = self.store.read_parquet(chosen.keys.train), self.store.read_parquet(chosen.keys.test)
        ranking_model, explicit = load_ease(self.store, ease_keys), chosen.load(self.store)
        judge = metrics.Judge(
            rating_arrays(train), rating_arrays(test), seed=self.seed, relevant_rating=self.relevant_rating
        )
        rankers: dict[str, Ranker] = {
            EASE_MODEL: ease_ranker(ranking_model, judge.seen),
            "explicit": explicit_ranker(explicit),
            "popularity": popularity_ranker(explicit.items.ids, explicit.items.count, judge.reach),
        }
        self.show_progress(20, f"ranking the top {metrics.RANKING_K} of three recommenders")
        result = judge.header | {name: judge(ranker) for name, ranker in rankers.items()}
        labels = {
            EASE_MODEL: f"EASE (λ {ranking_model.l2:g}, ratings ≥ {ranking_model.positive_rating:g}, "
            f"{len(ranking_model.items)} items)",
            "explicit": chosen.keys.model,
            "popularity": "most popular unseen",
        }
        self.store.write_json(
            self.key,
            {
                **{name: value for name, value in result.items() if name not in rankers},
                "served": EASE_MODEL,
                "models": {name: {"label": labels[name], **(result[name] or {})} for name in rankers},
                "rating_model": self.store.uri(chosen.keys.model_dir),
                "ranking_model": self.store.uri(ease_keys.model_dir),
                "params": self.shaping_params(),
                "evaluated_at": utc_now(),
            },
        )
        served = result[EASE_MODEL]
        self.show_progress(
            100, f"NDCG@{result['k']} {served['ndcg']:.4f} on {result['users']} users" if served else "no users to rank"
        )


class Recommendations(OfRatingModel, EaseParams):
    """The top N movies each user has not rated, with their titles: one Parquet table (user,
    rank, item, title, score) from the ranking model (EASE's score) or, with `--recommender
    explicit`, the rating model EvaluatedRMSE judges (the predicted rating), which pandas or
    any Parquet reader can load and serve."""

    top_n = IntParameter(default=10, check=TOP_N, description="movies per user")
    recommender = ChoiceParameter(
        choices=RECOMMENDERS, default=EASE_MODEL, description="ease (the ranking model) or explicit (the rating model)"
    )

    def unused_params(self) -> set[str]:
        if self.recommender == EASE_MODEL:
            return set(RatingModelParams.get_param_names())
        return super().unused_params() | set(EaseParams.get_param_names())

    def requires(self):
        if self.recommender == EASE_MODEL:
            deps: dict[str, Any] = {"model": self.clone(TrainedEASE), "split": self.clone(SplitData)}
        else:
            deps = self.rating_model_requires()
        return deps | {"zip": self.clone(DownloadedZip)}

    @property
    def key(self) -> str:
        model = self.ease_model_id if self.recommender == EASE_MODEL else self.rating_model_id
        return self.split_keys.of(model).recommendations(self.top_n)

    def run(self):
        # The rating model is a dependency run() yields (OfRatingModel), so only that path is a
        # generator: luigi runs a run() that returns one as it runs one that is.
        if self.recommender == EASE_MODEL:
            return self.serve(
                lambda train: ease_ranker(load_ease(self.store, self.split_keys.of(self.ease_model_id)), train)
            )
        return self.serve_rating_model()

    def serve_rating_model(self):
        yield self.trained_rating_model()
        model = self.rating_model().load(self.store)
        self.serve(lambda train: explicit_ranker(model))

    def serve(self, ranker_of: Callable[[Ratings], Ranker]) -> None:
        train = rating_arrays(self.store.read_parquet(self.split_keys.train))
        ranker = ranker_of(train)
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


class Report(OfRatingModel, EaseParams):
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
        return self.split_keys.of(self.rating_model_id).report(self.ease_model_id)

    def run(self):
        from movielens_als import report  # matplotlib is slow to import, and only this task needs it

        keys, chosen = self.split_keys.of(self.rating_model_id), self.rating_model()
        tuning = self.store.read_json(self.split_keys.tuning(self.als_tuning_id)) if self.tuned else None
        history = []
        for key, _ in self.store.list_files("evaluations/"):
            if key.endswith("/metrics.json"):
                run = layout.Run.parse(key)
                history.append(report.history_row(key, run.dataset, run.split, run.model, self.store.read_json(key)))
        title = f"{self.dataset}: {chosen.keys.model} on the {keys.split} split"
        if chosen.choice:
            title += f", chosen on validation over {' and '.join(chosen.choice['validation_rmse'])}"
        ranking = self.store.read_json(self.split_keys.of(self.ease_model_id).ranking(keys.model))
        metrics_key = keys.metrics_judged_by(self.relevant_rating)
        page = report.render(title, self.store.read_json(metrics_key), tuning, history, metrics_key, ranking=ranking)
        self.store.write_bytes(self.key, page.encode())
