"""The bare baseline: one spark-submit, one file, the same work as the pipeline's default
chain, written the way a competent Spark user would without any orchestration: read
ratings.csv from the zip, user_random 80/20 split with seed 42, damped user and item biases,
ALS (rank 32, regParam 0.15, 15 iterations) on what they leave, and the RMSE of
mu + b_u + b_i + p_u.q_i on every test rating (bias terms only where factors are missing),
clipped to 0.5-5. Prints one JSON line.

    spark-submit --master 'local[*]' --conf spark.sql.shuffle.partitions=4 bench/bare_als.py ZIP [MEMBER]

MEMBER is the ratings file inside the zip (default ml-latest-small/ratings.csv).
`python -m bench.compare_bare` runs it against the whole chain, with the pipeline's own
spark-submit command line.
"""

import json
import os
import re
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from pyspark.ml.recommendation import ALS
from pyspark.sql import SparkSession

started = time.perf_counter()
spark = SparkSession.builder.appName("bare-als").getOrCreate()
spark.sparkContext.setLogLevel("WARN")
spark.sparkContext.setCheckpointDir("/tmp/bare-als-checkpoints")

member = sys.argv[2] if len(sys.argv) > 2 else "ml-latest-small/ratings.csv"
with zipfile.ZipFile(sys.argv[1]) as z, z.open(member) as f:
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

# Damped biases: three alternating passes, items damped by 10 ratings, users by 15.
u, i = train.column("userId").to_numpy(), train.column("movieId").to_numpy()
r = train.column("rating").to_numpy().astype(np.float64)
mu = r.mean()
size = max(users.max(), ratings.column("movieId").to_numpy().max()) + 1
n_u, n_i = np.bincount(u, minlength=size), np.bincount(i, minlength=size)
b_u = np.zeros(size)
for _ in range(3):
    b_i = np.bincount(i, r - mu - b_u[u], minlength=size) / (n_i + 10.0)
    b_u = np.bincount(u, r - mu - b_i[i], minlength=size) / (n_u + 15.0)
residuals = pa.table({"userId": u, "movieId": i, "residual": (r - mu - b_u[u] - b_i[i]).astype(np.float32)})

blocks = spark.sparkContext.defaultParallelism
als = ALS(
    rank=32,
    regParam=0.15,
    maxIter=15,
    seed=42,
    userCol="userId",
    itemCol="movieId",
    ratingCol="residual",
    numUserBlocks=blocks,
    numItemBlocks=blocks,
)
model = als.fit(spark.createDataFrame(residuals))

P, Q = np.zeros((size, 32)), np.zeros((size, 32))
for table, matrix in ((model.userFactors.toArrow(), P), (model.itemFactors.toArrow(), Q)):
    matrix[table.column("id").to_numpy()] = np.stack(table.column("features").to_numpy(zero_copy_only=False))
tu, ti = test.column("userId").to_numpy(), test.column("movieId").to_numpy()
prediction = np.clip(mu + b_u[tu] + b_i[ti] + np.einsum("ij,ij->i", P[tu], Q[ti]), 0.5, 5.0)
rmse = float(np.sqrt(np.mean((prediction - test.column("rating").to_numpy()) ** 2)))
print(json.dumps({"rmse": rmse, "n_test": test.num_rows, "seconds_in_driver": time.perf_counter() - started}))
# Peak resident memory of the driver's JVM (this Python's parent) and of this Python, as the pipeline's jobs print it.
jvm, python = (
    re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())[1] for pid in (os.getppid(), "self")
)
print(f"driver peak resident memory: JVM {int(jvm) // 1024} MiB, Python {int(python) // 1024} MiB")
spark.stop()
