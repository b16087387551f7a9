"""Training progress: one fixed-format terminal line per logging step, plus the loss curve and throughput."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback


def format_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(step: int, max_steps: int, loss: float | None, val_loss: float | None,
                  tokens_per_s: float, eta_s: float) -> str:
    """`step 00012/00060 | loss 2.314 | val 2.401 | 412 tok/s | eta 3m10s`."""
    parts = [f"step {step:05d}/{max_steps:05d}",
             f"loss {loss:.3f}" if loss is not None else "loss   -  ",
             f"val {val_loss:.3f}" if val_loss is not None else "val   -  ",
             f"{tokens_per_s:.0f} tok/s", f"eta {format_eta(eta_s)}"]
    return " | ".join(parts)


def peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class ProgressCallback(TrainerCallback):
    """Records the loss curve and real-token throughput; prints one line per logging step when `show`."""

    def __init__(self, show: bool = True, on_log: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.show = show
        self._listener = on_log
        self.curve: list[dict[str, Any]] = []
        self.tokens = 0
        """Real (non-pad) training tokens processed by this process."""
        self.train_seconds = 0.0
        self._started: float | None = None
        self._first_step = 0
        self._last_val: float | None = None
        self._console = None

    def show_lines(self, show: bool) -> None:
        if not show:
            self._console = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()
        self._first_step = state.global_step
        if self.show:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "num_tokens" in logs:
            # TRL counts attention-mask (or packed position) tokens: pads excluded, restarted on resume.
            self.tokens = int(logs["num_tokens"])
        elapsed = time.perf_counter() - (self._started or time.perf_counter())
        self.train_seconds = elapsed
        if "eval_loss" in logs:
            self._last_val = float(logs["eval_loss"])
            if self.curve and self.curve[-1]["step"] == state.global_step:
                self.curve[-1]["val_loss"] = self._last_val
            else:
                self.curve.append({"step": state.global_step, "val_loss": self._last_val})
        if "loss" not in logs and "eval_loss" not in logs:
            return
        if "loss" in logs:
            self.curve.append({"step": state.global_step, "loss": float(logs["loss"])})
        done = state.global_step - self._first_step
        eta = elapsed / done * (state.max_steps - state.global_step) if done else 0.0
        tokens_per_s = self.tokens / elapsed if elapsed > 0 else 0.0
        line = progress_line(state.global_step, state.max_steps, logs.get("loss"), self._last_val,
                             tokens_per_s, eta)
        if self._console is not None:
            self._console.print(line)
        if self._listener is not None:
            self._listener({"step": state.global_step, "max_steps": state.max_steps, "loss": logs.get("loss"),
                         "val_loss": self._last_val, "tokens_per_s": tokens_per_s, "eta_s": eta, "line": line})
