"""The release and its split: BucketReady → DownloadedZip → SplitData."""

from __future__ import annotations

import dataclasses
import functools

import pyarrow as pa
from tqdm import tqdm

from movielens_als.releases import read_fold, read_ratings, release, release_source
from movielens_als.split import OFFICIAL, RATINGS_PARQUET, describe, split_ratings
from pipeline import layout
from pipeline.base import StoreTask, terminal_bar
from pipeline.config import movielens
from pipeline.download import http_session, published_md5, verified_chunks
from pipeline.groups import ReleaseParams, SplitParams
from pipeline.targets import RootTarget


class BucketReady(StoreTask):
    """The store's bucket (S3) or root folder (local) exists."""

    def output(self):
        return RootTarget(self.store)

    def run(self):
        self.store.create_root()


class DownloadedZip(ReleaseParams, StoreTask):
    """A MovieLens release zip in the store, its MD5 verified before it is stored."""

    def requires(self):
        return BucketReady()

    @property
    def key(self) -> str:
        return layout.download(self.dataset)

    def run(self):
        config = movielens()
        source = release_source(self.dataset, config.base_url, config.urls, config.md5s)
        with http_session() as session, terminal_bar(desc=self.dataset, unit="B", unit_scale=True) as bar:
            expected_md5 = source.md5 or published_md5(session, source.url, self.dataset)
            progress = functools.partial(self._progress, bar)
            chunks = verified_chunks(session, source.url, expected_md5, progress, config.download_timeout)
            self.store.upload(self.key, chunks)

    def _progress(self, bar: tqdm, done: int, total: int | None) -> None:
        # Called once per chunk: the bar redraws at most ten times a second, and the scheduler
        # hears only whole-percent changes.
        bar.total = total
        bar.update(done - bar.n)
        percent = 100 * done // total if total else done >> 24  # without a size: every 16 MB
        if percent == getattr(self, "_percent_reported", None):
            return
        self._percent_reported = percent
        message = f"downloaded {done / 1e6:.1f}" + (f" of {total / 1e6:.1f} MB" if total else " MB")
        self.show_progress(percent if total else None, message)


class SplitData(SplitParams, StoreTask):
    """The release's ratings split into train.parquet and test.parquet, with stats.json."""

    is_directory = True

    def requires(self):
        return self.clone(DownloadedZip)

    @property
    def key(self) -> str:
        return self.split_keys.split_dir

    def run(self):
        keys, download = self.split_keys, layout.download(self.dataset)
        self.show_progress(10, f"reading the ratings of {self.store.uri(download)}")
        with self.store.open_zip(download) as archive:
            if self.strategy == OFFICIAL:
                train, test, report = read_fold(archive, release(self.dataset), self.fold, self.skip_malformed)
                ratings = pa.concat_tables([train, test])
            else:
                ratings, report = read_ratings(archive, release(self.dataset), self.skip_malformed)
                self.show_progress(50, f"splitting {ratings.num_rows} ratings ({self.strategy})")
                train, test = split_ratings(ratings, self.strategy, self.test_fraction, self.seed)
        self.show_progress(70, f"writing {train.num_rows} train and {test.num_rows} test ratings")
        self.store.write_parquet(keys.train, train, **RATINGS_PARQUET)
        self.store.write_parquet(keys.test, test, **RATINGS_PARQUET)
        self.store.write_json(
            keys.stats,
            {
                "params": self.shaping_params(),
                "ratings": describe(ratings),
                "train": describe(train),
                "test": describe(test),
                "read": dataclasses.asdict(report),
            },
        )
        self.store.mark_complete(self.key)
