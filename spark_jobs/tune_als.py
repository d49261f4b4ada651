"""TunedALS's driver: searches rank x regParam x maxIter in one Spark application on a
validation split carved from the training ratings only (the test ratings are never read),
and writes tuning.json: every candidate's validation RMSE, the winner, and the parameters
whose winning value is at an end of the grid. The search is movielens_als.selection.tune_als;
this script gives it Spark's ALS to fit with.
"""

from __future__ import annotations

import json
import sys

from movielens_als import selection
from movielens_als.model import MODELS
from spark_jobs import als
from spark_jobs.common import job_parser, job_store, progress
from spark_jobs.session import spark_session
from storage import utc_now


def parse_args(argv: list[str] | None):
    parser = job_parser(__doc__)
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--ranks", type=json.loads, required=True, help="JSON list")
    parser.add_argument("--reg-params", type=json.loads, required=True, help="JSON list")
    parser.add_argument("--max-iters", type=json.loads, required=True, help="JSON list")
    parser.add_argument("--strategy", required=True, help="how the test split was made, to carve validation alike")
    parser.add_argument("--rating-min", type=float, required=True)
    parser.add_argument("--rating-max", type=float, required=True)
    return parser.parse_args(argv)


def report(done: int, total: int, candidate: dict) -> None:
    score = candidate.get("validation_rmse_calibrated", candidate["validation_rmse"])
    progress(
        5 + 90 * done // total,
        f"candidate {done} of {total}: rank {candidate['rank']}, regParam {candidate['reg_param']}, "
        f"{candidate['max_iter']} iterations: validation RMSE {score:.4f} ({candidate['seconds']:.1f} s)",
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    store = job_store(args)
    grid = {"rank": args.ranks, "reg_param": args.reg_params, "max_iter": args.max_iters}
    with spark_session() as spark:
        fit_part, validation = selection.validation_split(store.read_parquet(args.train), args.strategy, args.seed)

        def fit(table, rank, reg_param, max_iter):
            return als.fit(spark, table, args.model, rank, reg_param, max_iter, args.seed)

        als.report_blas(spark)
        progress(5, f"{len(selection.grid_points(grid))} candidates on {fit_part.num_rows} ratings")
        result = selection.tune_als(
            fit, fit_part, validation, args.model, grid, (args.rating_min, args.rating_max), report
        )
        best, key = result["best"], result["selected_by"]
        if result["at_grid_edge"]:
            print(f"warning: {selection.edge_warning(best, grid, result['at_grid_edge'])}", flush=True)
        store.write_json(
            args.output,
            {
                "model": args.model,
                "params": args.params,
                "grid": {"ranks": args.ranks, "reg_params": args.reg_params, "max_iters": args.max_iters},
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
