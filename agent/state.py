"""The run's state: a narrow input (what the user asked) and the fuller state the nodes fill in."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any


@dataclass
class InputState:
    """What a run starts from."""

    goal: str = ""
    """The user's goal, in their words."""
    data_paths: list[str] = field(default_factory=list)
    """Extra data given with --data; it overrides what the goal text names."""
    base: str | None = None
    """Base model given with --base."""
    budget_minutes: float | None = None
    """Wall-time budget given with --budget-minutes."""
    skip_invalid: bool = False
    """Drop invalid dataset records (--skip-invalid) instead of refusing to train."""


@dataclass
class State(InputState):
    """Everything the run has learned so far; each node returns a partial update."""

    spec: dict[str, Any] | None = None
    """The TaskSpec (objective, base model, sources, criteria, budget) as a dict."""
    problems: list[str] = field(default_factory=list)
    """Why the goal cannot be acted on as stated (empty when it can)."""
    plan: dict[str, Any] | None = None
    """Steps, sweep grid and estimates shown at the plan gate."""
    feedback: Annotated[list[str], operator.add] = field(default_factory=list)
    """Reasons people gave when they rejected a plan; the next plan reads them."""
    plan_approved: bool = False
    """Whether the plan gate let the run go on."""
    documents: dict[str, Any] | None = None
    """What gather collected: the documents file and its summary."""
    dataset: dict[str, Any] | None = None
    """The split dataset: id, train/val paths, hold-out path, counts, validation report."""
    sweep: dict[str, Any] | None = None
    """Trials with their configs and scores, and the winner."""
    choice: str | None = None
    """The trial picked at the winner gate (defaults to the sweep's winner)."""
    training: dict[str, Any] | None = None
    """The final training result: adapter path, losses, tokens/s."""
    evaluation: dict[str, Any] | None = None
    """Hold-out evaluation of base against tuned, with the verdict."""
    deploy_approved: bool = False
    """Whether the deploy gate let the run deploy."""
    deployment: dict[str, Any] | None = None
    """The registered version and whether it was promoted."""
    report_path: str | None = None
    """The run's HTML report."""
    stop_reason: str | None = None
    """Why the run ended early (a rejection, a failed verdict)."""
    completed: Annotated[list[str], operator.add] = field(default_factory=list)
    """Nodes that finished, in order."""
