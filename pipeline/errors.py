"""Errors the orchestration raises for a user to act on; each message says what to change."""


class StoreError(RuntimeError):
    """A store that is misconfigured or cannot be reached."""
