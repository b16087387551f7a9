"""One pattern dict per kind: stable id, readable label, the goal it would produce, the spec the nightly needs."""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from typing import Any

from tools.patterns.log import LoggedRequest

ID_PREFIX = {"system_prompt": "system", "cluster": "cluster", "negative_feedback": "negative",
             "upstream": "upstream", "drift": "drift"}


def pattern_id(kind: str, key: str) -> str:
    """`system:3fa2c1d09b1e`: the kind and a short hash of the key, the same from one mining to the next."""
    return f"{ID_PREFIX[kind]}:{hashlib.sha256(key.encode('utf-8')).hexdigest()[:12]}"


def teacher_of(members: list[LoggedRequest]) -> tuple[str, str | None]:
    """("upstream", its model) when most members were answered upstream, else ("local", None)."""
    upstream = Counter(m.model or "upstream" for m in members if m.source == "upstream")
    if sum(upstream.values()) * 2 > len(members):
        return "upstream", upstream.most_common(1)[0][0]
    return "local", None


def build_pattern(kind: str, key: str, label: str, members: list[LoggedRequest], *, threshold: float,
                  objective: str, examples: int, goal: str | None = None, score: float | None = None,
                  spec: dict[str, Any] | None = None, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The columns of a `patterns` row; `spec` always names the objective, task, members and teacher."""
    teacher, upstream_model = teacher_of(members)
    latest = sorted(members, key=lambda m: m.ts, reverse=True)[:examples]
    return {
        "id": pattern_id(kind, key), "kind": kind, "key": key, "label": label, "count": len(members),
        "first_seen": min(m.ts for m in members), "last_seen": max(m.ts for m in members),
        "examples": [m.id for m in latest], "score": float(len(members) if score is None else score),
        "threshold": float(threshold), "goal": goal,
        "spec": {"objective": objective, "task_name": slug(label), "request_ids": [m.id for m in members],
                 "teacher": teacher, "upstream_model": upstream_model, **(spec or {})},
        "data": data or {},
    }


def slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)[:48].strip("-") or "pattern"


def since_words(first_seen: float, now: float) -> str:
    """'today', 'since Monday' within the week, else 'since 2025-01-06'."""
    first, today = time.localtime(first_seen), time.localtime(now)
    if time.strftime("%Y-%m-%d", first) == time.strftime("%Y-%m-%d", today):
        return "today"
    if 0 <= now - first_seen < 6 * 86400:
        return "since " + time.strftime("%A", first)
    return "since " + time.strftime("%Y-%m-%d", first)


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def system_prompt_goal(label: str, variant: str, count: int, when: str) -> str:
    what = "system prompt" if variant == "system" else "few-shot examples"
    them = "it" if variant == "system" else "them"
    return (f"Bake the '{label}' {what}, sent {_times(count)} {when}, into the default model's weights so callers "
            f"can drop {them}")


def cluster_goal(label: str, count: int, when: str, teacher: str, upstream_model: str | None) -> str:
    source = f"{upstream_model}'s answers" if teacher == "upstream" else "the answers nobody rated down"
    return (f"Teach the default model the '{label}' requests, asked {_times(count)} {when}, from {source}, "
            "so it answers them well on its own")


def negative_goal(label: str, count: int, when: str, corrections: int) -> str:
    fixes = f"{corrections} with corrections to learn from" if corrections else "none corrected yet"
    return (f"Fix the default model's answers to '{label}' requests: {count} rated down {when}, {fixes}")


def upstream_goal(model: str, prompt_label: str | None, count: int, when: str) -> str:
    which = f" with the '{prompt_label}' system prompt" if prompt_label else ""
    return (f"Distill {model}'s answers to {count} requests{which}, sent {when}, into the default model so "
            "the proxy can answer them locally")
