"""The drivers of TunedEASE and TrainedEASE (movielens_als.ease): the ranking model's tuning
and fit, run by pipeline.jobs.DriverTask with the worker's own Python, where the pipeline's
Spark drivers run, with the environment, logs and progress the pipeline gives them.

They start no SparkContext and import no Spark. EASE's work is one sparse Gram matrix and one
dense Cholesky inverse of at most max_items² cells: dense linear algebra in one process, which
LAPACK does at the machine's peak (about 150 Gflop/s here) and Spark does not distribute
(MLlib's RowMatrix collects its Gram matrix to the driver as float64 and has no inverse), while
a SparkContext would only add its start-up (see docs/models.md).

    python drivers/ease_jobs.py tune  --train K --output K --search JSON --movies K --dataset D ...
    python drivers/ease_jobs.py train --train K --output K --setting JSON --max-items N --movies K ...
"""

from __future__ import annotations

import dataclasses
import json
import time

from drivers.common import Pace, job_parser, progress, read_training, run_driver, warn_at_edge
from movielens_als import ease, selection
from movielens_als.ratings import rating_arrays
from movielens_als.releases import read_movies, release
from storage import Store, utc_now


def parse_args(argv: list[str]):
    parser = job_parser(__doc__)
    parser.add_argument("command", choices=("tune", "train"))
    parser.add_argument("--search", type=json.loads, help="the search, a selection.EaseSearch as JSON (tune)")
    parser.add_argument("--strategy", help="how the test split was made, to carve validation alike (tune)")
    parser.add_argument("--setting", type=json.loads, help="the tuned model's selection.EASE_PARAMS, JSON (train)")
    parser.add_argument("--max-items", type=int, help="the most-liked items modelled (train)")
    parser.add_argument("--movies", required=True, help="key of the release's zip, whose movies file gives the genres")
    parser.add_argument("--dataset", required=True, help="the release the zip is of")
    parser.add_argument("--tuning", help="key of the tuning.json the setting comes from (train)")
    return parser.parse_args(argv)


class Reporter:
    """Progress lines for each candidate: its validation NDCG, and the time left at the pace so far."""

    def __init__(self) -> None:
        self.pace = Pace()

    def __call__(self, done: int, total: int, candidate: dict) -> None:
        ndcg = f"{candidate['ndcg']:.4f}" if "ndcg" in candidate else "n/a"
        progress(
            5 + 90 * done // total,
            f"candidate {done} of at most {total}: {describe_candidate(candidate)}: "
            f"validation NDCG@10 {ndcg}; at most {self.pace.seconds_left(done, total):.0f} s left",
        )


def describe_candidate(candidate: dict) -> str:
    return (
        f"ratings ≥ {candidate['positive_rating']:g}, λ {candidate['l2']:g}, genre weight "
        f"{candidate['genre_weight']:g}, popularity exponent {candidate['popularity_exponent']:g}"
    )


def genres(args, store: Store) -> ease.Genres:
    """The movies' genres and decades, from the release's movies file in its zip."""
    with store.open_zip(args.movies) as archive:
        return ease.Genres.of(read_movies(archive, release(args.dataset)))


def tune(args, store: Store) -> None:
    """(positive rating, λ, genre weight, popularity exponent) candidates fitted on the training
    ratings less a validation split carved from them, ranked by NDCG on it
    (movielens_als.selection.tune_ease); the test ratings are never read. tuning.json holds
    every candidate fitted and the winner."""
    search = selection.EaseSearch(**args.search)
    # Every training user: EASE's best λ grows with the users, so a sample would choose another.
    fit_part, validation = selection.validation_split(
        store.read_parquet(args.train), args.strategy, args.seed, max_ratings=None
    )
    result = selection.tune_ease(
        rating_arrays(fit_part),
        rating_arrays(validation),
        search,
        seed=args.seed,
        genres=genres(args, store),
        on_candidate=Reporter(),
    )
    best = result["best"]
    warn_at_edge(result, search.grid)
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


def train(args, store: Store) -> None:
    """EASE fitted on all the training ratings: items.parquet, weights.npy and model.json, flag last."""
    table, fitted_on = read_training(store, args.train)
    setting = args.setting
    progress(10, f"fitting EASE ({describe_candidate(setting)}) on {table.num_rows} ratings")
    started = time.perf_counter()
    movies = genres(args, store) if setting["genre_weight"] else None
    [model] = ease.fit(
        *rating_arrays(table),
        setting["positive_rating"],
        [(setting["l2"], setting["genre_weight"])],
        args.max_items,
        movies,
    )
    model = dataclasses.replace(model, popularity_exponent=setting["popularity_exponent"])
    fit_seconds = time.perf_counter() - started
    progress(80, f"fitted {len(model.items)} items in {fit_seconds:.1f} s; writing {store.uri(args.output)}")
    files = ease.to_files(
        model,
        params=args.params,
        max_items=args.max_items,
        tuning=args.tuning,
        train=fitted_on,
        fit_seconds=round(fit_seconds, 3),
        trained_at=utc_now(),
    )
    store.write_files(args.output, files)
    progress(100, f"model stored at {store.uri(args.output)}")


def main(argv: list[str] | None = None) -> None:
    run_driver(parse_args, {"tune": tune, "train": train}, argv)


if __name__ == "__main__":
    main()
