"""The shared array helpers (movielens_als.arrays) against numpy's own unique and search."""

import numpy as np
import pytest

from movielens_als.arrays import count_distinct, distinct, index_of, threads


@pytest.mark.parametrize(
    "values",
    [
        np.array([5, 3, 5, 0, 9, 3], dtype=np.int32),  # ids: counted
        np.array([7, 2**40, 7, 3], dtype=np.int64),  # too spread to count: sorted
        np.array([4, -1, 4, 2]),  # negative: sorted
        np.array([2.5, 1.0, 2.5]),  # not integers: sorted
        np.array([], dtype=np.int32),
    ],
)
def test_distinct_count_distinct_and_index_of_agree_with_numpys_unique_and_search(values):
    ids, index = distinct(values)
    expected_ids, expected_index = np.unique(values, return_inverse=True)
    assert ids.tolist() == expected_ids.tolist() and index.tolist() == expected_index.tolist()
    assert count_distinct(values) == len(expected_ids)
    wanted = np.concatenate([values, values[:1] + 1 if len(values) else values])  # and one absent
    row, found = index_of(ids[::-1], wanted)  # ids in any order
    assert found.tolist() == np.isin(wanted, ids).tolist()
    assert (ids[::-1][row[found]] == wanted[found]).all() and (row[~found] == 0).all()


def test_threads_are_at_least_one_and_at_most_eight():
    assert 1 <= threads() <= 8
