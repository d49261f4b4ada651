"""The column names of every table the pipeline stores, in one place."""

# Ratings (splits/.../train.parquet and test.parquet), in file order.
USER, ITEM, RATING, TIMESTAMP = "user", "item", "rating", "timestamp"
# Factor tables (models/.../user_factors.parquet and item_factors.parquet): one row per user
# or item, with its factors, bias and number of training ratings.
ID, FEATURES, BIAS, COUNT = "id", "features", "bias", "count"
# Recommendations (recommendations/.../top<n>.parquet), and movie titles. The score is the
# recommender's own: EASE's score, or the explicit model's predicted rating.
RANK, TITLE, SCORE = "rank", "title", "score"
# Movies (read from the release, never stored): item, title and its genres' names.
GENRES = "genres"
RECOMMENDATION_COLUMNS = (USER, RANK, ITEM, TITLE, SCORE)
