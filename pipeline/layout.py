"""The one key layout of the store: every output key is built here, and parsed back here.

    downloads/<release>.zip
    splits/<dataset>/<split>/{train.parquet, test.parquet, stats.json, _SUCCESS}
    tuning/<dataset>/<split>/<model>-<grid>/tuning.json
    tuning/<dataset>/<split>/<bpmf id>/validation.json
    models/<dataset>/<split>/<model id>/{user_factors.parquet, item_factors.parquet, model.json, _SUCCESS}
    models/<dataset>/<split>/<ease id>/{items.parquet, weights.npy, model.json, _SUCCESS}
    evaluations/<dataset>/<split>/<model id>/metrics.json (metrics-relevant<R>.json: see metrics_judged_by)
    evaluations/<dataset>/<split>/<ease id>/ranking-vs-<model id>.json
    recommendations/<dataset>/<split>/<model id>/top<n>.parquet
    reports/<dataset>/<split>/<model id>/<ease id>/report.html

<split> and <model id> spell the parameters that produced them (`split_id`, `model_id`), so
runs with different parameters never share a key and a changed model reuses the split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from movielens_als.metrics import RELEVANT_RATING
from movielens_als.releases import release
from movielens_als.selection import AlsGrid, EaseSearch
from movielens_als.split import OFFICIAL

DOWNLOADS = "downloads"
# The folders below the store root that hold one folder per dataset, in the order the chain
# fills them. With DOWNLOADS, they are everything the pipeline writes.
PER_DATASET = ("splits", "tuning", "models", "evaluations", "recommendations", "reports")
OUTPUT_ROOTS = (DOWNLOADS, *PER_DATASET)


def split_id(strategy: str, test_fraction: float, seed: int, skip_malformed: bool, fold: str = "") -> str:
    """A release's own fold (`official`) has no fraction; the seed stays, as it seeds the models."""
    lenient = "-skip-malformed" if skip_malformed else ""
    if strategy == OFFICIAL:
        return f"{strategy}-{fold}-seed{seed}{lenient}"
    return f"{strategy}-{test_fraction!r}-seed{seed}{lenient}"


def grid_id(grid: AlsGrid) -> str:
    return _hashed([list(grid.ranks), list(grid.reg_params), list(grid.max_iters)])


def model_id(model: str, rank: int, reg_param: float, max_iter: int) -> str:
    return f"{model}-rank{rank}-reg{reg_param!r}-iter{max_iter}"


def tuned_model_id(model: str, grid: str) -> str:
    return f"{model}-tuned-{grid}"


def bpmf_model_id(sweeps: int) -> str:
    return f"bpmf-sweeps{sweeps}"


def chosen_model_id(tuned_als: str, bpmf: str) -> str:
    """The rating model validation chose between TunedALS's best and the Bayesian model."""
    return f"{tuned_als}-or-{bpmf}"


def ease_grid_id(search: EaseSearch) -> str:
    """The search's grid, the relevance it was judged by and the items it searched on (beyond
    max_items, that is all of them); then, by name, each field with a default (a knob added
    later) that is set to another value, so the keys of every search made before the knob stay
    as they were."""
    first = [
        list(search.l2s),
        list(search.positive_ratings),
        search.max_items,
        search.relevant_rating,
        min(search.tune_items, search.max_items),
        list(search.genre_weights),
        list(search.popularity_exponents),
    ]
    later = {
        field.name: getattr(search, field.name)
        for field in dataclasses.fields(search)
        if field.default is not dataclasses.MISSING and getattr(search, field.name) != field.default
    }
    return _hashed([*first, later] if later else first)


def _hashed(values: list) -> str:
    return f"grid-{hashlib.sha256(json.dumps(values).encode()).hexdigest()[:8]}"


def download(dataset: str) -> str:
    return f"{DOWNLOADS}/{release(dataset).zip_name}"


def dataset_prefixes(dataset: str) -> list[str]:
    """Every key of one dataset's outputs starts with one of these."""
    return [download(dataset), *(f"{root}/{dataset}/" for root in PER_DATASET)]


@dataclass(frozen=True)
class Run:
    """The keys of one dataset, split and (for the model's outputs) model id."""

    dataset: str
    split: str
    model: str = ""

    @property
    def split_dir(self) -> str:
        return f"splits/{self.dataset}/{self.split}"

    @property
    def train(self) -> str:
        return f"{self.split_dir}/train.parquet"

    @property
    def test(self) -> str:
        return f"{self.split_dir}/test.parquet"

    @property
    def stats(self) -> str:
        return f"{self.split_dir}/stats.json"

    def of(self, model: str) -> Run:
        """The keys of `model` on this run's split."""
        return Run(self.dataset, self.split, model)

    def tuning(self, search: str) -> str:
        """tuning.json of a search (`<model>-<grid id>`) on this split."""
        return f"tuning/{self.dataset}/{self.split}/{search}/tuning.json"

    @property
    def validation(self) -> str:
        """This model's validation record: fitted on the carve, scored on the validation ratings."""
        return f"tuning/{self._model_path}/validation.json"

    @property
    def model_dir(self) -> str:
        return f"models/{self._model_path}"

    def metrics_judged_by(self, relevant_rating: float) -> str:
        """metrics.json, whose ranking section counts a test rating ≥ `relevant_rating` as
        relevant; named for it unless it is the default."""
        relevance = "" if relevant_rating == RELEVANT_RATING else f"-relevant{relevant_rating:g}"
        return f"evaluations/{self._model_path}/metrics{relevance}.json"

    def ranking(self, explicit_model: str) -> str:
        """The ranking comparison of this (ranking) model against `explicit_model` and popularity."""
        return f"evaluations/{self._model_path}/ranking-vs-{explicit_model}.json"

    def recommendations(self, top_n: int) -> str:
        return f"recommendations/{self._model_path}/top{top_n}.parquet"

    def report(self, ranking_model: str) -> str:
        """report.html of this (rating) model, with the top-10 comparison of `ranking_model`:
        a report made with another ranking model must not pass for this one."""
        return f"reports/{self._model_path}/{ranking_model}/report.html"

    @property
    def _model_path(self) -> str:
        if not self.model:
            raise ValueError(f"{self} names no model")
        return f"{self.dataset}/{self.split}/{self.model}"

    @classmethod
    def parse(cls, key: str) -> Run:
        """The run a key of splits/, models/, evaluations/, recommendations/ or reports/
        belongs to; ValueError for any other key."""
        parts = key.split("/")
        if len(parts) >= 3 and parts[0] == "splits":
            return cls(parts[1], parts[2])
        if len(parts) >= 4 and parts[0] in PER_DATASET and parts[0] != "tuning":
            return cls(parts[1], parts[2], parts[3])
        raise ValueError(f"{key!r} is not a key of a split or of a model's outputs")
