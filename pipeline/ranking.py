"""The ranking model: TunedEASE → TrainedEASE (EASE, numpy in one process, no Spark)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from movielens_als.selection import EASE_PARAMS
from pipeline import layout
from pipeline.data import DownloadedZip, SplitData
from pipeline.groups import EaseParams, SplitParams
from pipeline.jobs import DRIVERS, DriverTask


class EaseJob(SplitParams, EaseParams, DriverTask):
    """A run of the ranking model's driver (drivers/ease_jobs.py) on one split, with the
    release's movies for their genres."""

    script = DRIVERS / "ease_jobs.py"

    def requires(self):
        return {"split": self.clone(SplitData), "zip": self.clone(DownloadedZip)}

    def driver_options(self) -> dict[str, Any]:
        return {**self.split_options(), "movies": layout.download(self.dataset), "dataset": self.dataset}


class TunedEASE(EaseJob):
    """The ranking model's hyper-parameters (the λ, the lowest liked rating, the genres' weight
    and the popularity discount), judged by NDCG at 10 on a validation split carved from the
    training ratings: tuning.json with every candidate's validation metrics and the winner."""

    command = "tune"

    @property
    def key(self) -> str:
        return self.split_keys.tuning(self.ease_tuning_id)

    def driver_options(self) -> dict[str, Any]:
        search = json.dumps(dataclasses.asdict(self.ease_search))
        return super().driver_options() | self.split_options(strategy=True) | {"search": search}


class TrainedEASE(EaseJob):
    """The ranking model fitted on all the training ratings with the hyper-parameters
    TunedEASE chose: items.parquet, weights.npy (EASE's item x item weights) and model.json."""

    is_directory = True
    command = "train"

    def requires(self):
        return super().requires() | {"tuning": self.clone(TunedEASE)}

    @property
    def key(self) -> str:
        return self.split_keys.of(self.ease_model_id).model_dir

    def driver_options(self) -> dict[str, Any]:
        tuning = self.split_keys.tuning(self.ease_tuning_id)
        best = self.store.read_json(tuning)["best"]
        setting = json.dumps({name: best[name] for name in EASE_PARAMS})
        return super().driver_options() | {"setting": setting, "max_items": self.max_items, "tuning": tuning}
