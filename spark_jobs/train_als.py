"""TrainedALS's driver: fits Spark's ALS on the training ratings and stores the factors as
Parquet and the model's description as model.json, flag last.

The ratings are read through Arrow in the driver and handed to Spark, and the factors come
back the same way, so no S3A connector is needed on any Spark cluster.
"""

from __future__ import annotations

import hashlib
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.ml.recommendation import ALS

from pipeline.split import describe
from pipeline.store import Store
from spark_jobs.common import ITEM_FACTORS, MODEL_JSON, USER_FACTORS, job_parser, progress, spark_session, utc_now


def parse_args(argv: list[str] | None):
    parser = job_parser(__doc__)
    parser.add_argument("--train", required=True, help="key of the training ratings (Parquet)")
    parser.add_argument("--output", required=True, help="key of the model directory to write")
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--reg-param", type=float, required=True)
    parser.add_argument("--max-iter", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    store = Store.from_job_arguments(args)
    spark = spark_session()
    try:
        progress(5, f"reading {store.uri(args.train)}")
        train_bytes = store.read_bytes(args.train)
        train = pq.read_table(pa.BufferReader(train_bytes))
        blocks = spark.sparkContext.defaultParallelism
        als = ALS(
            rank=args.rank,
            regParam=args.reg_param,
            maxIter=args.max_iter,
            seed=args.seed,
            userCol="user",
            itemCol="item",
            ratingCol="rating",
            implicitPrefs=False,
            # One block per core: ALS's default of 10 blocks only adds shuffle overhead here.
            numUserBlocks=blocks,
            numItemBlocks=blocks,
        )
        progress(
            20,
            f"fitting ALS (rank {args.rank}, regParam {args.reg_param}, {args.max_iter} iterations) "
            f"on {train.num_rows} ratings",
        )
        started = time.perf_counter()
        model = als.fit(spark.createDataFrame(train))
        fit_seconds = time.perf_counter() - started
        user_factors = model.userFactors.toArrow().sort_by("id")
        item_factors = model.itemFactors.toArrow().sort_by("id")

        progress(90, f"fitted in {fit_seconds:.1f} s; writing {store.uri(args.output)}")
        store.write_parquet(f"{args.output}/{USER_FACTORS}", user_factors)
        store.write_parquet(f"{args.output}/{ITEM_FACTORS}", item_factors)
        store.write_json(
            f"{args.output}/{MODEL_JSON}",
            {
                "model": "als",
                "params": args.params,
                "als": {
                    "rank": args.rank,
                    "reg_param": args.reg_param,
                    "max_iter": args.max_iter,
                    "seed": args.seed,
                    "implicit_prefs": False,
                    "num_blocks": blocks,
                },
                "global_mean": pc.mean(train.column("rating")).as_py(),
                "train": {
                    "key": args.train,
                    "sha256": hashlib.sha256(train_bytes).hexdigest(),
                    **describe(train),
                },
                "factors": {"users": user_factors.num_rows, "items": item_factors.num_rows},
                "spark_version": spark.version,
                "fit_seconds": round(fit_seconds, 3),
                "trained_at": utc_now(),
            },
        )
        store.mark_complete(args.output)
        progress(100, f"model stored at {store.uri(args.output)}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
