"""`ingrain chat`: goals and questions in a loop; gates are asked inline; works with or without an LLM."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from agent import runner
from agent.errors import AgentError
from agent.llm import chat_model
from agent.prompts import CHAT_SYSTEM
from memory import Store
from memory.errors import StoreError
from tools.errors import ToolError

HELP = """\
Tell me a goal ("make a small model that answers questions about the python docs in 8 minutes") and I run it,
asking you at each gate. I also understand:
  runs                         list runs
  what is run 7 doing?         where a run stands and what it did last
  why did config B win?        the sweep's reason (latest run, or "... in run 7")
  approve 7 [B] / reject 7 REASON
  lessons · models · help · quit"""
GOAL_WORDS = re.compile(r"\b(make|train|teach|fine-?tune|build|bake|put|create|turn|learn|write[s]? like)\b", re.I)


class ChatSession:
    """One conversation; `handle(line)` returns the reply (and may drive runs through `ask`)."""

    def __init__(self, ask: runner.Ask | None, policy: str = "interactive") -> None:
        self.ask, self.policy = ask, policy
        self.llm = chat_model()
        self.last_run: int | None = None

    @property
    def mode(self) -> str:
        return "with an LLM" if self.llm else "without an LLM (goals and the commands in `help` only)"

    def handle(self, line: str) -> str:
        text = line.strip()
        if not text:
            return ""
        try:
            for pattern, action in self.commands():
                match = re.search(pattern, text, re.I)
                if match:
                    return action(match)
            if GOAL_WORDS.search(text):
                return self.start_goal(text)
            return self.answer_freely(text)
        except (AgentError, ToolError, StoreError) as exc:
            return f"error: {exc}"

    def commands(self) -> list[tuple[str, Callable[[re.Match[str]], str]]]:
        return [
            (r"^(help|\?)$", lambda m: HELP),
            (r"^(list )?runs$", lambda m: self.list_runs()),
            (r"^lessons$", lambda m: self.list_lessons()),
            (r"^models$", lambda m: self.list_models()),
            (r"^approve\s+(\d+)(?:\s+([A-H]))?$", lambda m: self.continue_run(
                runner.approve(int(m.group(1)), choice=m.group(2), ask=self.ask))),
            (r"^reject\s+(\d+)\s+(.+)$", lambda m: self.continue_run(
                runner.reject(int(m.group(1)), reason=m.group(2), ask=self.ask))),
            (r"\brun\s*#?(\d+)\b.*\b(doing|status|state|stand|going|up to)\b|\b(doing|status)\b.*\brun\s*#?(\d+)",
             lambda m: self.describe_run(int(m.group(1) or m.group(4)))),
            (r"\bwhy\b.*\b(?:config|trial)\s+([A-H])\b.*\bw[io]n\b(?:.*\brun\s*#?(\d+))?",
             lambda m: self.explain_winner(m.group(1).upper(), int(m.group(2)) if m.group(2) else None)),
        ]

    def start_goal(self, goal: str) -> str:
        outcome = runner.start(goal, policy=self.policy, ask=self.ask)
        return self.continue_run(outcome)

    def continue_run(self, outcome: runner.Outcome) -> str:
        self.last_run = outcome.run_id
        return outcome.message

    def list_runs(self) -> str:
        rows = _with_store(lambda s: s.runs(limit=20))
        if not rows:
            return "No runs yet. Tell me a goal."
        return "\n".join(f"run {r['id']}: {r['status']}{' at ' + r['gate'] if r['gate'] else ''} · "
                         f"{r['model'] or '-'} · {r['goal'][:60]}" for r in rows)

    def list_lessons(self) -> str:
        rows = _with_store(lambda s: s.lessons(limit=20))
        return "\n".join(f"[{r['topic']}] {r['text']}" for r in rows) or "No lessons yet."

    def list_models(self) -> str:
        rows = _with_store(lambda s: s.models())
        return "\n".join(f"{r['name']} ({r['status']}, {r['kind']})" for r in rows) or "No model versions yet."

    def describe_run(self, run_id: int) -> str:
        run, events = _with_store(lambda s: (s.run(run_id), s.events(run_id)))
        nodes = [e["name"] for e in events if e["kind"] == "node_end"]
        last = events[-1] if events else None
        parts = [f"Run {run_id} is {run['status']}" + (f" at the {run['gate']} gate" if run["gate"] else "") + "."]
        if nodes:
            parts.append("Done so far: " + " → ".join(nodes) + ".")
        if last:
            parts.append(f"Last event: {last['kind']} {last['name'] or ''} in {last['node'] or '-'}.")
        if run["error"]:
            parts.append(f"Error: {run['error']}")
        if run["verdict"]:
            parts.append(f"Verdict: {run['verdict']}; model {run['model'] or 'not deployed'}.")
        return " ".join(parts)

    def explain_winner(self, trial: str, run_id: int | None) -> str:
        def find(store: Store) -> tuple[int, dict[str, Any]] | None:
            candidates = [run_id] if run_id else [r["id"] for r in store.runs(limit=50)]
            for rid in candidates:
                for event in reversed(store.events(rid, kinds=["decision"])):
                    if event["node"] == "sweep" and (event["name"] or "").startswith("winner"):
                        return rid, event
            return None

        found = _with_store(find)
        if not found:
            return "No sweep has finished yet" + (f" in run {run_id}." if run_id else ".")
        rid, event = found
        winner = (event["name"] or "").removeprefix("winner ").strip()
        reason = (event.get("data") or {}).get("reason", "")
        if winner != trial:
            return f"In run {rid}, config {trial} did not win: {winner} did, because {reason}."
        return f"In run {rid}, config {trial} won because of its {reason}."

    def answer_freely(self, text: str) -> str:
        if not self.llm:
            return f"I don't understand that without an LLM configured. {HELP}"
        facts = json.dumps({"runs": _with_store(lambda s: s.runs(limit=10)),
                            "lessons": _with_store(lambda s: s.lessons(limit=10))}, default=str)[:12000]
        try:
            reply = self.llm.invoke([("system", CHAT_SYSTEM.format(facts=facts)), ("user", text)])
        except Exception as exc:  # the console must keep working when the LLM endpoint is down
            return f"The LLM endpoint did not answer ({type(exc).__name__}: {exc}). {HELP}"
        return str(reply.content)


def _with_store(fn: Callable[[Store], Any]) -> Any:
    with Store.open() as store:
        return fn(store)
