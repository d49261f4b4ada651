"""The drivers that start no Spark (numpy in one process: EASE, the Bayesian model), and what
every driver shares, Spark's (spark_jobs/) included: arguments, the store, progress lines and
the record of what was fitted. Run by pipeline.jobs.DriverTask in a process of their own."""
