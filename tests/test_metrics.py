import math

import numpy as np
import pytest

from movielens_als.metrics import (
    Judge,
    baselines,
    evaluate,
    mae,
    ranking_at_k,
    ranking_report,
    rating_distribution,
    rmse,
    rmse_by_activity,
    served_diversity,
)
from movielens_als.model import Model, Side, damped_biases
from movielens_als.ranking import explicit_ranker, popularity_ranker, recommend, top_k
from movielens_als.ratings import Ratings
from tests.fakes import ratings_table
from tests.test_model import PAIRS, tiny

INF = np.inf


def test_errors_known_answers():
    prediction, actual = np.array([3.0, 4.0, 2.0]), np.array([4.0, 4.0, 4.0])
    assert rmse(prediction, actual) == pytest.approx(math.sqrt(5 / 3))
    assert mae(prediction, actual) == pytest.approx(1.0)
    assert rmse(prediction[:0], actual[:0]) is None


def test_rmse_by_activity_buckets():
    counts = np.array([0, 5, 9, 10, 60, 250])
    prediction = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 5.0])
    actual = np.array([2.0, 2.0, 4.0, 3.0, 4.0, 4.0])
    rows = {r["ratings_in_train"]: (r["n"], r["rmse"]) for r in rmse_by_activity(prediction, actual, counts)}
    assert rows == {
        "cold (0)": (1, 1.0),
        "1-9": (2, pytest.approx(math.sqrt(2))),
        "10-49": (1, 0.0),
        "50-199": (1, 0.0),
        "200+": (1, 1.0),
    }


def test_rating_distribution_rounds_predictions_to_half_stars():
    d = rating_distribution(np.array([4.74, 4.76, 0.1]), np.array([5.0, 5.0, 1.0]), (0.5, 5.0))
    assert d["rating"][-2:] == [4.5, 5.0]
    assert d["predicted"][d["rating"].index(4.5)] == 1 and d["predicted"][-1] == 1 and d["predicted"][0] == 1
    assert d["actual"][-1] == 2 and d["actual"][1] == 1


@pytest.mark.parametrize("scale", [(0.5, 5.0), (1.0, 5.0)])
def test_rating_distribution_counts_what_is_close_to_each_half_star(scale):
    rng = np.random.default_rng(0)
    # Half stars, within and outside the scale, a hair off them, and values between them.
    halves = rng.integers(-2, 14, 500) / 2
    actual = np.concatenate([halves, halves[:100] + 1e-9, halves[:100] + 1e-3, rng.uniform(0, 6, 100)])
    d = rating_distribution(rng.uniform(-1, 7, len(actual)), actual, scale)
    bins = np.array(d["rating"])
    assert d["actual"] == np.isclose(actual[:, None], bins[None, :]).sum(axis=0).tolist()
    assert sum(d["predicted"]) == len(actual) and 0 < sum(d["actual"]) < len(actual)


def test_top_k_breaks_ties_by_lower_index_and_skips_excluded():
    scores = np.array([[1.0, 3.0, 3.0, 2.0], [-INF, 5.0, -INF, -INF], [0.0, 0.0, 0.0, 0.0]])
    assert top_k(scores, 2).tolist() == [[1, 2], [1, -1], [0, 1]]


def test_top_k_on_rows_wider_than_its_sample_is_a_full_sort():
    """Wide rows are bounded from a sample of their columns: the result must still be the
    stable sort's, ties, excluded cells and rows with fewer than k candidates included."""
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 40, size=(60, 5_000)).astype(float)  # many ties
    scores[rng.random(scores.shape) < 0.5] = -INF
    scores[:3, 4:] = -INF  # rows with fewer than k candidates, whose sample has none
    scores[3, ::7] = 99.0  # a row whose best all lie in the sampled columns
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    expected = np.where(np.take_along_axis(scores, expected, axis=1) > -INF, expected, -1)
    assert top_k(scores, 10).tolist() == expected.tolist()
    assert top_k(scores.astype(np.float32), 10).tolist() == expected.tolist()  # EASE scores in float32


def test_ranking_at_k_known_answers():
    top = np.array([[1, 2], [5, 6]])
    result = ranking_at_k(top, [np.array([2, 7]), np.array([5])], k=2)
    d2 = 1 / math.log2(3)
    assert result["precision"] == pytest.approx((0.5 + 0.5) / 2)
    assert result["recall"] == pytest.approx((0.5 + 1.0) / 2)
    assert result["ndcg"] == pytest.approx((d2 / (1 + d2) + 1.0) / 2)
    # AP: row 0 hits at 2 of 2 relevant, (1/2) / 2; row 1 hits at 1 of 1.
    assert result["map"] == pytest.approx((0.25 + 1.0) / 2)
    # The standard error of the mean of the rows' NDCG: |a - b| / 2 for two rows.
    assert result["ndcg_se"] == pytest.approx((1.0 - d2 / (1 + d2)) / 2)


def test_average_precision_rewards_early_hits_and_caps_at_k():
    # Three relevant items, k = 2: hits at both positions are a perfect list.
    assert ranking_at_k(np.array([[1, 2]]), [np.array([1, 2, 3])], k=2)["map"] == 1.0
    # One hit at position 2 of a user with one relevant item: 1/2.
    assert ranking_at_k(np.array([[5, 1]]), [np.array([1])], k=2)["map"] == 0.5


def test_served_diversity_counts_catalogue_items_and_their_popularity():
    top = np.array([[10, 20], [10, -1]])
    result = served_diversity(top, np.array([10, 20, 30, 40]), np.array([7, 1, 1, 1]))
    assert result == {"coverage": 0.5, "mean_popularity": pytest.approx((7 + 1 + 7) / 3)}


def test_padding_never_hits_an_unknown_relevant_item():
    # A relevant test item the model does not know is -1; so is a padded slot of the top k.
    assert ranking_at_k(np.array([[3, -1]]), [np.array([-1, 3])], k=2)["recall"] == 0.5
    # Nor is one user's unknown item another user's hit: user 0 never rated item 2 highly.
    assert ranking_at_k(np.array([[2, 0], [1, 0]]), [np.array([1]), np.array([-1, 0])], k=2)["precision"] == 0.25


def ranking_model() -> Model:
    # Every user likes item 30 best, then 20, then 10; item 10 is by far the most popular.
    users = Side(np.array([1, 2, 3]), np.ones((3, 1)), np.zeros(3), np.array([1, 1, 1]))
    items = Side(np.array([10, 20, 30]), np.array([[0.1], [0.2], [0.3]]), np.zeros(3), np.array([50, 2, 1]))
    return Model(0.0, users, items, (0.5, 5.0))


RANKING_TRAIN = Ratings(np.array([1, 2, 3]), np.array([30, 10, 10]), np.array([4.0, 4.0, 4.0]))


def test_ranking_report_excludes_train_items_and_users_without_relevant_items():
    train = RANKING_TRAIN
    # user 1: relevant 20; user 2: relevant 30 and 20; user 3: only a rating below 4.
    test = Ratings(np.array([1, 2, 2, 3]), np.array([20, 30, 20, 20]), np.array([4.0, 5.0, 4.5, 3.0]))
    report = ranking_report(ranking_model(), train, test, k=1, max_users=100, seed=0)
    assert (report["users"], report["eligible_users"], report["sampled"]) == (2, 2, None)
    # Model: user 1 (30 seen) gets 20, a hit; user 2 gets 30, a hit. Popularity: user 1 gets 10, a
    # miss; user 2 (10 seen) gets 20, a hit.
    # The catalogue is the training items, 10 (rated twice) and 30 (once); 20 is served but not in it.
    assert report["catalogue"] == 2
    assert report["model"] == pytest.approx(
        {
            "precision": 1.0,
            "recall": 0.75,
            "ndcg": 1.0,
            "ndcg_se": 0.0,
            "map": 1.0,
            "coverage": 0.5,
            "mean_popularity": 0.5,
        }
    )
    assert report["popularity"] == pytest.approx(
        {
            "precision": 0.5,
            "recall": 0.25,
            "ndcg": 0.5,
            "ndcg_se": 0.5,
            "map": 0.5,
            "coverage": 0.5,
            "mean_popularity": 1.0,
        }
    )


def test_a_lower_relevant_rating_counts_more_test_ratings_as_relevant():
    # As in the test above, but every test rating relevant: user 3 (item 20 rated 3) joins,
    # and user 2's 20 and 30 are both relevant still.
    test = Ratings(np.array([1, 2, 2, 3]), np.array([20, 30, 20, 20]), np.array([4.0, 5.0, 4.5, 3.0]))
    report = ranking_report(ranking_model(), RANKING_TRAIN, test, k=1, max_users=100, seed=0, relevant_rating=1.0)
    assert (report["users"], report["relevant_rating"]) == (3, 1.0)
    # Model: user 1 gets 20 (hit), user 2 gets 30 (hit), user 3 (10 seen) gets 30 (miss):
    # NDCG (1 + 1 + 0) / 3; recall (1 + 1/2 + 0) / 3.
    assert report["model"]["ndcg"] == pytest.approx(2 / 3)
    assert report["model"]["recall"] == pytest.approx(0.5)
    strict = ranking_report(ranking_model(), RANKING_TRAIN, test, k=1, max_users=100, seed=0, relevant_rating=4.5)
    # Only user 2's 30 (5.0) and 20 (4.5) are relevant at ≥ 4.5.
    assert (strict["users"], strict["model"]["ndcg"]) == (1, 1.0)


def test_the_popularity_ranker_within_the_judges_reach_serves_the_whole_catalogues_lists():
    rng = np.random.default_rng(3)
    items = np.arange(200)
    count = rng.integers(0, 6, len(items))  # many ties: they go to the lower id
    # 40 users who have seen 1 to 30 items among the 40 most rated, so that the cut matters;
    # user 0 has seen the 30 first, so that it needs all of the reach.
    first = np.lexsort((items, -count))
    users = np.repeat(np.arange(40), [30, *rng.integers(1, 31, 39)])
    seen = np.concatenate([first[:30], *(rng.choice(first[:40], n, replace=False) for n in np.bincount(users)[1:])])
    train = Ratings(users, seen, np.full(len(users), 4.0))
    test = Ratings(np.arange(40), np.full(40, 199), np.full(40, 5.0))
    judge = Judge(train, test, k=5, seed=0)
    assert judge.reach == 5 + 30
    whole = judge.top(popularity_ranker(items, count))
    assert len(popularity_ranker(items, count, judge.reach).items) == judge.reach < len(items)
    assert np.array_equal(judge.top(popularity_ranker(items, count, judge.reach)), whole)
    # Any less and user 0 gets a shorter list.
    assert not np.array_equal(judge.top(popularity_ranker(items, count, judge.reach - 1)), whole)


def test_ranking_report_samples_users_above_the_limit_with_a_seed():
    test = Ratings(np.array([1, 2, 3]), np.array([20, 30, 20]), np.array([4.0, 5.0, 4.0]))
    first = ranking_report(ranking_model(), RANKING_TRAIN, test, k=1, max_users=2, seed=5)
    assert (first["users"], first["eligible_users"], first["sampled"]) == (2, 3, {"seed": 5})
    assert first == ranking_report(ranking_model(), RANKING_TRAIN, test, k=1, max_users=2, seed=5)


def test_recommend_ranks_unseen_items_per_user():
    seen = (np.array([1, 2, 3]), np.array([30, 10, 10]))
    table = recommend(explicit_ranker(ranking_model()), np.array([3, 1, 2, 1]), *seen, n=2)
    assert table.column_names == ["user", "rank", "item", "score"]
    assert list(zip(*(table.column(c).to_pylist() for c in ("user", "rank", "item")), strict=True)) == [
        (1, 1, 20),
        (1, 2, 10),
        (2, 1, 30),
        (2, 2, 20),
        (3, 1, 30),
        (3, 2, 20),
    ]


def test_evaluate_reports_the_model_against_the_baselines_on_the_same_rows():
    model = tiny()
    train = ratings_table([1, 1, 2], [10, 20, 20], [4.0, 5.0, 3.0])
    test = ratings_table(*PAIRS, [5.0, 4.0, 4.0, 3.0, 2.5, 3.0])
    result = evaluate(model, train, test, seed=0)
    predictions = model.predict(*PAIRS)
    actual = np.array([5.0, 4.0, 4.0, 3.0, 2.5, 3.0])
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((predictions - actual) ** 2)))
    # The baselines are the training ratings' (the next test): their mean is 4.
    assert result["baselines"]["global_mean"]["rmse"] == pytest.approx(np.sqrt(np.mean((4.0 - actual) ** 2)))
    assert result["improvement_over_bias"] == pytest.approx(1 - result["rmse"] / result["baselines"]["bias"]["rmse"])
    assert result["coverage"] == pytest.approx(3 / 6)
    assert result["cold"] == {
        "users": {"n": 2, "rmse": pytest.approx(np.sqrt((0.25**2 + 0) / 2))},
        "items": {"n": 2, "rmse": pytest.approx(0.0)},
    }
    assert result["n_test"] == 6 and sum(result["distribution"]["actual"]) == 6


def test_the_baselines_are_the_training_ratings_own_whatever_the_model_and_clipped():
    # Two models with different biases are judged against the same baselines: the damped
    # user+item biases of the training ratings around their mean, and that mean.
    train = Ratings(np.array([1, 1, 2, 2, 3]), np.array([10, 20, 10, 30, 20]), np.array([5.0, 4.0, 2.0, 1.0, 4.5]))
    test = Ratings(np.array([1, 2, 9]), np.array([30, 20, 10]), np.array([4.0, 2.0, 3.0]))
    mean = train.ratings.mean()
    (_, user_bias, _), (_, item_bias, _) = damped_biases(*train, mean)
    # user 9 is unseen: a bias of 0
    expected = [mean + user_bias[0] + item_bias[2], mean + user_bias[1] + item_bias[1], mean + item_bias[0]]
    bias, global_mean = baselines(train, test, (1.0, 5.0))
    np.testing.assert_allclose(bias, expected)
    assert global_mean.tolist() == [mean] * 3
    clipped, clipped_mean = baselines(train, test, (3.5, 3.6))
    assert clipped.min() >= 3.5 and clipped.max() <= 3.6 and clipped_mean.tolist() == [3.5] * 3
    for model in (tiny(), Model(0.0, tiny().users, tiny().items, (1.0, 5.0))):
        result = evaluate(model, ratings_table(*train), ratings_table(*test), seed=0)
        assert result["baselines"]["bias"]["rmse"] == pytest.approx(rmse(bias, test.ratings))


@pytest.mark.parametrize("biased", [True, False])
def test_a_model_with_the_training_ratings_biases_serves_the_baselines_unchanged(biased):
    rng = np.random.default_rng(1)
    train = Ratings(rng.integers(0, 30, 400), rng.integers(0, 50, 400), rng.integers(1, 11, 400) / 2)
    test = Ratings(rng.integers(0, 35, 100), rng.integers(0, 55, 100), rng.integers(1, 11, 100) / 2)
    mean = float(train.ratings.mean())
    sides = [Side(ids, rng.normal(size=(len(ids), 3)), bias, count) for ids, bias, count in damped_biases(*train, mean)]
    model = Model(mean, *sides, (0.5, 5.0), biased)
    tables = ratings_table(*train), ratings_table(*test)
    assert evaluate(model, *tables, seed=0, biases_of_train=True) == evaluate(model, *tables, seed=0)
    with pytest.raises(ValueError, match="not those of the training ratings"):
        evaluate(tiny(), *tables, seed=0, biases_of_train=True)
