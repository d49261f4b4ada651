"""The library: MovieLens releases and their reader, split strategies, the models' arithmetic,
metrics and ranking, the report's page and the synthetic-release generator. Pure functions and
data types on Arrow and numpy: it imports neither luigi nor boto3 nor requests (tests/test_layers.py
holds it to that), so a Spark driver, a notebook or a test loads it in milliseconds."""
