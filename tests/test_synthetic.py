import zipfile

import numpy as np
import pyarrow.compute as pc
import pytest

from movielens_als import ease, metrics
from movielens_als.columns import GENRES, RATING, TIMESTAMP, TITLE
from movielens_als.ease import TITLE_YEAR, Genres
from movielens_als.ranking import ease_ranker, popularity_ranker
from movielens_als.ratings import rating_arrays
from movielens_als.releases import RELEASES, read_ratings
from movielens_als.split import split_ratings
from movielens_als.synthetic import main, synthetic_ratings, synthetic_release


def test_is_deterministic_for_a_seed_and_has_distinct_pairs_on_the_scale():
    first = synthetic_ratings(20_000, 500, 300, seed=3)
    assert first.equals(synthetic_ratings(20_000, 500, 300, seed=3))
    assert not first.equals(synthetic_ratings(20_000, 500, 300, seed=4))
    pairs = first.column("userId").to_numpy().astype(np.int64) * 1000 + first.column("movieId").to_numpy()
    assert first.num_rows == 20_000 and len(np.unique(pairs)) == 20_000
    ratings = first.column("rating").to_numpy()
    assert set(np.unique(ratings)) <= set(np.arange(1, 11) / 2)
    assert 3.2 < ratings.mean() < 3.9  # MovieLens: 3.5 to 3.6


def test_activity_and_popularity_are_long_tailed():
    table = synthetic_ratings(100_000, 2_000, 1_000, seed=1)
    per_user = np.bincount(table.column("userId").to_numpy())[1:]
    per_item = np.bincount(table.column("movieId").to_numpy())[1:]
    assert per_user.max() > 8 * np.median(per_user)
    assert per_item.max() > 8 * np.median(per_item)


def test_too_many_ratings_for_the_users_and_items_are_refused():
    with pytest.raises(ValueError, match="need more than 10 users x 10 items"):
        synthetic_ratings(60, 10, 10)


@pytest.mark.parametrize("layout", ["ml-25m", "ml-1m", "ml-100k", "ml-10m"])
def test_the_command_writes_a_release_the_pipeline_reads(tmp_path, layout, capsys):
    path = tmp_path / f"{layout}.zip"
    main([str(path), "--ratings", "5000", "--users", "200", "--items", "150", "--layout", layout])
    with zipfile.ZipFile(path) as archive:
        table, report = read_ratings(archive, RELEASES[layout])
    assert table.num_rows == 5000 and report.duplicates_dropped == 0
    assert (path.parent / f"{layout}.zip.md5").read_text().startswith(f"MD5 ({layout}.zip) = ")
    assert "5000 ratings" in capsys.readouterr().out
    with zipfile.ZipFile(path) as archive:  # no clock in the file: the same seed, the same MD5
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_movies_have_one_to_four_genres_at_real_frequencies_and_a_year_in_their_title():
    movies = synthetic_release(2_000, 100, 3_000, seed=2).movies
    genres = movies.column(GENRES).to_pylist()
    assert {len(g) for g in genres} <= {1, 2, 3, 4}
    drama = sum("Drama" in g for g in genres) / len(genres)
    noir = sum("Film-Noir" in g for g in genres) / len(genres)
    assert 0.35 < drama < 0.55 and noir < 0.03  # ml-latest-small: 45% and 0.9%
    years = [_year(t) for t in movies.column(TITLE).to_pylist()]
    assert min(years) >= 1902 and max(years) <= 2018 and 1990 <= np.median(years) <= 2005


def test_a_users_liked_movies_share_genres_more_than_chance():
    generated = synthetic_release(30_000, 300, 2_000, seed=5)
    ratings = generated.ratings
    liked = ratings.filter(pc.greater_equal(ratings.column(RATING), 4.0))
    matrix = Genres.of(generated.movies).of_items(liked.column("movieId").to_numpy()).toarray()
    users = liked.column("userId").to_numpy()
    per_user = np.array([matrix[users == u].mean(axis=0) for u in np.unique(users)])
    # The spread of genre shares between users beats that of the same ratings shuffled.
    shuffled = np.random.default_rng(0).permutation(users)
    by_chance = np.array([matrix[shuffled == u].mean(axis=0) for u in np.unique(users)])
    assert per_user.std(axis=0).mean() > 1.5 * by_chance.std(axis=0).mean()


def test_ease_beats_the_most_popular_movies_by_a_clear_margin():
    def margin(seed: int) -> float:
        generated = synthetic_release(30_000, 300, 2_000, seed=seed)
        train_table, test_table = split_ratings(
            generated.ratings.rename_columns(["user", "item", RATING, TIMESTAMP]), "user_random", 0.2, 42
        )
        train, test = rating_arrays(train_table), rating_arrays(test_table)
        judge = metrics.Judge(train, test, seed=42, relevant_rating=4.0)
        [model] = ease.fit(*train, 4.0, [(200, 0)], 16384, None)
        items, count = np.unique(train.items, return_counts=True)
        ease_ndcg = _ndcg(judge(ease_ranker(model, judge.seen)))
        return ease_ndcg / _ndcg(judge(popularity_ranker(items, count, judge.reach)))

    # One seed's margin at this size swings from 1.32x to 1.66x (seeds 0-2: 1.52, 1.32, 1.66);
    # ml-latest-small's is 1.94x, bench/generator.py's release of its shape 1.8x.
    assert np.median([margin(seed) for seed in range(3)]) > 1.4


def test_every_movie_is_rated_when_there_are_as_many_ratings_as_movies():
    # A MovieLens movies file lists the movies someone rated; without the cover, 13% of these went unrated.
    table = synthetic_ratings(100_836, 610, 9_742, seed=0)
    assert len(np.unique(table.column("movieId").to_numpy())) == 9_742
    assert table.num_rows == 100_836 and np.all(np.bincount(table.column("userId").to_numpy())[1:] >= 20)
    pairs = table.column("userId").to_numpy().astype(np.int64) * 10_000 + table.column("movieId").to_numpy()
    assert len(np.unique(pairs)) == table.num_rows and np.all(np.diff(pairs) > 0)  # distinct, in user order


def test_the_rating_histogram_and_year_are_as_ml_latest_smalls():
    generated = synthetic_release(100_836, 610, 9_742, seed=0)
    ratings = generated.ratings.column(RATING).to_numpy()
    share = {star: np.mean(ratings == star) for star in (0.5, 3.0, 4.0, 5.0)}
    # ml-latest-small: 4 stars the most common (26.6%), then 3 (19.9%), 5 well below 4 (13.1%).
    assert share[4.0] > share[3.0] > share[5.0] > share[0.5] and share[5.0] < 0.18
    assert 3.4 < ratings.mean() < 3.6  # 3.50
    count = np.bincount(generated.ratings.column("movieId").to_numpy(), minlength=9_743)[1:]
    years = np.array([_year(t) for t in generated.movies.column(TITLE).to_pylist()])
    assert abs(np.corrcoef(years, np.log1p(count))[0, 1]) < 0.1  # ml-latest-small: 0.008


def test_the_help_says_that_seeds_give_other_files_than_before(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "Files changed" in capsys.readouterr().out


def _year(title: str) -> int:
    found = TITLE_YEAR.search(title)
    assert found is not None
    return int(found.group(1))


def _ndcg(result: dict | None) -> float:
    assert result is not None
    return result["ndcg"]
