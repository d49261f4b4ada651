"""movielens-als: a Luigi pipeline that trains and evaluates a Spark ALS rating model and an
EASE ranking model on a MovieLens release. `luigi --module pipeline EvaluatedRMSE` runs the
rating chain; `Recommendations` serves the ranking model's top 10; `Report` shows it all."""

from pipeline.tasks import (
    BucketReady,
    DownloadedZip,
    EvaluatedRanking,
    EvaluatedRMSE,
    Recommendations,
    Report,
    SplitData,
    TrainedALS,
    TrainedBPMF,
    TrainedEASE,
    TunedALS,
    TunedEASE,
    ValidatedBPMF,
)

__all__ = [
    "BucketReady",
    "DownloadedZip",
    "EvaluatedRMSE",
    "EvaluatedRanking",
    "Recommendations",
    "Report",
    "SplitData",
    "TrainedALS",
    "TrainedBPMF",
    "TrainedEASE",
    "TunedALS",
    "TunedEASE",
    "ValidatedBPMF",
]
