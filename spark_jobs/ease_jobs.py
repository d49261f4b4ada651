"""The drivers of TunedEASE and TrainedEASE (movielens_als.ease): the ranking model's tuning
and fit, run by SparkJobTask like every fit, so they run where the pipeline's Spark drivers
run, with the environment, logs and progress the pipeline gives them.

They start no SparkContext and import no Spark, so the task runs them with its own Python,
without spark-submit. EASE's work is one sparse Gram matrix and one dense Cholesky inverse of
at most max_items² cells: dense linear algebra in one process, which LAPACK does at the
machine's peak (about 150 Gflop/s here) and Spark does not distribute (MLlib's RowMatrix
collects its Gram matrix to the driver as float64 and has no inverse), while a SparkContext
would only add its start-up (see docs/models.md).

    python -m spark_jobs.ease_jobs tune  --train K --output K --l2s JSON --positive-ratings JSON
                                         --genre-weights JSON --popularity-exponents JSON --movies K ...
    python -m spark_jobs.ease_jobs train --train K --output K --l2 X --positive-rating X --genre-weight X
                                         --popularity-exponent X --movies K ...
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq

from movielens_als import ease, selection
from movielens_als.ratings import rating_arrays
from movielens_als.releases import read_movies, release
from movielens_als.split import describe
from spark_jobs.common import job_parser, job_store, peak_memory, progress
from storage import utc_now


def parse_args(argv: list[str] | None):
    parser = job_parser(__doc__)
    parser.add_argument("command", choices=("tune", "train"))
    parser.add_argument("--max-items", type=int, required=True, help="the most-liked items modelled")
    parser.add_argument("--tune-items", type=int, help="the most-liked items the search fits (tune)")
    parser.add_argument("--strategy", help="how the test split was made, to carve validation alike (tune)")
    parser.add_argument("--l2s", type=json.loads, help="λs to try, as a JSON list (tune)")
    parser.add_argument("--positive-ratings", type=json.loads, help="thresholds to try, as a JSON list (tune)")
    parser.add_argument("--genre-weights", type=json.loads, default=[0], help="genre weights to try, JSON (tune)")
    parser.add_argument("--popularity-exponents", type=json.loads, default=[0], help="β to try, JSON (tune)")
    parser.add_argument("--relevant-rating", type=float, help="a validation rating ≥ this is relevant (tune)")
    parser.add_argument("--l2", type=float, help="λ (train)")
    parser.add_argument("--positive-rating", type=float, help="the lowest rating that counts as liked (train)")
    parser.add_argument("--genre-weight", type=float, default=0.0, help="α (train)")
    parser.add_argument("--popularity-exponent", type=float, default=0.0, help="β (train)")
    parser.add_argument("--movies", help="key of the release's zip, whose movies file gives the genres")
    parser.add_argument("--dataset", help="the release the zip is of")
    parser.add_argument("--tuning", help="key of the tuning.json the hyper-parameters come from (train)")
    return parser.parse_args(argv)


class Reporter:
    """Progress lines for each candidate: its validation NDCG, and the time left at the pace so far."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int, candidate: dict) -> None:
        elapsed = time.perf_counter() - self.started
        left = elapsed / done * (total - done)
        ndcg = f"{candidate['ndcg']:.4f}" if "ndcg" in candidate else "n/a"
        progress(
            5 + 90 * done // total,
            f"candidate {done} of at most {total}: {describe_candidate(candidate)}: "
            f"validation NDCG@10 {ndcg}; at most {left:.0f} s left",
        )


def describe_candidate(candidate: dict) -> str:
    return (
        f"ratings ≥ {candidate['positive_rating']:g}, λ {candidate['l2']:g}, genre weight "
        f"{candidate['genre_weight']:g}, popularity exponent {candidate['popularity_exponent']:g}"
    )


def genres(args, store) -> ease.Genres | None:
    """The movies' genres and decades, from the release's movies file in its zip."""
    if not args.movies:
        return None
    with store.open_zip(args.movies) as archive:
        return ease.Genres.of(read_movies(archive, release(args.dataset)))


def tune(args, store) -> None:
    """(positive rating, λ, genre weight, popularity exponent) candidates fitted on the training
    ratings less a validation split carved from them, ranked by NDCG on it
    (movielens_als.selection.tune_ease: a search on the --tune-items most-liked items, its close
    calls settled on four times as many); the test ratings are never read. tuning.json holds
    every candidate fitted and the winner."""
    search = selection.EaseSearch(
        l2s=args.l2s,
        positive_ratings=args.positive_ratings,
        genre_weights=args.genre_weights,
        popularity_exponents=args.popularity_exponents,
        max_items=args.max_items,
        tune_items=args.tune_items,
        relevant_rating=args.relevant_rating,
    )
    fit_part, validation = selection.validation_split(store.read_parquet(args.train), args.strategy, args.seed)
    result = selection.tune_ease(
        rating_arrays(fit_part),
        rating_arrays(validation),
        search,
        seed=args.seed,
        genres=genres(args, store),
        on_candidate=Reporter(),
    )
    best = result["best"]
    if result["at_grid_edge"]:
        print(f"warning: {selection.edge_warning(best, search.grid, result['at_grid_edge'])}", flush=True)
    store.write_json(
        args.output,
        {
            "params": args.params,
            "validation": selection.validation_record(args.strategy, args.seed, fit_part, validation),
            **result,
            "best": {**{name: best[name] for name in selection.EASE_PARAMS}, "ndcg": best["ndcg"]},
            "best_at_grid_edge": bool(result["at_grid_edge"]),
            "tuned_at": utc_now(),
        },
    )
    progress(100, f"best: {describe_candidate(best)} (validation NDCG {best['ndcg']:.4f})")


def train(args, store) -> None:
    """EASE fitted on all the training ratings: items.parquet, weights.npy and model.json, flag last."""
    train_bytes = store.read_bytes(args.train)
    table = pq.read_table(pa.BufferReader(train_bytes))
    setting = {
        "positive_rating": args.positive_rating,
        "l2": args.l2,
        "genre_weight": args.genre_weight,
        "popularity_exponent": args.popularity_exponent,
    }
    progress(10, f"fitting EASE ({describe_candidate(setting)}) on {table.num_rows} ratings")
    started = time.perf_counter()
    movies = genres(args, store) if args.genre_weight else None
    [model] = ease.fit(
        *rating_arrays(table), args.positive_rating, [(args.l2, args.genre_weight)], args.max_items, movies
    )
    model = dataclasses.replace(model, popularity_exponent=args.popularity_exponent)
    fit_seconds = time.perf_counter() - started
    progress(80, f"fitted {len(model.items)} items in {fit_seconds:.1f} s; writing {store.uri(args.output)}")
    files = ease.to_files(
        model,
        params=args.params,
        max_items=args.max_items,
        tuning=args.tuning,
        train={"key": args.train, "sha256": hashlib.sha256(train_bytes).hexdigest(), **describe(table)},
        fit_seconds=round(fit_seconds, 3),
        trained_at=utc_now(),
    )
    store.write_files(args.output, files)
    progress(100, f"model stored at {store.uri(args.output)}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    (tune if args.command == "tune" else train)(args, job_store(args))
    if memory := peak_memory():
        print(f"driver peak resident memory: {memory}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
