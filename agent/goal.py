"""Goal text → TaskSpec: the LLM path when one is configured, the deterministic parser otherwise; validation."""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlparse

from agent.goal_rules import MODEL_ALIASES, parse_goal_rules, resolve_path, source_for_path
from agent.llm import AgentLLMConfig, chat_model
from agent.prompts import GOAL_PARSE_SYSTEM, GOAL_PARSE_USER
from agent.task_spec import BUILTIN_CORPORA, Conflict, Policy, Source, SuccessCriteria, TaskSpec
from tools.errors import ToolError

__all__ = ["Conflict", "GoalError", "GoalParse", "Problem", "Source", "SuccessCriteria", "TaskSpec",
           "check_spec", "parse_goal", "validate_spec"]

LOCAL_KINDS = ("folder", "file", "dataset")
LISTING_MAX = 40


class GoalError(ToolError):
    """The goal cannot be acted on as stated; the message lists every problem and how to fix it."""


@dataclass
class GoalParse:
    """A parsed goal and how it was parsed."""

    spec: TaskSpec
    """The task the run will plan for."""
    trace: list[dict[str, Any]] = field(default_factory=list)
    """One entry per path tried: {path: llm|deterministic|cli, reason, error?, seconds?}."""

    def dict(self) -> dict[str, Any]:
        """JSON-safe form, for the trace store and `--json` output."""
        return {"spec": self.spec.model_dump(mode="json"), "trace": list(self.trace)}


@dataclass(frozen=True)
class Problem:
    """One reason a spec cannot be acted on; `message` says what is wrong and what to do."""

    code: str
    """Stable identifier: empty_goal, missing_path, contradiction, budget_too_small, no_data, bad_source."""
    message: str
    """What went wrong and how to fix it, for the person running ingrain."""

    def __str__(self) -> str:
        return self.message


def parse_goal(text: str, *, data_paths: tuple[str, ...] | list[str] = (), base: str | None = None,
               budget_minutes: float | None = None, policy: str | None = None,
               cwd: str | Path | None = None, llm: AgentLLMConfig | None = None) -> GoalParse:
    """Parse a goal with the configured LLM (falling back to rules on any failure); CLI flags win over the text."""
    cwd = Path(cwd or os.getcwd()).expanduser().absolute()
    trace: list[dict[str, Any]] = []
    rules_spec = parse_goal_rules(text, cwd)
    spec: TaskSpec | None = None
    config = llm
    if config is None:
        try:
            config = AgentLLMConfig.from_env()
        except ToolError as err:
            trace.append({"path": "llm", "reason": "the LLM settings in the environment are invalid",
                          "error": str(err)})
    if config is not None and config.configured and text.strip():
        started = time.monotonic()
        try:
            spec = _parse_with_llm(text, cwd, rules_spec, config)
            trace.append({"path": "llm", "reason": f"structured output from {config.describe()}",
                          "seconds": round(time.monotonic() - started, 3)})
        except Exception as err:  # any failure of a remote model must leave the offline path working
            trace.append({"path": "llm", "reason": f"{config.describe()} failed",
                          "error": _describe_error(err), "seconds": round(time.monotonic() - started, 3)})
    if spec is None:
        trace.append({"path": "deterministic", "reason": _fallback_reason(text, config, trace)})
        spec = rules_spec
    spec = _normalize(spec, cwd)
    spec = _apply_overrides(spec, cwd, trace, data_paths=list(data_paths), base=base,
                            budget_minutes=budget_minutes, policy=policy)
    return GoalParse(spec=spec, trace=trace)


def validate_spec(spec: TaskSpec, cwd: str | Path | None = None) -> list[Problem]:
    """Every reason the spec cannot be acted on, each with its fix; an empty list means go ahead."""
    cwd = Path(cwd or os.getcwd()).expanduser().absolute()
    problems: list[Problem] = []
    if not spec.description.strip():
        problems.append(Problem("empty_goal", "The goal is empty: say what the model should do and where the "
                                "data is, e.g. ingrain run \"answer questions about ./handbook\"."))
    for source in spec.sources:
        if source.kind in LOCAL_KINDS and not resolve_path(source.location, cwd).exists():
            problems.append(Problem("missing_path", f"{_display(source.location, cwd)} does not exist — create "
                                    "it or pass --data PATH."))
        elif source.kind == "url" and not _is_http_url(source.location):
            problems.append(Problem("bad_source", f"{source.location!r} is not an http(s) URL — write it in full, "
                                    "e.g. https://example.com/docs."))
        elif source.kind == "builtin" and source.location not in BUILTIN_CORPORA:
            problems.append(Problem("bad_source", f"There is no built-in corpus {source.location!r}; the built-in "
                                    f"ones are: {', '.join(BUILTIN_CORPORA)}."))
        elif source.kind == "crawl_topic" and not source.location.strip():
            problems.append(Problem("bad_source", "A crawl topic is empty — say what to look up, e.g. "
                                    "\"crawl pages about rust async\"."))
    for conflict in spec.conflicts:
        problems.append(Problem("contradiction", f"The goal contradicts itself: {conflict.message} — "
                                f"{_CONFLICT_FIX.get(conflict.field, 'say which one you mean')}."))
    if spec.budget_minutes is not None and spec.budget_minutes < 1:
        problems.append(Problem("budget_too_small", f"A budget of {spec.budget_minutes} minutes is too small to "
                                "train anything — give at least 1 minute (--budget-minutes N) or leave it out."))
    if spec.description.strip() and not spec.sources:
        problems.append(Problem("no_data", "No data source: say where the data is: a folder, a file, --data PATH, "
                                "or a URL."))
    return problems


def check_spec(spec: TaskSpec, cwd: str | Path | None = None) -> TaskSpec:
    """`spec` unchanged when it can be acted on; otherwise GoalError listing every problem."""
    problems = validate_spec(spec, cwd)
    if problems:
        raise GoalError("\n".join(problem.message for problem in problems))
    return spec


_CONFLICT_FIX = {
    "base_model": "keep one, or pass --base NAME",
    "budget_minutes": "keep one, or pass --budget-minutes N",
    "policy": "keep one, or pass --policy interactive|auto|nightly",
    "sources": "keep the ones you mean, or pass --data PATH",
    "objective": "say whether the model should write in a style, answer questions, or do a task",
}


def _parse_with_llm(text: str, cwd: Path, rules_spec: TaskSpec, config: AgentLLMConfig) -> TaskSpec:
    model = chat_model(config)
    if model is None:
        raise ToolError("no LLM is configured")
    hints = rules_spec.model_dump(mode="json", exclude={"parser", "description"})
    prompt = GOAL_PARSE_USER.format(goal=" ".join(text.split()), cwd=cwd, listing=_listing(cwd),
                                    hints=json.dumps(hints))
    result = model.with_structured_output(TaskSpec).invoke([("system", GOAL_PARSE_SYSTEM), ("human", prompt)])
    if not isinstance(result, TaskSpec):
        raise ToolError(f"the LLM returned {type(result).__name__} instead of a TaskSpec")
    return result.model_copy(update={"parser": "llm"})


def _listing(cwd: Path) -> str:
    try:
        entries = sorted(itertools.islice(cwd.iterdir(), 400), key=lambda p: p.name)
    except OSError:
        return "(unreadable)"
    names = [p.name + ("/" if p.is_dir() else "") for p in entries if not p.name.startswith(".")]
    more = f" … and {len(names) - LISTING_MAX} more" if len(names) > LISTING_MAX else ""
    return (", ".join(names[:LISTING_MAX]) + more) or "(empty)"


def _normalize(spec: TaskSpec, cwd: Path) -> TaskSpec:
    """Anchor local paths at `cwd` (a run may resume from another directory) and canonicalise model names."""
    sources: list[Source] = []
    for source in spec.sources:
        location = source.location.strip()
        if not location:
            continue
        if source.kind in LOCAL_KINDS:
            sources.append(source_for_path(location, cwd))
        elif source.kind == "builtin":
            sources.append(Source(kind="builtin", location=location.lower()))
        else:
            sources.append(Source(kind=source.kind, location=location))
    unique = list({(s.kind, s.location): s for s in sources}.values())
    return spec.model_copy(update={"sources": unique, "base_model": _normalize_base(spec.base_model, cwd)})


def _normalize_base(name: str, cwd: Path) -> str:
    name = name.strip()
    if name.lower() in MODEL_ALIASES:
        return MODEL_ALIASES[name.lower()]
    if name.startswith(("/", "./", "../", "~")) or (cwd / name).is_dir():
        return str(resolve_path(name, cwd))
    return name


def _apply_overrides(spec: TaskSpec, cwd: Path, trace: list[dict[str, Any]], *, data_paths: list[str],
                     base: str | None, budget_minutes: float | None, policy: str | None) -> TaskSpec:
    update: dict[str, Any] = {}
    overridden: list[str] = []
    if data_paths:
        given = [Source(kind="url", location=p) if _is_http_url(p) else source_for_path(p, cwd) for p in data_paths]
        # --data replaces the local places the text names; web sources the text names still count.
        kept = [s for s in spec.sources if s.kind not in LOCAL_KINDS]
        update["sources"] = list({(s.kind, s.location): s for s in given + kept}.values())
        overridden.append("sources")
    if base:
        update["base_model"] = _normalize_base(base, cwd)
        overridden.append("base_model")
    if budget_minutes is not None:
        update["budget_minutes"] = math.floor(budget_minutes)
        overridden.append("budget_minutes")
    if policy:
        if policy not in get_args(Policy):
            raise GoalError(f"--policy {policy!r} is not a policy: use one of {', '.join(get_args(Policy))}.")
        update["policy"] = policy
        overridden.append("policy")
    if not overridden:
        return spec
    update["conflicts"] = [c for c in spec.conflicts if c.field not in overridden]
    trace.append({"path": "cli", "reason": "command-line flags override the goal text for: "
                  + ", ".join(overridden)})
    return spec.model_copy(update=update)


def _fallback_reason(text: str, config: AgentLLMConfig | None, trace: list[dict[str, Any]]) -> str:
    if not text.strip():
        return "the goal is empty; nothing to send to an LLM"
    if any(entry.get("error") for entry in trace):
        return "fell back to the rule-based parser because the LLM path failed (see the llm entry)"
    if config is None or not config.configured:
        return "no LLM configured (set OPENAI_BASE_URL or OPENAI_API_KEY to use one); rule-based parser"
    return "rule-based parser"


def _describe_error(err: BaseException) -> str:
    message = " ".join(str(err).split())
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def _is_http_url(text: str) -> bool:
    parsed = urlparse(text)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _display(location: str, cwd: Path) -> str:
    path = Path(location)
    try:
        return "./" + str(path.relative_to(cwd)) if path.is_absolute() else location
    except ValueError:
        return location
