"""The agent layer's exception: the run cannot go on, and the message says what to do about it."""


class AgentError(Exception):
    """A run-level problem (bad goal, run not paused, run busy); `str(err)` is for the person."""
