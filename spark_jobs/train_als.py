"""TrainedALS's driver: fits the model on the training ratings and stores its factor tables
(factors, biases and training counts per user and per item) and model.json, flag last
(movielens_als.model owns the format).

The ratings are read through Arrow in the driver and handed to Spark, and the factors come
back the same way, so no S3A connector is needed on any Spark cluster.
"""

from __future__ import annotations

import json
import sys
import time

from drivers.common import job_parser, job_store, progress, read_training
from movielens_als import model as als_model
from spark_jobs import als
from spark_jobs.session import spark_session
from storage import utc_now


def parse_args(argv: list[str] | None):
    parser = job_parser(__doc__)
    parser.add_argument("--model", choices=als_model.MODELS, required=True)
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--reg-param", type=float, required=True)
    parser.add_argument("--max-iter", type=int, required=True)
    parser.add_argument("--rating-min", type=float, required=True, help="the release's lowest rating")
    parser.add_argument("--rating-max", type=float, required=True, help="the release's highest rating")
    parser.add_argument("--calibration", type=json.loads, help="calibration weights found by TunedALS, as JSON")
    parser.add_argument("--tuning", help="key of the tuning.json the hyper-parameters come from")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    store = job_store(args)
    with spark_session() as spark:
        progress(5, f"reading {store.uri(args.train)}")
        train, fitted_on = read_training(store, args.train)
        progress(
            20,
            f"fitting {args.model} (rank {args.rank}, regParam {args.reg_param}, {args.max_iter} iterations) "
            f"on {train.num_rows} ratings",
        )
        linear_algebra, blas_library = als.report_blas(spark)
        started = time.perf_counter()
        users, items, global_mean = als.fit(
            spark, train, args.model, args.rank, args.reg_param, args.max_iter, args.seed
        )
        fit_seconds = time.perf_counter() - started

        progress(90, f"fitted in {fit_seconds:.1f} s; writing {store.uri(args.output)}")
        settings = {"rank": args.rank, "reg_param": args.reg_param, "max_iter": args.max_iter, "seed": args.seed}
        settings |= {"implicit_prefs": False, "num_blocks": spark.sparkContext.defaultParallelism}
        description = als_model.describe(
            args.model,
            global_mean,
            (args.rating_min, args.rating_max),
            settings | {"linear_algebra": linear_algebra, "blas_library": blas_library},
            args.calibration,
            params=args.params,
            tuning=args.tuning,
            train=fitted_on,
            factors={"users": users.num_rows, "items": items.num_rows},
            spark_version=spark.version,
            fit_seconds=round(fit_seconds, 3),
            trained_at=utc_now(),
        )
        store.write_files(args.output, als_model.to_files(description, users, items))
        progress(100, f"model stored at {store.uri(args.output)}")


if __name__ == "__main__":
    main(sys.argv[1:])
