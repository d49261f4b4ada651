"""The store's errors, for a user to act on: each message says what to change."""


class StoreError(RuntimeError):
    """A store that is misconfigured, cannot be reached, or cannot take what is written."""
