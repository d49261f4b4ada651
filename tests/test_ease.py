"""The ranking model (movielens_als.ease) against its closed form computed the plain way, and
what it serves: popularity order for ties, nothing seen, the same weights every time."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pyarrow as pa
import pytest

from movielens_als import ease
from movielens_als.ranking import ease_ranker, recommend
from movielens_als.ratings import Ratings


def liked_ratings(n_users: int = 40, n_items: int = 10, seed: int = 3):
    """Ratings of every other cell or so, from 1 to 5 stars, as (users, items, ratings)."""
    rng = np.random.default_rng(seed)
    users, items = np.divmod(np.flatnonzero(rng.random(n_users * n_items) < 0.5), n_items)
    return users + 1, items + 101, rng.integers(1, 6, len(users)).astype(np.float64)


def reference_weights(users, items, ratings, threshold, l2, order):
    """B = -P / diag(P), zero diagonal, P = (XᵀX + λI)⁻¹, in float64 with numpy's inverse."""
    user_ids = np.unique(users)
    x = np.zeros((len(user_ids), len(order)))
    for u, i, r in zip(users, items, ratings, strict=True):
        if r >= threshold and i in order:
            x[np.searchsorted(user_ids, u), list(order).index(i)] = 1.0
    p = np.linalg.inv(x.T @ x + l2 * np.eye(len(order)))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


@pytest.mark.parametrize("block", [ease.GRAM_BLOCK, 3])  # 3: the Gram and the mirroring in several blocks
def test_weights_match_the_closed_form(block, monkeypatch):
    monkeypatch.setattr(ease, "GRAM_BLOCK", block)
    users, items, ratings = liked_ratings()
    [model] = ease.fit(users, items, ratings, 4.0, [5.0], max_items=100)
    expected = reference_weights(users, items, ratings, 4.0, 5.0, model.items)
    assert model.weights.dtype == np.float32
    np.testing.assert_allclose(model.weights, expected, atol=2e-5)
    assert np.all(np.diag(model.weights) == 0)


def test_items_are_the_most_liked_first_ties_by_id_and_capped():
    users = np.array([1, 2, 3, 1, 2, 1, 3, 4])
    items = np.array([7, 7, 7, 5, 5, 9, 9, 3])
    ratings = np.array([5, 5, 5, 4, 4, 4, 5, 2.0])  # item 3 is never liked
    [model] = ease.fit(users, items, ratings, 4.0, [1.0], max_items=2)
    assert model.items.tolist() == [7, 5] and model.count.tolist() == [3, 2]  # 9 ties 5 on 2, and loses on id
    [everything] = ease.fit(users, items, ratings, 4.0, [1.0], max_items=10)
    assert everything.items.tolist() == [7, 5, 9]


def test_one_fit_per_l2_from_one_gram_matrix():
    users, items, ratings = liked_ratings()
    models = list(ease.fit(users, items, ratings, 3.0, [1.0, 50.0], max_items=100))
    assert [m.l2 for m in models] == [1.0, 50.0]
    for model in models:
        expected = reference_weights(users, items, ratings, 3.0, model.l2, model.items)
        np.testing.assert_allclose(model.weights, expected, atol=2e-5)
    # More λ shrinks the weights.
    assert np.abs(models[1].weights).sum() < np.abs(models[0].weights).sum()


def test_the_same_ratings_give_the_same_weights():
    users, items, ratings = liked_ratings(200, 60, seed=9)
    [first] = ease.fit(users, items, ratings, 3.5, [20.0], max_items=50)
    [second] = ease.fit(users[::-1], items[::-1], ratings[::-1], 3.5, [20.0], max_items=50)
    assert np.array_equal(first.items, second.items) and np.array_equal(first.weights, second.weights)


def test_l2_must_be_positive():
    users, items, ratings = liked_ratings()
    with pytest.raises(ValueError, match="λ must be above 0, not 0"):
        list(ease.fit(users, items, ratings, 4.0, [0.0], max_items=10))


def test_stored_files_load_back_exactly():
    users, items, ratings = liked_ratings()
    [model] = ease.fit(users, items, ratings, 4.0, [5.0], max_items=100)
    files = ease.to_files(model)
    assert set(files) == set(ease.FILES)
    loaded = ease.from_files(files)
    assert np.array_equal(loaded.items, model.items) and np.array_equal(loaded.weights, model.weights)
    assert np.array_equal(loaded.count, model.count)
    assert (loaded.positive_rating, loaded.l2) == (4.0, 5.0)
    with pytest.raises(ValueError, match="do not match"):
        ease.from_files({**files, ease.EASE_ITEMS: files[ease.EASE_ITEMS].slice(1)})


def test_weights_are_in_c_order_fitted_stored_and_loaded():
    """Scoring reads B a row at a time; scipy copies a Fortran-ordered B whole on every call,
    which made serving every user at 25 M ratings take half an hour."""
    users, items, ratings = liked_ratings()
    [model] = ease.fit(users, items, ratings, 4.0, [5.0], max_items=100)
    assert model.weights.flags.c_contiguous
    files = ease.to_files(model)
    assert ease.from_files(files).weights.flags.c_contiguous
    buffer = io.BytesIO()
    np.save(buffer, np.asfortranarray(model.weights), allow_pickle=False)  # as models were stored before
    loaded = ease.from_files({**files, ease.EASE_WEIGHTS: buffer.getvalue()})
    assert loaded.weights.flags.c_contiguous and np.array_equal(loaded.weights, model.weights)


def test_scores_are_what_the_user_liked_times_the_weights():
    users, items, ratings = liked_ratings()
    [model] = ease.fit(users, items, ratings, 4.0, [5.0], max_items=100)
    liked = model.liked(users, items, ratings, np.array([3, 1]))
    for row, user in enumerate([3, 1]):
        mine = (users == user) & (ratings >= 4.0)
        expected = model.weights[np.isin(model.items, items[mine])].sum(axis=0)
        np.testing.assert_allclose(model.scores(liked)[row], expected, rtol=1e-6)


def test_recommendations_skip_seen_items_and_fall_back_to_popularity():
    users = np.array([1, 1, 2, 2, 3, 3, 4])
    items = np.array([10, 20, 10, 30, 20, 30, 40])
    ratings = np.array([5, 5, 5, 5, 5, 4, 1.0])  # user 4 liked nothing
    [model] = ease.fit(users, items, ratings, 4.0, [0.5], max_items=10)
    table = recommend(ease_ranker(model, Ratings(users, items, ratings)), np.unique(users), users, items, 2).to_pylist()
    served = {(r["user"], r["item"]) for r in table}
    assert not served & set(zip(users.tolist(), items.tolist(), strict=True))
    # Users 1-3 each get the one modelled item they have not rated; user 4, scoring 0 everywhere,
    # gets the most liked items first (10, 20, 30 tie at 2 positives: by id).
    assert [(r["user"], r["rank"], r["item"]) for r in table] == [
        (1, 1, 30),
        (2, 1, 20),
        (3, 1, 10),
        (4, 1, 10),
        (4, 2, 20),
    ]


def movies_of(items, genres, titles=None):
    return pa.table(
        {
            "item": pa.array(items, pa.int32()),
            "title": titles or [f"Movie {i}" for i in items],
            "genres": pa.array(genres, pa.list_(pa.string())),
        }
    )


def test_genres_are_a_movies_by_names_matrix_with_the_titles_decade():
    genres = ease.Genres.of(
        movies_of([5, 7, 9], [["Drama"], ["Drama", "Comedy"], []], ["A (1995)", "B, The (2003)", "C"])
    )
    # Names sorted: 1990s, 2000s, Comedy, Drama.
    rows = genres.of_items(np.array([7, 8, 5, 9])).toarray()  # 8: not in the movies file
    np.testing.assert_array_equal(rows, [[0, 1, 1, 1], [0, 0, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0]])


@pytest.mark.parametrize("block", [ease.GRAM_BLOCK, 3])
def test_a_genre_weight_adds_that_many_users_per_genre_to_the_gram_matrix(block, monkeypatch):
    monkeypatch.setattr(ease, "GRAM_BLOCK", block)
    users, items, ratings = liked_ratings()
    ids = np.unique(items)
    genres = ease.Genres.of(movies_of(ids.tolist(), [["Even"] if i % 2 == 0 else ["Odd", "Rare"] for i in ids]))
    [plain] = ease.fit(users, items, ratings, 4.0, [5.0], max_items=100, genres=genres)
    [model] = ease.fit(users, items, ratings, 4.0, [(5.0, 3.0)], max_items=100, genres=genres)
    assert plain.genre_weight == 0.0 and model.genre_weight == 3.0
    np.testing.assert_allclose(
        plain.weights, reference_weights(users, items, ratings, 4.0, 5.0, plain.items), atol=2e-5
    )
    # As 3 more users who like every movie of a genre: rows of X, one per genre, 3 times over.
    f = genres.of_items(model.items).toarray()
    extra_users, extra_items = [], []
    for genre in range(f.shape[1]):
        for copy in range(3):
            liked = model.items[f[:, genre] > 0]
            extra_users.extend([10_000 + 3 * genre + copy] * len(liked))
            extra_items.extend(liked)
    expected = reference_weights(
        np.concatenate([users, extra_users]),
        np.concatenate([items, extra_items]),
        np.concatenate([ratings, np.full(len(extra_items), 5.0)]),
        4.0,
        5.0,
        model.items,
    )
    np.testing.assert_allclose(model.weights, expected, atol=2e-5)
    with pytest.raises(ValueError, match="needs the movies' genres"):
        list(ease.fit(users, items, ratings, 4.0, [(5.0, 3.0)], max_items=100))


def test_the_popularity_exponent_scales_each_items_scores_and_is_stored():
    users, items, ratings = liked_ratings()
    [model] = ease.fit(users, items, ratings, 4.0, [5.0], max_items=100)
    discounted = dataclasses.replace(model, popularity_exponent=-0.5)
    liked = model.liked(users, items, ratings, np.array([3, 1]))
    np.testing.assert_allclose(discounted.scores(liked), model.scores(liked) * (model.count + 1.0) ** -0.5, rtol=1e-6)
    loaded = ease.from_files(ease.to_files(discounted))
    assert loaded.popularity_exponent == -0.5 and loaded.genre_weight == 0.0
    old = ease.to_files(model)
    del old[ease.MODEL_JSON]["genre_weight"], old[ease.MODEL_JSON]["popularity_exponent"]  # as stored before
    assert ease.from_files(old).popularity_exponent == 0.0
