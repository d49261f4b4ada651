"""The catalogue of MovieLens releases and the reader of their ratings files.

Every release is read into one schema with pyarrow. The fast path parses the file as typed
CSV on all cores; only when that fails (a malformed line, a non-numeric field, an empty
value) is the member read again line by line, still vectorised, to name the first bad line
exactly, or to drop and count the bad lines when the caller asks to skip them.
"""

from __future__ import annotations

import dataclasses
import io
import posixpath
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from movielens_als.columns import GENRES, ITEM, RATING, TIMESTAMP, TITLE, USER

# The one schema every release is read into, whatever its file format.
RATINGS_SCHEMA = pa.schema(
    [
        (USER, pa.int32()),
        (ITEM, pa.int32()),
        (RATING, pa.float32()),
        (TIMESTAMP, pa.int64()),
    ]
)
# ml-100k's u.item flags these genres, in this order; the "no genre" markers of the releases
# (u.item's "unknown", movies.csv's "(no genres listed)") are not genres.
ML_100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
NO_GENRES = ("unknown", "(no genres listed)")
# The header of the `ratings.csv` layout (ml-20m and later, ml-latest*), in file order.
CSV_HEADER = ("userId", "movieId", "rating", "timestamp")
# A ratings member larger than this, or compressed more than this ratio, is not MovieLens
# (ml-latest's ratings.csv, the largest, is under 1 GB and compresses about 5 to 1).
MAX_MEMBER_BYTES = 8 << 30
MAX_COMPRESSION_RATIO = 50


class RatingsError(ValueError):
    """A ratings file that cannot be used as it is; the message names the member and the problem."""


@dataclass(frozen=True)
class Release:
    name: str
    ratings: int  # how many the release holds (ml-latest: as of its last issue), for sizing memory
    ratings_member: str
    delimiter: str  # "," (ratings.csv), "::" (ratings.dat) or "\t" (u.data)
    header: tuple[str, ...] | None  # the expected first line, or None when there is none
    rating_scale: tuple[float, float]
    rating_step: float  # 1 for whole stars, 0.5 for half stars
    movies_member: str  # id and title first, with the ratings' delimiter (u.item: '|')
    # Pinned MD5 of the zip for releases GroupLens never changes; None means "use the
    # `<name>.zip.md5` published beside the zip", for releases that are re-issued in place.
    md5: str | None = None
    # The release's own train/test folds (ml-100k's u1…u5, ua, ub): `<dir>/<fold>.base` and
    # `<dir>/<fold>.test` in the ratings file's format, beside it.
    folds: tuple[str, ...] = ()

    def fold_members(self, fold: str) -> tuple[str, str]:
        """The members of a fold's training and test ratings."""
        if fold not in self.folds:
            known = ", ".join(self.folds) or "none"
            raise ValueError(f"{self.name} has no official fold {fold!r}; its folds: {known}")
        folder = posixpath.dirname(self.ratings_member)
        return f"{folder}/{fold}.base", f"{folder}/{fold}.test"

    @property
    def zip_name(self) -> str:
        return f"{self.name}.zip"


def _csv_release(name: str, ratings: int, md5: str | None = None) -> Release:
    return Release(name, ratings, f"{name}/ratings.csv", ",", CSV_HEADER, (0.5, 5.0), 0.5, f"{name}/movies.csv", md5)


RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release(
            "ml-100k",
            100_000,
            "ml-100k/u.data",
            "\t",
            None,
            (1.0, 5.0),
            1.0,
            "ml-100k/u.item",
            "0e33842e24a9c977be4e0107933c0723",
            ("u1", "u2", "u3", "u4", "u5", "ua", "ub"),
        ),
        Release(
            "ml-1m",
            1_000_209,
            "ml-1m/ratings.dat",
            "::",
            None,
            (1.0, 5.0),
            1.0,
            "ml-1m/movies.dat",
            "c4d9eecfca2ab87c1945afe126590906",
        ),
        Release(
            "ml-10m",
            10_000_054,
            "ml-10M100K/ratings.dat",
            "::",
            None,
            (0.5, 5.0),
            0.5,
            "ml-10M100K/movies.dat",
            "ce571fd55effeba0271552578f2648bd",
        ),
        _csv_release("ml-20m", 20_000_263, "cd245b17a1ae2cc31bb14903e1204af3"),
        _csv_release("ml-25m", 25_000_095, "6b51fb2759a8657d3bfcbfc42b592ada"),
        _csv_release("ml-32m", 32_000_204, "d472be332d4daa821edc399621853b57"),
        _csv_release("ml-latest-small", 100_836),
        _csv_release("ml-latest", 33_832_162),
    )
}


def release(name: str) -> Release:
    try:
        return RELEASES[name]
    except KeyError:
        raise ValueError(f"unknown MovieLens release {name!r}; known releases: {', '.join(RELEASES)}") from None


@dataclass(frozen=True)
class Source:
    """Where a release's zip comes from, and the checksum it must have (None: the one
    published beside it, at `<url>.md5`)."""

    url: str
    md5: str | None


def release_source(
    name: str, base_url: str, urls: Mapping[str, str] | None = None, md5s: Mapping[str, str] | None = None
) -> Source:
    """The source of release `name`: `<base_url>/<name>.zip` with the catalogue's checksum,
    unless `urls` or `md5s` (keyed by release name) override them, e.g. for an internal mirror."""
    urls, md5s = dict(urls or {}), dict(md5s or {})
    for key in (*urls, *md5s):
        release(key)  # an unknown release name in an override is an error, not ignored
    for key, value in md5s.items():
        if not re.fullmatch(r"[0-9a-fA-F]{32}", value):
            raise ValueError(f"the md5 override for {key} is {value!r}, not 32 hexadecimal digits")
    rel = release(name)
    return Source(
        urls.get(name) or f"{base_url.rstrip('/')}/{rel.zip_name}", (md5s.get(name) or rel.md5 or "").lower() or None
    )


@dataclass
class ReadReport:
    """What reading a ratings file dropped; every count is 0 for a clean file."""

    malformed_lines_skipped: int = 0
    out_of_scale_skipped: int = 0
    duplicates_dropped: int = 0


def read_ratings(archive: zipfile.ZipFile, rel: Release, skip_malformed: bool = False) -> tuple[pa.Table, ReadReport]:
    """The release's ratings as a table of RATINGS_SCHEMA, validated, with duplicate
    (user, item) pairs reduced to their latest rating. Raises RatingsError naming the member,
    line and text of the first bad line, unless `skip_malformed`, which drops and counts them."""
    member = rel.ratings_member
    info = _checked_member(archive, member)
    report = ReadReport()
    try:
        with archive.open(info) as raw:
            header_lines = _check_header(raw, rel)
            try:
                table = _read_typed(raw, rel)
            except pa.ArrowInvalid:
                table = None
        if table is None or not _well_formed(table):
            with archive.open(info) as raw:
                if header_lines:
                    raw.readline()
                table = _read_line_by_line(raw, rel, header_lines, skip_malformed, report)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise RatingsError(f"{member} is corrupt ({e}); delete the stored zip so that it is downloaded again") from None
    table = _check_scale(table, rel, header_lines, skip_malformed, report)
    if table.num_rows == 0:
        raise RatingsError(f"{member}: no ratings" + (" left after skipping malformed lines" if skip_malformed else ""))
    table, report.duplicates_dropped = _keep_latest_per_pair(table)
    return table, report


def read_fold(
    archive: zipfile.ZipFile, rel: Release, fold: str, skip_malformed: bool = False
) -> tuple[pa.Table, pa.Table, ReadReport]:
    """(train, test) of one of the release's own folds, each read and checked as the ratings
    file is (a bad line is named by member, line and text), and what reading them dropped."""
    tables, report = [], ReadReport()
    for member in rel.fold_members(fold):
        table, part = read_ratings(archive, dataclasses.replace(rel, ratings_member=member), skip_malformed)
        tables.append(table)
        for name, value in dataclasses.asdict(part).items():
            setattr(report, name, getattr(report, name) + value)
    return tables[0], tables[1], report


def read_movies(archive: zipfile.ZipFile, rel: Release) -> pa.Table:
    """The release's movies: a table of item (int32), title and genres (a list of names, empty
    for a movie with none). The older releases are Latin-1, the newer UTF-8; titles may hold
    commas (quoted in movies.csv) and colons."""
    info = _checked_member(archive, rel.movies_member)
    try:
        data = archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise RatingsError(f"{rel.movies_member} is corrupt ({e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if rel.header:  # movies.csv: movieId,title,genres with quoting
        try:
            table = pacsv.read_csv(
                io.BytesIO(text.encode()),
                convert_options=pacsv.ConvertOptions(
                    column_types={"movieId": pa.int32(), "title": pa.string(), "genres": pa.string()}
                ),
            )
            genres = pc.split_pattern(table.column("genres"), "|")
            return _movies(table.column("movieId"), table.column("title"), genres)
        except (pa.ArrowInvalid, KeyError) as e:
            raise RatingsError(f"{rel.movies_member}: not 'movieId,title,genres' on every line ({e})") from None
    delimiter = "|" if rel.delimiter == "\t" else rel.delimiter
    lines = pa.array(text.splitlines())
    try:
        fields = pc.split_pattern(lines, delimiter, max_splits=2)
        if delimiter == "|":  # u.item: id|title|date|video date|url|one 0/1 flag per ML_100K_GENRES
            flags = pc.list_slice(pc.split_pattern(lines, "|"), 5)
            named = [[g for g, on in zip(ML_100K_GENRES, f, strict=False) if on == "1"] for f in flags.to_pylist()]
            genres = pa.array(named, pa.list_(pa.string()))
        else:  # movies.dat: id::title::genre|genre
            genres = pc.split_pattern(pc.list_element(fields, 2), "|")
        return _movies(pc.cast(pc.list_element(fields, 0), pa.int32()), pc.list_element(fields, 1), genres)
    except (pa.ArrowInvalid, IndexError) as e:
        raise RatingsError(f"{rel.movies_member}: not 'id{delimiter}title{delimiter}...' on every line ({e})") from None


def _movies(items: pa.Array, titles: pa.Array, genres: pa.Array) -> pa.Table:
    """The movies table, a movie's "no genre" marker (NO_GENRES) left out of its genres."""
    if isinstance(genres, pa.ChunkedArray):
        genres = genres.combine_chunks()
    flat = pc.list_flatten(genres)
    parents = pc.list_parent_indices(genres)
    keep = pc.invert(pc.is_in(flat, pa.array(NO_GENRES)))
    kept = pc.filter(parents, keep).to_numpy(zero_copy_only=False)
    offsets = np.searchsorted(kept, np.arange(len(genres) + 1))
    listed = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pc.filter(flat, keep))
    return pa.table({ITEM: items, TITLE: titles, GENRES: listed})


def _checked_member(archive: zipfile.ZipFile, member: str) -> zipfile.ZipInfo:
    for name in archive.namelist():
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or posixpath.isabs(name) or ":" in parts[0]:
            raise RatingsError(f"the zip has a member whose name escapes the archive ({name!r}); refusing to read it")
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise RatingsError(f"the zip has no member {member}; is it the right release?") from None
    if info.file_size > MAX_MEMBER_BYTES or info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        raise RatingsError(
            f"{member} claims {info.file_size} bytes from {info.compress_size} compressed: "
            "not a MovieLens file (a zip bomb?); refusing to read it"
        )
    return info


def _check_header(raw: IO[bytes], rel: Release) -> int:
    """Reads and checks the header line; returns how many lines it took (0 or 1)."""
    if rel.header is None:
        return 0
    first = raw.readline()
    if not first:
        raise RatingsError(f"{rel.ratings_member}: the file is empty")
    # A spreadsheet that saves as "CSV UTF-8" puts a byte-order mark before the header.
    header = first.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace").strip()
    if tuple(header.split(rel.delimiter)) != rel.header:
        expected = rel.delimiter.join(rel.header)
        raise RatingsError(f"{rel.ratings_member} line 1: header is {header!r}, expected {expected!r}")
    return 1


def _read_typed(raw: IO[bytes], rel: Release) -> pa.Table:
    """The fast path: typed CSV on all cores; raises ArrowInvalid on any malformed line."""
    source = _ColonsToCommas(raw) if rel.delimiter == "::" else raw
    try:
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=RATINGS_SCHEMA.names),
            parse_options=pacsv.ParseOptions(
                delimiter="," if rel.delimiter == "::" else rel.delimiter, quote_char=False, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(column_types=RATINGS_SCHEMA, null_values=[""]),
        )
    except pa.ArrowInvalid as e:
        if "Empty CSV file" not in str(e):
            raise
        table = RATINGS_SCHEMA.empty_table()
    if table.num_rows == 0 and rel.header is None:
        raise RatingsError(f"{rel.ratings_member}: the file is empty")
    return table


def _well_formed(table: pa.Table) -> bool:
    """No empty field and no id below 1: what the typed parse lets through but a line must not have."""
    return not any(table.column(name).null_count for name in RATINGS_SCHEMA.names) and all(
        table.num_rows == 0 or pc.min(table.column(name)).as_py() >= 1 for name in (USER, ITEM)
    )


# What each field must look like, in RATINGS_SCHEMA order: ids from 1 (as MovieLens numbers
# them) that fit an int32, a decimal rating, a timestamp that fits an int64.
_FIELDS = (
    (r"^0*[1-9][0-9]{0,8}$", "is not a whole number from 1 to 999999999"),
    (r"^0*[1-9][0-9]{0,8}$", "is not a whole number from 1 to 999999999"),
    (r"^[0-9]{1,3}(\.[0-9]+)?$", "is not a decimal number"),
    (r"^-?[0-9]{1,18}$", "is not a whole number of seconds"),
)


def _read_line_by_line(
    raw: IO[bytes], rel: Release, header_lines: int, skip_malformed: bool, report: ReadReport
) -> pa.Table:
    """The diagnostic path: each line as text, split and checked field by field (vectorised),
    so a bad line is named by its number and its text."""
    try:
        lines = pacsv.read_csv(
            raw,
            read_options=pacsv.ReadOptions(column_names=["line"]),
            parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
        ).column("line")
    except pa.ArrowInvalid as e:  # only a line holding the unit separator itself gets here
        raise RatingsError(f"{rel.ratings_member}: unreadable ({e})") from None
    # Problems as codes (0 = none), the first one found per line; messages below.
    messages = ["", f"expected 4 fields separated by {rel.delimiter!r}"]
    four_fields = pc.equal(pc.count_substring(lines, rel.delimiter), 3)
    problem = np.where(four_fields.to_numpy(zero_copy_only=False), 0, 1).astype(np.int8)
    fields = pc.split_pattern(pc.if_else(four_fields, lines, rel.delimiter.join("0000")), rel.delimiter)
    columns = {}
    for index, (name, (pattern, description)) in enumerate(zip(RATINGS_SCHEMA.names, _FIELDS, strict=True)):
        values = pc.list_element(fields, index)
        for message, bad in (
            (f"empty {name}", pc.equal(values, "")),
            (f"{name} {description}", pc.invert(pc.match_substring_regex(values, pattern))),
        ):
            messages.append(message)
            problem[(problem == 0) & bad.to_numpy(zero_copy_only=False)] = len(messages) - 1
        columns[name] = values
    bad_rows = np.flatnonzero(problem)
    if len(bad_rows) and not skip_malformed:
        first = int(bad_rows[0])
        raise RatingsError(
            f"{rel.ratings_member} line {first + 1 + header_lines}: {messages[problem[first]]}: "
            f"{lines[first].as_py()!r}; {len(bad_rows)} malformed lines in all "
            "(--skip-malformed drops and counts them)"
        )
    report.malformed_lines_skipped = len(bad_rows)
    keep = pa.array(problem == 0)
    return pa.table(
        {
            name: pc.cast(columns[name].filter(keep), typ)
            for name, typ in zip(RATINGS_SCHEMA.names, RATINGS_SCHEMA.types, strict=True)
        }
    )


def _check_scale(
    table: pa.Table, rel: Release, header_lines: int, skip_malformed: bool, report: ReadReport
) -> pa.Table:
    low, high = rel.rating_scale
    rating = table.column(RATING).to_numpy()
    steps = rating / rel.rating_step  # exact for steps of 1 and 0.5; np.mod takes 5 times as long
    off_scale = (rating < low) | (rating > high) | (steps != np.rint(steps))
    n_off = int(off_scale.sum())
    if not n_off:
        return table
    if skip_malformed:
        report.out_of_scale_skipped = n_off
        return table.filter(pa.array(~off_scale))
    row = int(np.flatnonzero(off_scale)[0])
    values = table.slice(row, 1).to_pylist()[0]
    raise RatingsError(
        f"{rel.ratings_member} line {row + 1 + header_lines}: rating {rating[row]:g} is outside the release's scale "
        f"[{low:g}, {high:g}] in steps of {rel.rating_step:g} (user {values['user']}, item {values['item']}); "
        f"{n_off} ratings in all are"
    )


def _keep_latest_per_pair(table: pa.Table) -> tuple[pa.Table, int]:
    """Drops all but the latest rating of each (user, item), by timestamp then file order,
    and keeps the file order of what remains."""
    pair = (table.column(USER).to_numpy().astype(np.int64) << 32) | table.column(ITEM).to_numpy().astype(np.int64)
    # Ordered by user, then item, as ml-20m and later ship them (their READMEs say so): all distinct.
    if (pair[1:] > pair[:-1]).all():
        return table, 0
    sorted_pairs = np.sort(pair)  # sorting is much faster than hashing 25 M distinct keys
    if not (sorted_pairs[1:] == sorted_pairs[:-1]).any():
        return table, 0
    row = np.arange(len(pair))
    order = np.lexsort((-row, -table.column(TIMESTAMP).to_numpy(), pair))
    latest = order[np.r_[True, pair[order][1:] != pair[order][:-1]]]
    return table.take(pa.array(np.sort(latest))), len(pair) - len(latest)


class _ColonsToCommas(io.RawIOBase):
    """A reader that turns the `::` separators of ratings.dat into commas on the fly, so the
    typed CSV parser can read the file; a lone colon stays and makes the line malformed."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._carry = b""  # an odd ':' at the end of a read: maybe the first half of a '::'
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            read = self._raw.read(max(len(buffer), 1))
            if not read:
                self._pending, self._carry = self._carry, b""
                break
            chunk = self._carry + read
            self._carry = b":" if (len(chunk) - len(chunk.rstrip(b":"))) % 2 else b""
            self._pending = (chunk[: len(chunk) - len(self._carry)]).replace(b"::", b",")
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
