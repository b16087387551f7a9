"""The exception the tools layer raises: its message says what went wrong and how to fix it."""


class ToolError(Exception):
    """A tool could not do its job; `str(err)` is written for the person running ingrain."""
