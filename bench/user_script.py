"""The plain user script issue 14 measures the pipeline against: what a Spark user writes,
with Spark's defaults. One spark-submit reads ratings.csv with its schema declared, splits it
with randomSplit, fits stock ALS (rank 32, regParam 0.15, 15 iterations) and prints the test
RMSE as one JSON line, with the fit's own seconds. With --infer-schema it lets Spark infer the
schema instead (one more pass over the file), as a first script often does.

    spark-submit --master 'local[*]' --driver-memory 4g bench/user_script.py ratings.csv [--infer-schema]

`python -m bench.versus_user_script` runs it against the whole chain.
"""

import json
import sys
import time

from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.recommendation import ALS
from pyspark.sql import SparkSession

started = time.perf_counter()
spark = SparkSession.builder.appName("user-script").getOrCreate()
# Without a checkpoint directory ALS cannot cut its lineage, which overflows the stack past
# about 20 iterations: the one line every user adds after the first failure.
spark.sparkContext.setCheckpointDir("/tmp/user-script-checkpoints")
if "--infer-schema" in sys.argv[2:]:
    ratings = spark.read.csv(sys.argv[1], header=True, inferSchema=True)
else:
    ratings = spark.read.csv(sys.argv[1], header=True, schema="userId INT, movieId INT, rating FLOAT, timestamp LONG")
train, test = ratings.randomSplit([0.8, 0.2], seed=42)
als = ALS(
    rank=32,
    regParam=0.15,
    maxIter=15,
    seed=42,
    userCol="userId",
    itemCol="movieId",
    ratingCol="rating",
    coldStartStrategy="drop",
)
fit_started = time.perf_counter()
model = als.fit(train)
model.userFactors.count()  # the factors are computed lazily on first use
fit_seconds = time.perf_counter() - fit_started
rmse = RegressionEvaluator(labelCol="rating", predictionCol="prediction").evaluate(model.transform(test))
print(json.dumps({"rmse": rmse, "fit_seconds": fit_seconds, "seconds": time.perf_counter() - started}))
spark.stop()
