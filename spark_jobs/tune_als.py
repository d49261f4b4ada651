"""TunedALS's driver: searches rank x regParam x maxIter in one Spark application on a
validation split carved from the training ratings only (the test ratings are never read; from a
sample of whole users when there are more than selection.TUNING_RATINGS), and writes
tuning.json: every candidate fitted with its validation RMSE, the grid's points the search
skipped, the winner, and the parameters whose winning value is at an end of the grid. The
search is movielens_als.selection.tune_als; this script gives it Spark's ALS to fit with.
"""

from __future__ import annotations

import json
import sys

from drivers.common import job_parser, job_store, progress, warn_at_edge
from movielens_als import selection
from movielens_als.model import MODELS
from spark_jobs import als
from spark_jobs.session import spark_session
from storage import utc_now


def parse_args(argv: list[str] | None):
    parser = job_parser(__doc__)
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--grid", type=json.loads, required=True, help="the grid, a selection.AlsGrid as JSON")
    parser.add_argument("--strategy", required=True, help="how the test split was made, to carve validation alike")
    parser.add_argument("--rating-min", type=float, required=True)
    parser.add_argument("--rating-max", type=float, required=True)
    return parser.parse_args(argv)


def report(done: int, total: int, candidate: dict) -> None:
    score = candidate.get("validation_rmse_calibrated", candidate["validation_rmse"])
    progress(
        5 + 90 * done // total,
        f"candidate {done} of at most {total}: rank {candidate['rank']}, regParam {candidate['reg_param']}, "
        f"{candidate['max_iter']} iterations: validation RMSE {score:.4f} ({candidate['seconds']:.1f} s)",
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    store = job_store(args)
    grid = selection.AlsGrid(**args.grid)
    with spark_session() as spark:
        fit_part, validation = selection.validation_split(store.read_parquet(args.train), args.strategy, args.seed)

        # Every candidate is fitted on the same ratings: Spark keeps them after the first fit.
        prepared = als.prepare(spark, fit_part, args.model, cache=True)

        def fit(table, rank, reg_param, max_iter):
            assert table is fit_part
            return als.fit_prepared(spark, prepared, rank, reg_param, max_iter, args.seed)

        als.report_blas(spark)
        progress(5, f"at most {len(grid.points())} candidates on {fit_part.num_rows} ratings")
        result = selection.tune_als(
            fit, fit_part, validation, args.model, grid, (args.rating_min, args.rating_max), report
        )
        best, key = result["best"], result["selected_by"]
        warn_at_edge(result, grid.axes)
        store.write_json(
            args.output,
            {
                "model": args.model,
                "params": args.params,
                "grid": grid.as_dict(),
                "validation": selection.validation_record(args.strategy, args.seed, fit_part, validation),
                **result,
                "spark_version": spark.version,
                "tuned_at": utc_now(),
            },
        )
        progress(
            100,
            f"best of {len(result['candidates'])}: rank {best['rank']}, regParam {best['reg_param']}, "
            f"{best['max_iter']} iterations ({key} {best[key]:.4f})",
        )


if __name__ == "__main__":
    main(sys.argv[1:])
