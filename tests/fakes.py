"""Small generated MovieLens-format releases with a known latent structure."""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pyarrow as pa

from movielens_als.releases import RELEASES
from movielens_als.synthetic import movies_text

HEADER = "userId,movieId,rating,timestamp"


def ratings_rows(
    n_users: int = 60, n_items: int = 80, rank: int = 3, seed: int = 0
) -> list[tuple[int, int, float, int]]:
    """Ratings from true low-rank factors plus noise, on the half-star scale, so a factor
    model beats the global mean; every user rates between 5 and 40 distinct items."""
    rng = np.random.default_rng(seed)
    users = rng.normal(0, 0.8, (n_users, rank))
    items = rng.normal(0, 0.8, (n_items, rank))
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=rng.integers(5, 41), replace=False):
            value = 3.25 + users[u] @ items[i] + rng.normal(0, 0.3)
            rating = float(np.clip(np.round(value * 2) / 2, 0.5, 5.0))
            rows.append((u + 1, int(i) + 1, rating, 1_000_000_000 + int(rng.integers(0, 10**8))))
    return rows


def ratings_text(rows=None, release: str = "ml-latest-small", header: str | None = None) -> str:
    """Rows in the file format of `release` (its delimiter and header, whole stars where the
    release has them); `header` replaces the release's header line."""
    rel = RELEASES[release]
    rows = ratings_rows() if rows is None else rows

    def rating(value: float) -> str:
        return f"{value:g}" if rel.rating_step == 1 else f"{value:.1f}"

    lines = [rel.delimiter.join((str(u), str(i), rating(r), str(t))) for u, i, r, t in rows]
    head = header if header is not None else (rel.delimiter.join(rel.header) if rel.header else None)
    return "\n".join([head, *lines] if head is not None else lines) + "\n"


def ratings_csv(rows=None, header: str = HEADER) -> str:
    return ratings_text(rows, "ml-latest-small", header)


def release_zip(name: str = "ml-latest-small", ratings: str | None = None, member: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member or RELEASES[name].ratings_member, ratings_csv() if ratings is None else ratings)
        archive.writestr(RELEASES[name].movies_member, movies_text(name))
        archive.writestr(f"{name}/README.txt", "A generated test release, not MovieLens data.\n")
    return buffer.getvalue()


def ratings_table(users, items, ratings) -> pa.Table:
    return pa.table(
        {
            "user": pa.array(users, pa.int32()),
            "item": pa.array(items, pa.int32()),
            "rating": pa.array(ratings, pa.float32()),
            "timestamp": pa.array(np.zeros(len(users)), pa.int64()),
        }
    )


# Three ratings around a global mean of 3 and their damped biases under the documented
# constants (user damping 15, item damping 10, three passes), worked out by hand in exact
# fractions. Centred ratings: (1, 10) +2, (1, 20) 0, (2, 10) -2.
#   pass 1: b_10 = (2 - 2) / (2 + 10) = 0, b_20 = 0 / (1 + 10) = 0;
#           b_1 = (2 + 0) / (2 + 15) = 2/17, b_2 = -2 / (1 + 15) = -1/8
#   pass 2: b_10 = ((2 - 2/17) + (-2 + 1/8)) / 12 = 1/1632, b_20 = (0 - 2/17) / 11 = -2/187;
#           b_1 = 36085/305184, b_2 = -3265/26112
#   pass 3: the values below. One pass, or another damping, gives other numbers.
KNOWN_BIAS_RATINGS = ([1, 1, 2], [10, 20, 10], [5.0, 3.0, 1.0])
KNOWN_USER_BIASES = {1: 431886797 / 3652442112, 2: -39074617 / 312508416}
KNOWN_ITEM_BIASES = {10: 11065 / 19531776, 20: -36085 / 3357024}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()
