"""Every task parameter, declared once, with its check and help, in the group of the outputs it
shapes. A task is the groups it needs, side by side; each group turns its parameters into the one
value its key and the library take (a split, a grid, a search), and says which of its parameters
do not shape the task as it is set (they are left out of what the task records)."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import luigi

from movielens_als import bpmf, metrics
from movielens_als.model import MODELS
from movielens_als.releases import RELEASES, release
from movielens_als.selection import AlsGrid, EaseSearch
from movielens_als.split import OFFICIAL, STRATEGIES
from pipeline import layout
from pipeline.params import (
    EXPONENT,
    FRACTION,
    ITERATIONS,
    MAX_ITEMS,
    NON_NEGATIVE,
    POSITIVE,
    RANK,
    RATING_THRESHOLD,
    SWEEPS,
    BoolParameter,
    ChoiceParameter,
    FloatParameter,
    IntParameter,
    ListParameter,
    whole,
)

T = TypeVar("T")
# The ranking model's name in its keys.
EASE_MODEL = "ease"


def value_of(cls: type[T], task: luigi.Task) -> T:
    """The library's value `cls` (a dataclass) made of the task's parameters of its fields' names."""
    return cls(**{field.name: getattr(task, field.name) for field in dataclasses.fields(cls)})  # type: ignore[arg-type]


class Params(luigi.Task):
    """The root of the groups and of every task with an output."""

    def unused_params(self) -> set[str]:
        """The parameters that, as this task is set, do not shape its result."""
        return set()


class ReleaseParams(Params):
    """The release a task is about."""

    dataset = ChoiceParameter(choices=sorted(RELEASES), default="ml-latest-small", description="MovieLens release")

    @property
    def ratings_hint(self) -> int:
        """How many ratings the release holds: a Spark job's driver is sized from it."""
        return release(self.dataset).ratings

    def rating_scale_options(self) -> dict[str, float]:
        """A driver's options for the release's lowest and highest rating."""
        low, high = release(self.dataset).rating_scale
        return {"rating_min": low, "rating_max": high}


class SplitParams(ReleaseParams):
    """... and the split of it."""

    strategy = ChoiceParameter(
        choices=[*STRATEGIES, OFFICIAL],
        default="user_random",
        description="split strategy; official: the release's own fold, named by --fold",
    )
    fold = luigi.Parameter(
        default="", description="with --strategy official: the release's fold (ml-100k: u1…u5, ua, ub)"
    )
    test_fraction = FloatParameter(
        default=0.2, check=FRACTION, description="share of the ratings that go to test, in (0, 1)"
    )
    seed = IntParameter(default=42, description="seed of the split and of ALS")
    skip_malformed = BoolParameter(
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

    def split_options(self, strategy: bool = False) -> dict[str, object]:
        """A driver's options for the training ratings and the seed, and the split's strategy
        for a driver that carves a validation split alike."""
        return {"train": self.split_keys.train, "seed": self.seed} | ({"strategy": self.strategy} if strategy else {})


class AlsGridParams(Params):
    """The rating model's kind and TunedALS's grid."""

    model = ChoiceParameter(choices=MODELS, default="biased_als", description="biased_als or plain als")
    ranks = ListParameter(default=[16, 32, 64], each=RANK, description="ranks to try")
    reg_params = ListParameter(default=[0.05, 0.1, 0.15, 0.2, 0.3], each=NON_NEGATIVE, description="regParams to try")
    max_iters = ListParameter(default=[15], each=ITERATIONS, description="iteration counts to try")

    @property
    def als_grid(self) -> AlsGrid:
        return value_of(AlsGrid, self)

    @property
    def als_tuning_id(self) -> str:
        """TunedALS's folder under tuning/<run>/."""
        return f"{self.model}-{layout.grid_id(self.als_grid)}"


class AlsParams(AlsGridParams):
    """... and the ALS model trained: its hyper-parameters, or (`tuned`) the grid they come from."""

    rank = IntParameter(default=32, check=RANK, description="number of latent factors")
    reg_param = FloatParameter(default=0.15, check=NON_NEGATIVE, description="ALS regularisation")
    max_iter = IntParameter(default=15, check=ITERATIONS, description="ALS iterations")
    tuned = BoolParameter(default=False, description="take rank, regParam and maxIter from TunedALS")

    def unused_params(self) -> set[str]:
        return super().unused_params() | (set() if self.tuned else {f.name for f in dataclasses.fields(AlsGrid)})

    @property
    def als_model_id(self) -> str:
        if self.tuned:
            return layout.tuned_model_id(self.model, layout.grid_id(self.als_grid))
        return layout.model_id(self.model, self.rank, self.reg_param, self.max_iter)


class BpmfParams(Params):
    """The Bayesian rating model (movielens_als.bpmf)."""

    bpmf_sweeps = IntParameter(
        default=bpmf.SWEEPS,
        check=SWEEPS,
        description="with --tuned: Gibbs sweeps of the Bayesian rating model weighed against TunedALS's best "
        "on validation (the first sixth burn-in); 0: ALS alone",
    )

    @property
    def bpmf_model_id(self) -> str:
        return layout.bpmf_model_id(self.bpmf_sweeps)


class RatingModelParams(AlsParams, BpmfParams):
    """The rating model judged and served: the ALS model, or with `tuned` TunedALS's best or the
    Bayesian model, whichever validation prefers (unless --bpmf-sweeps 0)."""

    def unused_params(self) -> set[str]:
        return super().unused_params() | (set() if self.tuned else {"bpmf_sweeps"})

    @property
    def weighs_bpmf(self) -> bool:
        return self.tuned and self.bpmf_sweeps > 0

    @property
    def rating_model_id(self) -> str:
        """The model's id, or that of the choice between the two models when one is made."""
        if not self.weighs_bpmf:
            return self.als_model_id
        return layout.chosen_model_id(self.als_model_id, self.bpmf_model_id)


class RelevanceParams(Params):
    """Which test ratings count as relevant to a ranking."""

    relevant_rating = FloatParameter(
        default=metrics.RELEVANT_RATING,
        check=RATING_THRESHOLD,
        description="a test rating at least this is relevant to the ranking metrics; "
        "at or below the release's lowest rating, every test rating is",
    )


class EaseParams(RelevanceParams):
    """The ranking model (movielens_als.ease) and TunedEASE's search, carried as one
    selection.EaseSearch: a field of it is a parameter here of the same name."""

    l2s = ListParameter(
        default=[100, 200, 400, 800, 1600], each=POSITIVE, description="EASE: the λs to try, each above 0"
    )
    positive_ratings = ListParameter(
        default=[0.5, 3.5, 4.0],
        each=RATING_THRESHOLD,
        description="EASE: the lowest rating that counts as liked, to try (0.5: every rating)",
    )
    max_items = IntParameter(
        default=16384, check=MAX_ITEMS, description="EASE: model the items liked most often, this many at most"
    )
    tune_items = IntParameter(
        default=2048,
        check=MAX_ITEMS,
        description="EASE: TunedEASE searches on the items liked most often, this many at most, "
        "then settles its close calls on four times as many (at most --max-items)",
    )
    genre_weights = ListParameter(
        default=[0, 1, 3, 10, 30],
        each=NON_NEGATIVE,
        description="EASE: each genre (and decade) counts as this many users who like all its movies, to try (0: none)",
    )
    popularity_exponents = ListParameter(
        default=[0, -0.1, -0.2, -0.3],
        each=EXPONENT,
        description="EASE: scores times (positives + 1) to this power, to try (0: none; below 0 favours rarer items)",
    )
    tuning_users = IntParameter(
        default=EaseSearch.tuning_users,
        check=whole(100, 10_000_000),
        description="EASE: TunedEASE judges its candidates on at most this many validation users, a seeded sample",
    )

    @property
    def ease_search(self) -> EaseSearch:
        return value_of(EaseSearch, self)

    @property
    def ease_tuning_id(self) -> str:
        """TunedEASE's folder under tuning/<run>/."""
        return f"{EASE_MODEL}-{layout.ease_grid_id(self.ease_search)}"

    @property
    def ease_model_id(self) -> str:
        return layout.tuned_model_id(EASE_MODEL, layout.ease_grid_id(self.ease_search))
