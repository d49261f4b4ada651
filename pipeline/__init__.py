"""movielens-als: a Luigi pipeline that trains and evaluates a Spark ALS rating model and an
EASE ranking model on a MovieLens release. `luigi --module pipeline EvaluatedRMSE` runs the
rating chain; `Recommendations` serves the ranking model's top 10; `Report` shows it all.

The tasks, by stage: pipeline.data (the release and its split), pipeline.rating (the rating
models), pipeline.ranking (the ranking model), pipeline.evaluation (judging and serving)."""

from pipeline.data import BucketReady, DownloadedZip, SplitData
from pipeline.evaluation import EvaluatedRanking, EvaluatedRMSE, Recommendations, Report
from pipeline.ranking import TrainedEASE, TunedEASE
from pipeline.rating import TrainedALS, TrainedBPMF, TunedALS, ValidatedBPMF

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
