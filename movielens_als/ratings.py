"""Ratings as the models and metrics take them: three parallel numpy arrays."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from movielens_als.columns import ITEM, RATING, USER


class Ratings(NamedTuple):
    """Ratings as three parallel arrays: who rated which item how."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray  # float64


def rating_arrays(table: pa.Table) -> Ratings:
    """The Ratings of a table of ratings (columns user, item, rating)."""
    return Ratings(
        table.column(USER).to_numpy(), table.column(ITEM).to_numpy(), table.column(RATING).to_numpy().astype(float)
    )
