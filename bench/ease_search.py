"""TunedEASE's search (movielens_als.selection.tune_ease) against the full grid of every
(λ, genre weight, popularity exponent) on every item, on one split, alternating, in one
process: seconds, candidates judged, the winner, and the winner's test NDCG@10 once refitted
on all the training ratings and items, as TrainedEASE does. `--items` lists the tuning's item
counts to try (`--tune-items`).

    .venv/bin/python -m bench.ease_search [--zip ../shared/data/ml-latest-small.zip] [--strategy user_random]
        [--test-fraction 0.2] [--seed 42] [--relevant-rating 4] [--items 16384,4096,2048] [--runs 1]

The full grid is the same function with every point of (λ, genre weight) fitted and every
popularity exponent judged, in order.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import zipfile
from pathlib import Path

from bench.harness import SMALL_ZIP, argument_parser, machine
from movielens_als import ease, metrics, selection
from movielens_als.ranking import ease_ranker
from movielens_als.ratings import rating_arrays
from movielens_als.releases import RELEASES, read_movies, read_ratings
from movielens_als.split import split_ratings

# TunedEASE's defaults
L2S, POSITIVES, MAX_ITEMS = [100, 200, 400, 800, 1600], [0.5, 3.5, 4.0], 16384
GENRE_WEIGHTS, EXPONENTS = [0, 1, 3, 10, 30], [0, -0.1, -0.2, -0.3]


class EveryPoint(selection.Climb):
    """Every point of the grid, in order, whatever the scores."""

    def __next__(self) -> tuple[float, ...]:
        for at in itertools.product(*(range(len(values)) for values in self.axes)):
            if at not in self.scores:
                return self._values(at)
        raise StopIteration


def every_point(l2s, genre_weights, start, scores):
    yield from itertools.product(sorted(set(l2s)), sorted(set(genre_weights)))


def main() -> None:
    parser = argument_parser("bench.ease_search", __doc__)
    parser.add_argument("--zip", type=Path, default=SMALL_ZIP)
    parser.add_argument("--strategy", default="user_random")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--relevant-rating", type=float, default=4.0)
    parser.add_argument("--items", default="16384,4096,2048", help="the tuning's item counts, comma-separated")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    name = next(n for n, r in RELEASES.items() if r.zip_name == args.zip.name)
    with zipfile.ZipFile(args.zip) as archive:
        ratings, _ = read_ratings(archive, RELEASES[name], False)
        genres = ease.Genres.of(read_movies(archive, RELEASES[name]))
    train_table, test_table = split_ratings(ratings, args.strategy, args.test_fraction, args.seed)
    train, test = rating_arrays(train_table), rating_arrays(test_table)
    fit_part, validation = (
        rating_arrays(t) for t in selection.validation_split(train_table, args.strategy, args.seed, None)
    )
    judge = metrics.Judge(train, test, seed=args.seed, relevant_rating=args.relevant_rating)
    print(f"{name}, {args.strategy} {args.test_fraction} seed {args.seed}, relevant ≥ {args.relevant_rating:g}\n")
    print("| search | tuned on items | seconds | judged | winner (liked ≥, λ, genre weight, β) | validation | test |")
    print("|---|---|---|---|---|---|---|")
    searches = [("full grid", True, MAX_ITEMS)] + [("search", False, int(n)) for n in args.items.split(",")]
    tested: dict[tuple, float] = {}
    climb, coordinates = selection.Climb, selection._coordinates
    try:
        for _ in range(args.runs):
            for label, full, items in searches:
                selection.Climb, selection._coordinates = (EveryPoint, every_point) if full else (climb, coordinates)  # type: ignore[misc, assignment]
                started = time.perf_counter()
                search = selection.EaseSearch(
                    L2S, POSITIVES, GENRE_WEIGHTS, EXPONENTS, MAX_ITEMS, items, args.relevant_rating
                )
                result = selection.tune_ease(fit_part, validation, search, seed=args.seed, genres=genres)
                seconds = time.perf_counter() - started
                best = result["best"]
                winner = tuple(best[name] for name in selection.EASE_PARAMS)
                if winner not in tested:
                    [model] = ease.fit(*train, winner[0], [(winner[1], winner[2])], MAX_ITEMS, genres)
                    model = dataclasses.replace(model, popularity_exponent=winner[3])
                    tested[winner] = judge(ease_ranker(model, judge.seen))["ndcg"]
                print(
                    f"| {label} | {min(items, best['items']) if items < MAX_ITEMS else 'all'} | {seconds:.1f} "
                    f"| {len(result['candidates'])} | {', '.join(f'{v:g}' for v in winner)} | {best['ndcg']:.4f} "
                    f"| {tested[winner]:.4f} |",
                    flush=True,
                )
    finally:
        selection.Climb, selection._coordinates = climb, coordinates  # type: ignore[misc]


if __name__ == "__main__":
    main()
