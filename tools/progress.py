"""The progress callback long tools report through, so that tools stay free of any display of their own."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]
"""Called as `progress(stage, done, total)`: first with done=0, then after each unit of work (a file, a chunk,
an example, a teacher reply). It may be called from worker threads; the caller decides how to show it."""
