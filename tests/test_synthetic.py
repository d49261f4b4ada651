import zipfile

import numpy as np
import pytest

from movielens_als.releases import RELEASES, read_ratings
from movielens_als.synthetic import main, synthetic_ratings


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
