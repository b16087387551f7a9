"""The memory layer's exception."""


class StoreError(Exception):
    """A store operation failed; the message says what and how to fix it."""
