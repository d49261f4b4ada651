"""The catalogue of MovieLens releases and the reader of their ratings files."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

# The one schema every release is read into, whatever its file format.
RATINGS_SCHEMA = pa.schema(
    [
        ("user", pa.int32()),
        ("item", pa.int32()),
        ("rating", pa.float32()),
        ("timestamp", pa.int64()),
    ]
)

# Header of the `ratings.csv` layout (ml-20m and later, ml-latest*), in file order.
CSV_HEADER = ("userId", "movieId", "rating", "timestamp")


class RatingsError(ValueError):
    """A ratings file that cannot be used as it is; the message names the member and the problem."""


@dataclass(frozen=True)
class Release:
    name: str
    ratings_member: str
    rating_scale: tuple[float, float]
    # Pinned MD5 of the zip for releases GroupLens never changes; None means "use the
    # `<name>.zip.md5` published beside the zip", for releases that are re-issued in place.
    md5: str | None = None

    @property
    def zip_name(self) -> str:
        return f"{self.name}.zip"


RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release("ml-latest-small", "ml-latest-small/ratings.csv", (0.5, 5.0)),
        Release("ml-latest", "ml-latest/ratings.csv", (0.5, 5.0)),
        Release("ml-20m", "ml-20m/ratings.csv", (0.5, 5.0), md5="cd245b17a1ae2cc31bb14903e1204af3"),
        Release("ml-25m", "ml-25m/ratings.csv", (0.5, 5.0), md5="6b51fb2759a8657d3bfcbfc42b592ada"),
        Release("ml-32m", "ml-32m/ratings.csv", (0.5, 5.0), md5="d472be332d4daa821edc399621853b57"),
    )
}


def release(name: str) -> Release:
    try:
        return RELEASES[name]
    except KeyError:
        raise ValueError(f"unknown MovieLens release {name!r}; known releases: {', '.join(sorted(RELEASES))}") from None


def read_ratings(archive: zipfile.ZipFile, rel: Release) -> pa.Table:
    """The release's ratings as a table of RATINGS_SCHEMA, validated; raises RatingsError."""
    member = rel.ratings_member
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise RatingsError(f"{archive.filename or 'the zip'} has no member {member}") from None
    with archive.open(info) as raw:
        header = raw.readline().decode("utf-8", "replace").strip()
        if tuple(header.split(",")) != CSV_HEADER:
            raise RatingsError(f"{member}: header is {header!r}, expected {','.join(CSV_HEADER)!r}")
        try:
            table = pacsv.read_csv(
                raw,
                read_options=pacsv.ReadOptions(column_names=list(CSV_HEADER)),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict(zip(CSV_HEADER, RATINGS_SCHEMA.types)),
                    # Only an empty field is missing; "NA" or "null" in an id is a bad value.
                    null_values=[""],
                ),
            )
        except pa.ArrowInvalid as e:
            if "Empty CSV file" in str(e):
                raise RatingsError(f"{member}: no ratings (the file has a header and nothing else)") from None
            raise RatingsError(f"{member}: {e}") from None
    table = table.rename_columns(RATINGS_SCHEMA.names)
    _check_values(table, member, rel.rating_scale)
    return table


def _line_of(row: int) -> int:
    return row + 2  # one header line, and lines count from 1


def _check_values(table: pa.Table, member: str, scale: tuple[float, float]) -> None:
    for name in RATINGS_SCHEMA.names:
        column = table.column(name)
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise RatingsError(
                f"{member} line {_line_of(row)}: empty value in column {name!r} ({column.null_count} rows have one)"
            )
    low, high = scale
    rating = table.column("rating")
    outside = pc.or_(pc.less(rating, low), pc.greater(rating, high))
    n_outside = pc.sum(outside).as_py()
    if n_outside:
        row = int(np.flatnonzero(outside.to_numpy(zero_copy_only=False))[0])
        raise RatingsError(
            f"{member} line {_line_of(row)}: rating {rating[row].as_py()} is outside the release's "
            f"scale [{low}, {high}] ({n_outside} rows are)"
        )
