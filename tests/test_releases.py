import io
import re
import struct
import zipfile

import pytest

from movielens_als.releases import (
    RATINGS_SCHEMA,
    RELEASES,
    RatingsError,
    Source,
    read_fold,
    read_movies,
    read_ratings,
    release,
    release_source,
)
from tests.fakes import movies_text, ratings_csv, ratings_text, release_zip

ROWS = [(1, 10, 4.0, 100), (1, 11, 3.0, 101), (2, 10, 5.0, 102), (3, 12, 1.0, 103)]
FORMATS = ["ml-latest-small", "ml-100k", "ml-1m", "ml-10m", "ml-25m"]


def archive(ratings: str, name: str = "ml-latest-small", member: str | None = None) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(release_zip(name, ratings, member)))


def read(text: str, name: str = "ml-latest-small", skip: bool = False):
    return read_ratings(archive(text, name), RELEASES[name], skip)


def with_line(name: str, line_number: int, line: str) -> str:
    """A clean file of `name`'s format with line `line_number` (counting the header) replaced."""
    lines = ratings_text(ROWS, name).splitlines()
    lines[line_number - 1] = line
    return "\n".join(lines) + "\n"


def test_the_catalogue_names_member_format_scale_and_checksum_source():
    assert list(RELEASES) == [
        "ml-100k",
        "ml-1m",
        "ml-10m",
        "ml-20m",
        "ml-25m",
        "ml-32m",
        "ml-latest-small",
        "ml-latest",
    ]
    assert RELEASES["ml-100k"].ratings_member == "ml-100k/u.data" and RELEASES["ml-100k"].delimiter == "\t"
    assert RELEASES["ml-1m"].ratings_member == "ml-1m/ratings.dat" and RELEASES["ml-1m"].delimiter == "::"
    assert RELEASES["ml-10m"].ratings_member == "ml-10M100K/ratings.dat"
    for rel in RELEASES.values():
        assert rel.zip_name == f"{rel.name}.zip"
        assert rel.md5 is None or re.fullmatch(r"[0-9a-f]{32}", rel.md5)
    # Re-issued releases are checked against the published .md5, immutable ones against a pin.
    assert {r.name for r in RELEASES.values() if r.md5 is None} == {"ml-latest-small", "ml-latest"}
    assert RELEASES["ml-25m"].md5 == "6b51fb2759a8657d3bfcbfc42b592ada"


def test_an_unknown_release_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown MovieLens release 'ml-7m'; known releases: ml-100k, .*ml-latest"):
        release("ml-7m")


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_reads_into_the_common_schema(name):
    table, report = read(ratings_text(ROWS, name), name)
    assert table.schema == RATINGS_SCHEMA
    assert [tuple(r.values()) for r in table.to_pylist()] == ROWS
    assert (report.malformed_lines_skipped, report.out_of_scale_skipped, report.duplicates_dropped) == (0, 0, 0)


def test_reads_the_real_release(real_release_zip):
    with zipfile.ZipFile(real_release_zip) as z:
        table, report = read_ratings(z, RELEASES["ml-latest-small"])
    assert table.num_rows == 100_836 and report.duplicates_dropped == 0


def test_accepts_crlf_line_ends():
    assert read(ratings_text(ROWS).replace("\n", "\r\n"))[0].num_rows == 4


@pytest.mark.parametrize(
    "name, line, problem",
    [
        ("ml-latest-small", "1,11,3.0", "expected 4 fields separated by ','"),
        ("ml-latest-small", "1,11,3.0,101,7", "expected 4 fields separated by ','"),
        ("ml-latest-small", "1,abc,3.0,101", "item is not a whole number from 1 to 999999999"),
        ("ml-latest-small", "1,11,,101", "empty rating"),
        ("ml-latest-small", "", "expected 4 fields"),
        ("ml-latest-small", "1,11,3.0,1.5e9", "timestamp is not a whole number of seconds"),
        ("ml-latest-small", "-1,11,3.0,101", "user is not a whole number from 1 to 999999999"),
        ("ml-latest-small", "1,0,3.0,101", "item is not a whole number from 1 to 999999999"),
        ("ml-100k", "0\t50\t5\t883603013", "user is not a whole number from 1 to 999999999"),
        ("ml-1m", "1::00::3::101", "item is not a whole number from 1 to 999999999"),
        ("ml-1m", "1::11:3::101", "expected 4 fields separated by '::'"),
        ("ml-1m", "1::x::3::101", "item is not a whole number from 1 to 999999999"),
        ("ml-100k", "1\t11\t3", "expected 4 fields separated by '\\t'"),
        ("ml-100k", "1 11 3 101", "expected 4 fields"),
    ],
)
def test_a_malformed_line_is_named_with_its_number_and_text(name, line, problem):
    line_number = 3 if RELEASES[name].header else 2
    with pytest.raises(RatingsError) as error:
        read(with_line(name, line_number, line), name)
    assert str(error.value).startswith(f"{RELEASES[name].ratings_member} line {line_number}: {problem}")
    assert str(error.value).endswith(f": {line!r}; 1 malformed lines in all (--skip-malformed drops and counts them)")


@pytest.mark.parametrize(
    "name, line, message",
    [
        ("ml-latest-small", "2,10,7.0,102", "line 4: rating 7 is outside the release's scale [0.5, 5] in steps of 0.5"),
        ("ml-latest-small", "2,10,3.7,102", "line 4: rating 3.7 is outside"),
        ("ml-1m", "2::10::4.5::102", "line 3: rating 4.5 is outside the release's scale [1, 5] in steps of 1"),
        ("ml-100k", "2\t10\t0\t102", "line 3: rating 0 is outside"),
    ],
)
def test_a_rating_off_the_release_scale_is_named_with_its_line(name, line, message):
    line_number = 4 if RELEASES[name].header else 3
    with pytest.raises(RatingsError, match=re.escape(f"{RELEASES[name].ratings_member} {message}")):
        read(with_line(name, line_number, line), name)


def test_skip_malformed_drops_ids_below_one():
    table, report = read(ratings_text(ROWS) + "0,50,5.0,883603013\n3,0,4.0,1\n", skip=True)
    assert table.num_rows == len(ROWS) and min(table.column("user").to_pylist()) >= 1
    assert min(table.column("item").to_pylist()) >= 1 and report.malformed_lines_skipped == 2


def test_skip_malformed_drops_and_counts_bad_lines():
    text = ratings_text(ROWS) + "1,99\n\n5,abc,3.0,1\n5,13,9.0,1\n5,14,2.5,1\n"
    table, report = read(text, skip=True)
    assert table.num_rows == 5
    assert (report.malformed_lines_skipped, report.out_of_scale_skipped) == (3, 1)


def test_duplicate_pairs_keep_the_latest_rating_and_are_counted():
    rows = [(1, 10, 4.0, 100), (2, 10, 3.0, 50), (1, 10, 2.0, 300), (1, 10, 5.0, 200), (2, 10, 1.0, 50)]
    table, report = read(ratings_text(rows))
    # (1, 10): the rating of timestamp 300; (2, 10): a tie, so the later line wins.
    assert [tuple(r.values()) for r in table.to_pylist()] == [(1, 10, 2.0, 300), (2, 10, 1.0, 50)]
    assert report.duplicates_dropped == 3


@pytest.mark.parametrize(
    "text, name, message",
    [
        (
            "userId,itemId,rating,timestamp\n1,1,4.0,1\n",
            "ml-latest-small",
            (
                "ml-latest-small/ratings.csv line 1: header is 'userId,itemId,rating,timestamp', "
                "expected 'userId,movieId,rating,timestamp'"
            ),
        ),
        ("userId,movieId,rating,timestamp\n", "ml-latest-small", "ml-latest-small/ratings.csv: no ratings"),
        ("", "ml-latest-small", "ml-latest-small/ratings.csv: the file is empty"),
        ("", "ml-1m", "ml-1m/ratings.dat: the file is empty"),
    ],
)
def test_a_bad_header_or_an_empty_file_is_named(text, name, message):
    with pytest.raises(RatingsError, match=re.escape(message)):
        read(text, name)


def test_a_missing_member_is_named():
    with pytest.raises(RatingsError, match=r"the zip has no member ml-latest-small/ratings.csv"):
        read_ratings(archive(ratings_text(ROWS), member="ml-latest-small/other.csv"), RELEASES["ml-latest-small"])


def test_a_member_name_that_escapes_the_archive_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("ml-latest-small/ratings.csv", ratings_text(ROWS))
        z.writestr("../../etc/cron.d/evil", "* * * * * root true\n")
    with pytest.raises(RatingsError, match=r"escapes the archive \('../../etc/cron.d/evil'\)"):
        read_ratings(zipfile.ZipFile(buffer), RELEASES["ml-latest-small"])


def test_a_member_that_declares_an_absurd_size_is_refused():
    bomb = ratings_text(ROWS) + "0" * 20_000_000  # compresses about 1000 to 1
    with pytest.raises(RatingsError, match=r"claims 200\d{5} bytes from \d+ compressed: .*zip bomb"):
        read(bomb)


def test_a_member_larger_than_it_declares_is_refused():
    data = bytearray(release_zip(ratings=ratings_text(ROWS) + "0" * 10_000))
    # Make the headers claim 100 bytes: the reader stops there and the CRC no longer matches.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature)
        data[at + offset : at + offset + 4] = struct.pack("<I", 100)
    with pytest.raises(RatingsError, match=r"ml-latest-small/ratings.csv is corrupt"):
        read_ratings(zipfile.ZipFile(io.BytesIO(bytes(data))), RELEASES["ml-latest-small"])


def test_a_release_comes_from_the_base_url_with_the_catalogue_checksum():
    assert release_source("ml-1m", "http://mirror.internal/movielens") == Source(
        "http://mirror.internal/movielens/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906"
    )
    assert release_source("ml-latest-small", "http://m/") == Source("http://m/ml-latest-small.zip", None)


def test_url_and_md5_overrides_apply_per_release():
    source = release_source(
        "ml-25m", "http://m/", urls={"ml-25m": "http://other/25.zip"}, md5s={"ml-25m": "AB" * 16, "ml-1m": "cd" * 16}
    )
    assert source == Source("http://other/25.zip", "ab" * 16)


@pytest.mark.parametrize(
    "urls, md5s, message",
    [
        ({"ml-2m": "http://x"}, {}, r"unknown MovieLens release 'ml-2m'; known releases: ml-100k"),
        ({}, {"ml-25m": "not-a-checksum"}, r"the md5 override for ml-25m is 'not-a-checksum', not 32 hexadecimal"),
    ],
)
def test_bad_overrides_are_rejected(urls, md5s, message):
    with pytest.raises(ValueError, match=message):
        release_source("ml-25m", "http://m/", urls, md5s)


@pytest.mark.parametrize("name", ["ml-latest-small", "ml-100k", "ml-1m", "ml-10m"])
def test_movie_titles_of_every_layout_keep_their_commas_colons_and_accents(name):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(RELEASES[name].movies_member, movies_text(name, n_items=3))
    movies = read_movies(zipfile.ZipFile(buffer), RELEASES[name])
    assert movies.column("item").to_pylist() == [1, 2, 3]
    assert movies.column("title")[1].as_py() == "Movie 2, The: Part 2 (Café 1992)"
    # u.item flags its genres (the fake's "0|1": the second of ML_100K_GENRES); the others name them.
    expected = ["Action"] if name == "ml-100k" else ["Drama", "Comedy"]
    assert movies.column("genres").to_pylist() == [expected] * 3


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("ml-latest-small", 'movieId,title,genres\n1,"A, The (1995)",(no genres listed)\n2,B (2001),Drama|War\n'),
        ("ml-1m", "1::A (1995)::(no genres listed)\n2::B (2001)::Drama|War\n"),
        ("ml-100k", "1|A (1995)|01-Jan-1995||http://x|1|0|0\n2|B (2001)|01-Jan-2001||http://x|0|0|0|0|0|0|0|0|1\n"),
    ],
)
def test_a_movie_without_a_genre_has_none(name, text):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(RELEASES[name].movies_member, text)
    movies = read_movies(zipfile.ZipFile(buffer), RELEASES[name])
    assert movies.column("genres").to_pylist() == [[], ["Drama"] if name == "ml-100k" else ["Drama", "War"]]


def test_a_movies_csv_without_genres_is_refused_by_name():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(RELEASES["ml-latest-small"].movies_member, "movieId,title\n1,A\n")
    with pytest.raises(RatingsError, match=r"ml-latest-small/movies.csv: not 'movieId,title,genres'"):
        read_movies(zipfile.ZipFile(buffer), RELEASES["ml-latest-small"])


def test_the_real_releases_titles_and_genres(real_release_zip):
    with zipfile.ZipFile(real_release_zip) as z:
        movies = read_movies(z, RELEASES["ml-latest-small"])
    assert movies.num_rows == 9742
    assert "Toy Story (1995)" in movies.column("title").to_pylist()
    assert movies.column("genres")[0].as_py() == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert sum(not g for g in movies.column("genres").to_pylist()) == 34  # "(no genres listed)"


def test_ml_100k_genres_are_named_from_its_flags(ml_100k_zip):
    with zipfile.ZipFile(ml_100k_zip) as z:
        movies = read_movies(z, RELEASES["ml-100k"])
    assert movies.num_rows == 1682
    assert movies.column("genres")[0].as_py() == ["Animation", "Children's", "Comedy"]  # Toy Story
    assert sum(not g for g in movies.column("genres").to_pylist()) == 2  # flagged "unknown" only


def fold_archive(base: str, test: str, fold: str = "u1") -> zipfile.ZipFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        with zipfile.ZipFile(io.BytesIO(release_zip("ml-100k", ratings_text(ROWS, "ml-100k")))) as release_files:
            for info in release_files.infolist():
                out.writestr(info, release_files.read(info))
        out.writestr(f"ml-100k/{fold}.base", base)
        out.writestr(f"ml-100k/{fold}.test", test)
    return zipfile.ZipFile(buffer)


def test_an_official_fold_is_read_from_its_base_and_test_files():
    base, test = ratings_text(ROWS[:3], "ml-100k"), ratings_text(ROWS[3:], "ml-100k")
    train_table, test_table, report = read_fold(fold_archive(base, test, "u3"), RELEASES["ml-100k"], "u3")
    assert train_table.schema == RATINGS_SCHEMA and test_table.schema == RATINGS_SCHEMA
    assert train_table.column("item").to_pylist() == [10, 11, 10] and test_table.column("user").to_pylist() == [3]
    assert report.malformed_lines_skipped == 0


def test_a_malformed_fold_line_is_named_by_member_line_and_text():
    base = ratings_text(ROWS, "ml-100k").replace("2\t10\t5\t102", "2\t10\tfive\t102")
    with pytest.raises(RatingsError, match=r"ml-100k/u1.base line 3: rating is not a decimal number: '2\\t10\\tfive"):
        read_fold(fold_archive(base, ratings_text(ROWS, "ml-100k")), RELEASES["ml-100k"], "u1")
    train_table, _, report = read_fold(
        fold_archive(base, ratings_text(ROWS, "ml-100k")), RELEASES["ml-100k"], "u1", skip_malformed=True
    )
    assert (train_table.num_rows, report.malformed_lines_skipped) == (3, 1)


def test_only_ml_100k_ships_folds_and_an_unknown_fold_is_refused():
    assert [name for name, r in RELEASES.items() if r.folds] == ["ml-100k"]
    assert RELEASES["ml-100k"].fold_members("ua") == ("ml-100k/ua.base", "ml-100k/ua.test")
    with pytest.raises(ValueError, match=r"ml-100k has no official fold 'u6'; its folds: u1, u2, u3, u4, u5, ua, ub"):
        RELEASES["ml-100k"].fold_members("u6")


@pytest.mark.parametrize("name", [name for name, r in RELEASES.items() if r.header])
def test_a_byte_order_mark_before_the_csv_header_is_accepted(name):
    table, _ = read("\ufeff" + ratings_csv(ROWS), name)
    assert table.num_rows == len(ROWS) and table.column("user").to_pylist()[0] == 1
    # The line-by-line reading of a file with a bad line skips the same header and counts alike.
    with pytest.raises(RatingsError, match=rf"^{name}/ratings.csv line 6: item is not a whole number"):
        read("\ufeff" + ratings_csv(ROWS) + "4,x,3.0,5\n", name)
