"""Driver scripts of the Spark tasks, each with a `main(argv)`; run by spark-submit."""
