"""movielens-als: a Luigi pipeline that trains and evaluates a Spark ALS recommender on a
MovieLens release. `luigi --module pipeline EvaluatedRMSE` runs it."""

from pipeline.tasks import (
    BucketReady,
    DownloadedZip,
    EvaluatedRMSE,
    Recommendations,
    Report,
    SplitData,
    TrainedALS,
    TunedALS,
)

__all__ = [
    "BucketReady",
    "DownloadedZip",
    "EvaluatedRMSE",
    "Recommendations",
    "Report",
    "SplitData",
    "TrainedALS",
    "TunedALS",
]
