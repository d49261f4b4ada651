import io
import re
import zipfile

import pytest

from pipeline.movielens import RATINGS_SCHEMA, RELEASES, RatingsError, read_ratings, release
from tests.fakes import HEADER, ratings_csv, release_zip

SMALL = RELEASES["ml-latest-small"]


def archive(ratings: str, name: str = "ml-latest-small", member: str | None = None) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(release_zip(name, ratings, member)))


def test_every_release_names_its_member_scale_and_checksum_source():
    for name, rel in RELEASES.items():
        assert rel.name == name and rel.zip_name == f"{name}.zip"
        assert rel.ratings_member.startswith(f"{name}/")
        assert rel.rating_scale[0] < rel.rating_scale[1]
        assert rel.md5 is None or re.fullmatch(r"[0-9a-f]{32}", rel.md5)
    # Re-issued releases are checked against the published .md5, immutable ones against a pin.
    assert RELEASES["ml-latest-small"].md5 is None
    assert RELEASES["ml-25m"].md5 == "6b51fb2759a8657d3bfcbfc42b592ada"


def test_an_unknown_release_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown MovieLens release 'ml-7m'; known releases: .*ml-latest-small"):
        release("ml-7m")


def test_reads_the_ratings_into_the_common_schema():
    table = read_ratings(archive(ratings_csv([(1, 10, 4.5, 100), (2, 20, 0.5, 200)])), SMALL)
    assert table.schema == RATINGS_SCHEMA
    assert table.to_pylist() == [
        {"user": 1, "item": 10, "rating": 4.5, "timestamp": 100},
        {"user": 2, "item": 20, "rating": 0.5, "timestamp": 200},
    ]


def test_reads_the_real_release(real_release_zip):
    with zipfile.ZipFile(real_release_zip) as z:
        table = read_ratings(z, SMALL)
    assert table.num_rows == 100_836
    assert table.schema == RATINGS_SCHEMA


def test_accepts_crlf_line_ends():
    text = ratings_csv([(1, 10, 4.0, 100), (2, 20, 3.0, 200)]).replace("\n", "\r\n")
    assert read_ratings(archive(text), SMALL).num_rows == 2


def test_a_wrong_column_is_named():
    text = ratings_csv([(1, 10, 4.0, 100)], header="userId,itemId,rating,timestamp")
    with pytest.raises(
        RatingsError,
        match=r"ml-latest-small/ratings.csv: header is 'userId,itemId,rating,timestamp', "
        r"expected 'userId,movieId,rating,timestamp'",
    ):
        read_ratings(archive(text), SMALL)


def test_an_out_of_range_rating_is_named_with_its_line():
    text = ratings_csv([(1, 10, 4.0, 100), (1, 11, 3.5, 101), (2, 10, 7.0, 102), (3, 3, 0.0, 103)])
    with pytest.raises(
        RatingsError,
        match=r"ratings.csv line 4: rating 7.0 is outside the release's scale "
        r"\[0.5, 5.0\] \(2 rows are\)",
    ):
        read_ratings(archive(text), SMALL)


def test_a_non_numeric_value_is_named():
    text = f"{HEADER}\n1,10,4.0,100\n1,abc,3.0,101\n"
    with pytest.raises(RatingsError, match=r"ml-latest-small/ratings.csv: .*int32.*'abc'"):
        read_ratings(archive(text), SMALL)


def test_a_missing_value_is_named_with_its_line():
    text = f"{HEADER}\n1,10,4.0,100\n1,11,,101\n"
    with pytest.raises(RatingsError, match=r"ratings.csv line 3: empty value in column 'rating'"):
        read_ratings(archive(text), SMALL)


def test_a_wrong_field_count_is_named():
    text = f"{HEADER}\n1,10,4.0,100\n1,11,3.0\n"
    with pytest.raises(RatingsError, match=r"ml-latest-small/ratings.csv: .*Expected 4 columns, got 3: 1,11,3.0"):
        read_ratings(archive(text), SMALL)


def test_a_header_without_ratings_is_rejected():
    with pytest.raises(RatingsError, match=r"ratings.csv: no ratings"):
        read_ratings(archive(HEADER + "\n"), SMALL)


def test_a_missing_member_is_named():
    with pytest.raises(RatingsError, match=r"has no member ml-latest-small/ratings.csv"):
        read_ratings(archive(ratings_csv(), member="ml-latest-small/other.csv"), SMALL)
