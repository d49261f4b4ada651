"""The drivers of ValidatedBPMF and TrainedBPMF (movielens_als.bpmf): the Bayesian rating
model sampled on the training ratings less the validation carve (scored on it, to be weighed
against TunedALS's best on the same rows), then on all of them. Run by pipeline.jobs.DriverTask
with the worker's own Python, where the pipeline's Spark drivers run, with the environment,
logs and progress the pipeline gives them; like EASE's, they start no SparkContext (the
sampler is numpy in one process, see docs/models.md).

    python -m drivers.bpmf_jobs validate --train K --output K --sweeps N --strategy S ...
    python -m drivers.bpmf_jobs train    --train K --output K --sweeps N [--burn-in B] ...

`validate` runs at most N sweeps, stopping when the running mean's validation RMSE stops
falling (movielens_als.bpmf.STOP_TOLERANCE, STOP_PATIENCE), and writes the sweeps it chose
(`sweeps_chosen`: all it ran, see bpmf.STOP_PATIENCE) and the burn-in, which `train` replays:
--sweeps sweeps_chosen --burn-in burn_in.
"""

from __future__ import annotations

import time

from drivers.common import Pace, job_parser, progress, read_training, run_driver
from movielens_als import bpmf, metrics, selection
from movielens_als import model as rating_model
from movielens_als.ratings import rating_arrays
from storage import Store, utc_now


def parse_args(argv: list[str]):
    parser = job_parser(__doc__)
    parser.add_argument("command", choices=("validate", "train"))
    parser.add_argument(
        "--sweeps", type=int, required=True, help="Gibbs sweeps (validate: the most), the first sixth burn-in"
    )
    parser.add_argument(
        "--burn-in", type=int, help="sweeps of burn-in (train; default a sixth of --sweeps), as validation.json's"
    )
    parser.add_argument("--rating-min", type=float, required=True)
    parser.add_argument("--rating-max", type=float, required=True)
    parser.add_argument("--strategy", help="how the test split was made, to carve validation alike (validate)")
    parser.add_argument("--validation", help="key of the validation record the model was weighed on (train)")
    return parser.parse_args(argv)


class Reporter:
    """A progress line every tenth of the sweeps: the validation RMSE so far, and the time left."""

    def __init__(self, start: int, span: int) -> None:
        self.pace, self.start, self.span = Pace(), start, span

    def __call__(self, done: int, total: int, rmse: float | None) -> None:
        if done % max(1, total // 10) and done != total:
            return
        left = self.pace.seconds_left(done, total)
        score = f", validation RMSE of the mean so far {rmse:.4f}" if rmse is not None else ""
        progress(self.start + self.span * done // total, f"sweep {done} of {total}{score}; about {left:.0f} s left")


def rating_scale(args) -> tuple[float, float]:
    return args.rating_min, args.rating_max


def validate(args, store: Store) -> None:
    """The model sampled on the fitting part of the validation carve (the one TunedALS uses),
    scored on the validation ratings; the test ratings are never read."""
    fit_part, validation = selection.validation_split(store.read_parquet(args.train), args.strategy, args.seed)
    progress(5, f"sampling {args.sweeps} sweeps on {fit_part.num_rows} ratings")
    held_out = rating_arrays(validation)
    started = time.perf_counter()
    fitted = bpmf.fit(
        rating_arrays(fit_part),
        sweeps=args.sweeps,
        seed=args.seed,
        rating_scale=rating_scale(args),
        validation=held_out,
        on_sweep=Reporter(5, 90),
    )
    seconds = time.perf_counter() - started
    rmse = metrics.rmse(fitted.model.predict(held_out.users, held_out.items), held_out.ratings)
    store.write_json(
        args.output,
        {
            "model": "bpmf",
            "params": args.params,
            "validation": selection.validation_record(args.strategy, args.seed, fit_part, validation),
            "sweeps": args.sweeps,
            "sweeps_chosen": fitted.chosen,
            "burn_in": fitted.burn_in,
            "stopped_at": fitted.stopped_at,
            "samples_side_by_side": fitted.samples,
            "validation_rmse": rmse,
            "curve": fitted.curve,
            "seconds": round(seconds, 1),
            "validated_at": utc_now(),
        },
    )
    progress(
        100,
        f"validation RMSE {rmse:.4f} after {fitted.stopped_at} of at most {args.sweeps} sweeps; "
        f"{fitted.chosen} chosen ({seconds:.0f} s)",
    )


def train(args, store: Store) -> None:
    """The model sampled on all the training ratings: the two factor tables and model.json, flag last."""
    table, fitted_on = read_training(store, args.train)
    scale = rating_scale(args)
    progress(5, f"sampling {args.sweeps} sweeps on {table.num_rows} ratings")
    started = time.perf_counter()
    fitted = bpmf.fit(
        rating_arrays(table),
        sweeps=args.sweeps,
        burn_in=args.burn_in,
        seed=args.seed,
        rating_scale=scale,
        on_sweep=Reporter(5, 90),
    )
    seconds = time.perf_counter() - started
    progress(96, f"sampled in {seconds:.0f} s; writing {store.uri(args.output)}")
    model = fitted.model
    description = bpmf.describe(
        fitted,
        scale,
        args.sweeps,
        params=args.params,
        validation=args.validation,
        train=fitted_on,
        fit_seconds=round(seconds, 3),
        trained_at=utc_now(),
    )
    users, items = (rating_model.factor_table(s.ids, s.factors, s.bias, s.count) for s in (model.users, model.items))
    store.write_files(args.output, rating_model.to_files(description, users, items))
    progress(100, f"model stored at {store.uri(args.output)}")


def main(argv: list[str] | None = None) -> None:
    run_driver(parse_args, {"validate": validate, "train": train}, argv)


if __name__ == "__main__":
    main()
