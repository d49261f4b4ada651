"""TunedALS's search (movielens_als.selection.tune_als) against the full grid of every (rank,
regParam, maxIter), in one process with a local Spark: for each split, each way's winner, its
validation RMSE (calibrated, for biased ALS), the candidates fitted and the seconds. The splits
are ml-100k's official folds (`--folds`; carved at random for validation, as TunedALS carves
a fold) and ml-latest-small's default split (user_random 0.2, seed 42), as SplitData makes them.

    .venv/bin/python -m bench.als_search [--folds u1,u2,u3,u4,u5] [--small] [--model biased_als]
        [--ways grid,search,every-rank] [--cores 2]

`grid` fits every point (the search without the Climb and without stopping the ranks), `search`
is TunedALS's (the ranks stop growing once one's best is no better than the last's) and
`every-rank` the same search over every rank. `--generated N` instead measures the search alone
on N generated ratings (10 M: 69,878 users and 10,677 items, as ml-10m), carved as TunedALS
carves them: on a sample of whole users past selection.TUNING_RATINGS.
"""

from __future__ import annotations

import argparse
import itertools
import time
import zipfile
from pathlib import Path

from pyspark.sql import SparkSession

from bench.harness import SMALL_ZIP, argument_parser, machine
from movielens_als import selection
from movielens_als.releases import RELEASES, read_fold, read_ratings
from movielens_als.split import split_ratings
from movielens_als.synthetic import synthetic_ratings
from spark_jobs import als
from spark_jobs.session import spark_session

ML_100K_ZIP = SMALL_ZIP.parent / "ml-100k.zip"
# TunedALS's defaults (pipeline/groups.py AlsGridParams)
GRID = selection.AlsGrid(ranks=(16, 32, 64), reg_params=(0.05, 0.1, 0.15, 0.2, 0.3), max_iters=(15,))
SEED = 42


class EveryPoint(selection.Climb):
    """Every point of the axes, in order, whatever the scores."""

    def __next__(self) -> tuple[float, ...]:
        for at in itertools.product(*(range(len(values)) for values in self.axes)):
            if at not in self.scores:
                return self._values(at)
        raise StopIteration


def tuned(spark, fit_part, validation, model, rating_scale, way: str, cache: bool = True) -> dict:
    """tune_als with Spark's ALS as TunedALS's driver runs it (the ratings prepared and cached
    once for all the candidates; without `cache`, prepared again for each, as before)."""
    prepared = als.prepare(spark, fit_part, model, cache=True) if cache else None

    def fit(table, rank, reg_param, max_iter):
        if prepared is None:
            return als.fit(spark, table, model, rank, reg_param, max_iter, SEED)
        return als.fit_prepared(spark, prepared, rank, reg_param, max_iter, SEED)

    climb = selection.Climb
    if way == "grid":
        selection.Climb = EveryPoint  # type: ignore[misc]
    try:
        return selection.tune_als(fit, fit_part, validation, model, GRID, rating_scale, stop_ranks=way == "search")
    finally:
        selection.Climb = climb  # type: ignore[misc]
        if prepared is not None:
            prepared.frame.unpersist()


def splits(args) -> list[tuple[str, object, str, tuple[float, float]]]:
    """(name, training ratings, strategy, rating scale) of each split asked for."""
    found = []
    if args.folds:
        rel = RELEASES["ml-100k"]
        with zipfile.ZipFile(args.ml_100k) as archive:
            for fold in args.folds.split(","):
                train, _, _ = read_fold(archive, rel, fold)
                found.append((f"ml-100k {fold}", train, "official", rel.rating_scale))
    if args.small:
        rel = RELEASES["ml-latest-small"]
        with zipfile.ZipFile(args.zip) as archive:
            ratings, _ = read_ratings(archive, rel)
        train, _ = split_ratings(ratings, "user_random", 0.2, SEED)
        found.append(("ml-latest-small user_random 0.2", train, "user_random", rel.rating_scale))
    return found


def main() -> None:
    parser = argument_parser("bench.als_search", __doc__)
    parser.add_argument("--folds", default="u1,u2,u3,u4,u5", help="ml-100k's folds, comma-separated ('' for none)")
    parser.add_argument("--ml-100k", type=Path, default=ML_100K_ZIP)
    parser.add_argument(
        "--small", action=argparse.BooleanOptionalAction, default=True, help="ml-latest-small's default split too"
    )
    parser.add_argument("--zip", type=Path, default=SMALL_ZIP, help="ml-latest-small's zip")
    parser.add_argument("--model", default="biased_als")
    parser.add_argument("--ways", default="grid,search,every-rank")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--cache", action=argparse.BooleanOptionalAction, default=True, help="the ratings cached for every candidate"
    )
    parser.add_argument("--generated", type=int, default=0, help="ratings to generate (the search alone)")
    parser.add_argument(
        "--max-ratings", type=int, default=selection.TUNING_RATINGS, help="with --generated: the sample's cap"
    )
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    SparkSession.builder.master(f"local[{args.cores}]").config("spark.ui.enabled", "false").config(
        "spark.sql.shuffle.partitions", str(args.cores)
    ).config("spark.driver.memory", "4g").getOrCreate()
    with spark_session() as spark:
        spark.sparkContext.setLogLevel("ERROR")
        if args.generated:
            generated(spark, args)
            return
        print("| split | way | candidates | seconds | winner (rank, regParam, maxIter) | validation RMSE | skipped |")
        print("|---|---|---|---|---|---|---|")
        for name, train, strategy, scale in splits(args):
            fit_part, validation = selection.validation_split(train, strategy, SEED)
            searched_ranks: set[int] = set()
            for way in args.ways.split(","):
                if way == "every-rank" and searched_ranks == set(GRID.ranks):
                    print(f"| {name} | {way} | the same fits as search: no rank was stopped | | | | |", flush=True)
                    continue
                started = time.perf_counter()
                result = tuned(spark, fit_part, validation, args.model, scale, way, args.cache)
                if way == "search":
                    searched_ranks = {c["rank"] for c in result["candidates"]}
                seconds = time.perf_counter() - started
                best = result["best"]
                print(
                    f"| {name} | {way} | {len(result['candidates'])} | {seconds:.1f} "
                    f"| {best['rank']}, {best['reg_param']:g}, {best['max_iter']} "
                    f"| {best[result['selected_by']]:.5f} | {len(result['skipped'])} |",
                    flush=True,
                )


def generated(spark, args) -> None:
    """The search's cost on `args.generated` generated ratings, carved as TunedALS carves them."""
    table = synthetic_ratings(args.generated, round(69878 * args.generated / 10_000_000) or 1, 10677, seed=1)
    train = table.rename_columns(["user", "item", "rating", "timestamp"])
    started = time.perf_counter()
    fit_part, validation = selection.validation_split(train, "user_random", SEED, args.max_ratings)
    carved = time.perf_counter() - started
    record = selection.validation_record("user_random", SEED, fit_part, validation)
    print(f"{args.generated:,} generated ratings; carved in {carved:.1f} s: {record}")
    for way in args.ways.split(","):
        started = time.perf_counter()
        result = tuned(spark, fit_part, validation, args.model, (0.5, 5.0), way, args.cache)
        seconds = time.perf_counter() - started
        best = result["best"]
        for c in result["candidates"]:
            print(
                f"  {c['rank']}, {c['reg_param']:g}, {c['max_iter']}: {c[result['selected_by']]:.5f} ({c['seconds']} s)"
            )
        print(
            f"{way}: {len(result['candidates'])} candidates in {seconds:.1f} s; winner {best['rank']}, "
            f"{best['reg_param']:g}, {best['max_iter']} ({best[result['selected_by']]:.5f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
