"""The bare baseline: one spark-submit, one file, the same work as the pipeline's default
chain (read ratings.csv from the zip, user_random 80/20 split with seed 42, ALS rank 10,
regParam 0.1, 10 iterations, RMSE with the global-mean fallback and clipping), written the
way a competent Spark user would without any orchestration. Prints one JSON line.

    spark-submit --master 'local[*]' --conf spark.sql.shuffle.partitions=4 bench/bare_als.py ZIP
"""

import json
import sys
import time
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from pyspark.ml.recommendation import ALS
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

started = time.perf_counter()
spark = SparkSession.builder.appName("bare-als").getOrCreate()
spark.sparkContext.setLogLevel("WARN")

with zipfile.ZipFile(sys.argv[1]) as z, z.open("ml-latest-small/ratings.csv") as f:
    types = {"userId": pa.int32(), "movieId": pa.int32(), "rating": pa.float32(), "timestamp": pa.int64()}
    ratings = pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(column_types=types))

# user_random: a random 20% of each user's ratings (at least one, never all) go to test.
users = ratings.column("userId").to_numpy()
shuffle = np.random.default_rng(42).integers(0, 2**32, len(users), dtype=np.uint32)
order = np.argsort((users.astype(np.int64) << 32) | shuffle)
starts = np.flatnonzero(np.r_[True, users[order][1:] != users[order][:-1]])
counts = np.diff(np.r_[starts, len(users)])
k = np.clip(np.floor(0.2 * counts + 0.5), 1, counts - 1)
is_test = np.empty(len(users), bool)
is_test[order] = np.arange(len(users)) - np.repeat(starts, counts) < np.repeat(k, counts)
train, test = ratings.filter(pa.array(~is_test)), ratings.filter(pa.array(is_test))

blocks = spark.sparkContext.defaultParallelism
als = ALS(
    rank=10,
    regParam=0.1,
    maxIter=10,
    seed=42,
    userCol="userId",
    itemCol="movieId",
    ratingCol="rating",
    numUserBlocks=blocks,
    numItemBlocks=blocks,
    coldStartStrategy="nan",
)
model = als.fit(spark.createDataFrame(train))

mean = float(np.mean(train.column("rating").to_numpy(), dtype=np.float64))
scored = model.transform(spark.createDataFrame(test)).withColumn(
    "p", F.least(F.greatest(F.nanvl("prediction", F.lit(mean)), F.lit(0.5)), F.lit(5.0))
)
rmse = scored.select(F.sqrt(F.avg((F.col("p") - F.col("rating")) ** 2))).first()[0]
print(json.dumps({"rmse": rmse, "n_test": test.num_rows, "seconds_in_driver": time.perf_counter() - started}))
spark.stop()
