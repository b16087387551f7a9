"""The run's HTML report: the sweep section's table and plot."""

from __future__ import annotations

import base64
import re

from evals.report import write_report

RUN = {"id": 7, "goal": "summaries in my style", "policy": "auto"}


def _trial(name: str, status: str, val_loss: float | None, curve: list[float]) -> dict:
    return {"name": name, "overrides": {"lr": 2e-4}, "status": status, "val_loss": val_loss, "train_loss": None,
            "metric": None, "tokens_per_s": 90.0, "wall_seconds": 12.0, "output_dir": None,
            "error": "loss went from 2.0 to inf" if status == "diverged" else None,
            "loss_curve": [{"step": i + 1, "loss": loss} for i, loss in enumerate(curve)]}


def _images(document: str) -> dict[str, bytes]:
    found = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)">', document)
    return {alt: base64.b64decode(data) for alt, data in found}


def test_report_shows_the_sweep_plot_with_the_executor(tmp_path) -> None:
    sweep = {"trials": [_trial("A", "ok", 1.9, [2.4, 2.1, 1.9]), _trial("B", "ok", 1.2, [2.4, 1.6, 1.1]),
                        _trial("C", "diverged", None, [])],
             "winner": "B", "reason": "lowest validation loss (1.2000)", "ranking": ["B", "A"],
             "executor": "ray at local"}
    path = write_report(tmp_path / "report.html", run=RUN, state={"sweep": sweep}, events=[])
    document = path.read_text()
    images = _images(document)
    assert "sweep plot" in images
    assert images["sweep plot"].startswith(b"\x89PNG") and len(images["sweep plot"]) > 5000
    assert "Executor: ray at local" in document and "diverged" in document


def test_sweep_plot_without_loss_curves_still_shows_the_validation_losses(tmp_path) -> None:
    sweep = {"trials": [_trial("A", "ok", 1.9, []), _trial("B", "failed", None, [])], "winner": "A",
             "reason": "lowest validation loss (1.9000)", "ranking": ["A"]}
    document = write_report(tmp_path / "report.html", run=RUN, state={"sweep": sweep}, events=[]).read_text()
    assert "sweep plot" in _images(document)
    assert "Executor" not in document  # a sweep recorded before executors were: nothing to say


def test_no_sweep_no_sweep_plot(tmp_path) -> None:
    document = write_report(tmp_path / "report.html", run=RUN, state={}, events=[]).read_text()
    assert "<h2>Sweep</h2>" not in document and "sweep plot" not in _images(document)
