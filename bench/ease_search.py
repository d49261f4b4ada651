"""TunedEASE's search (movielens_als.selection.tune_ease) against the full grid it replaced, on
one real split, alternating, in one process: seconds, candidates fitted, and the winner.

    .venv/bin/python -m bench.ease_search [--zip ../shared/data/ml-latest-small.zip] [--strategy user_random]
        [--test-fraction 0.2] [--seed 42] [--relevant-rating 4] [--runs 1]

The full grid is the same function with a Bracket that hands out every λ in order.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

from bench.harness import SMALL_ZIP, argument_parser, machine
from movielens_als import selection
from movielens_als.ranking import rating_arrays
from movielens_als.releases import RELEASES, read_ratings
from movielens_als.split import split_ratings

L2S, POSITIVES, MAX_ITEMS = [100, 200, 400, 800, 1600], [0.5, 3.5, 4.0], 16384  # TunedEASE's defaults


class FullGrid(selection.Bracket):
    """Every λ, in order, whatever the scores."""

    def __next__(self) -> float:
        for i, value in enumerate(self.values):
            if i not in self.scores:
                return value
        raise StopIteration


def main() -> None:
    parser = argument_parser("bench.ease_search", __doc__)
    parser.add_argument("--zip", type=Path, default=SMALL_ZIP)
    parser.add_argument("--strategy", default="user_random")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--relevant-rating", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    name = next(n for n, r in RELEASES.items() if r.zip_name == args.zip.name)
    with zipfile.ZipFile(args.zip) as archive:
        ratings, _ = read_ratings(archive, RELEASES[name], False)
    train, _ = split_ratings(ratings, args.strategy, args.test_fraction, args.seed)
    fit_part, validation = (rating_arrays(t) for t in selection.validation_split(train, args.strategy, args.seed))
    print(f"{name}, {args.strategy} {args.test_fraction} seed {args.seed}, relevant ≥ {args.relevant_rating:g}\n")
    print("| search | seconds | candidates fitted | winner (liked ≥, λ) | validation NDCG@10 |")
    print("|---|---|---|---|---|")
    bracket = selection.Bracket
    try:
        for _ in range(args.runs):
            for label, search in (("full grid", FullGrid), ("bracket", bracket)):
                selection.Bracket = search  # type: ignore[misc]
                started = time.perf_counter()
                result = selection.tune_ease(
                    fit_part,
                    validation,
                    POSITIVES,
                    L2S,
                    MAX_ITEMS,
                    seed=args.seed,
                    relevant_rating=args.relevant_rating,
                )
                seconds = time.perf_counter() - started
                best = result["best"]
                print(
                    f"| {label} | {seconds:.1f} | {len(result['candidates'])} "
                    f"| {best['positive_rating']:g}, {best['l2']:g} | {best['ndcg']:.4f} |",
                    flush=True,
                )
    finally:
        selection.Bracket = bracket  # type: ignore[misc]


if __name__ == "__main__":
    main()
