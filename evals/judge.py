"""Optional pairwise LLM-as-judge over an OpenAI-compatible endpoint, asked in both orders."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tools.errors import ToolError

DEFAULT_JUDGE_MODEL = "gpt-4o-mini"
DEFAULT_CRITERIA = "Which reply follows the request better, in content and in the expected style and format?"
JUDGE_SYSTEM = ("You are a strict evaluator comparing two replies to the same request. "
                "Answer with exactly one word: A, B, or TIE.")
JUDGE_PROMPT = """Criteria: {criteria}

Request:
{prompt}

Reply A:
{first}

Reply B:
{second}

Which reply is better by the criteria? Answer A, B, or TIE."""


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge model is served."""

    base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible base URL (…/v1)."})
    api_key: str = field(default="not-needed", metadata={"help": "Key for the endpoint; local servers ignore it."})
    model: str = field(default=DEFAULT_JUDGE_MODEL, metadata={"help": "Judge model name."})
    timeout: float = field(default=30.0, metadata={"help": "Seconds per request before giving up."})
    max_items: int = field(default=50, metadata={"help": "Judge at most this many hold-out items (2 calls each)."})

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.max_items < 1:
            raise ToolError("JudgeConfig needs timeout > 0 and max_items >= 1.")

    @classmethod
    def from_env(cls) -> JudgeConfig | None:
        """From OPENAI_BASE_URL / OPENAI_API_KEY / INGRAIN_AGENT_MODEL; None when neither URL nor key is set."""
        base_url, api_key = os.environ.get("OPENAI_BASE_URL"), os.environ.get("OPENAI_API_KEY")
        if not base_url and not api_key:
            return None
        return cls(base_url=base_url or None, api_key=api_key or "not-needed",
                   model=os.environ.get("INGRAIN_AGENT_MODEL") or DEFAULT_JUDGE_MODEL)


@dataclass
class JudgeResult:
    """Pairwise preferences; `available` is False (with `reason`) when no judge could be asked."""

    available: bool
    reason: str
    tuned_wins: int = 0
    base_wins: int = 0
    ties: int = 0
    position_consistency: float | None = None
    """Share of items where both orders named the same reply: low values mean a position-biased judge."""
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tuned_win_rate(self) -> float | None:
        """Wins plus half the ties, over judged items; None when nothing was judged."""
        total = self.tuned_wins + self.base_wins + self.ties
        return (self.tuned_wins + 0.5 * self.ties) / total if total else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tuned_win_rate": self.tuned_win_rate}


def parse_choice(text: str) -> str:
    """'A', 'B' or 'TIE' from a judge reply; anything unclear counts as a tie."""
    match = re.search(r"\b(TIE|A|B)\b", text.strip().upper())
    return match.group(1) if match else "TIE"


def judge_pairwise(
    prompts: Sequence[str],
    base_outputs: Sequence[str],
    tuned_outputs: Sequence[str],
    *,
    criteria: str = DEFAULT_CRITERIA,
    config: JudgeConfig | None = None,
) -> JudgeResult:
    """Ask the judge about each item twice, with the replies swapped, so position bias cancels out.

    An item counts as a win only when both orders prefer the same model; disagreement is a tie.
    """
    config = config or JudgeConfig.from_env()
    if config is None:
        return JudgeResult(False, "No judge configured: set OPENAI_BASE_URL (and OPENAI_API_KEY, "
                                  "INGRAIN_AGENT_MODEL) to an OpenAI-compatible endpoint to enable it.")
    from openai import OpenAI, OpenAIError

    client = OpenAI(base_url=config.base_url, api_key=config.api_key, timeout=config.timeout, max_retries=0)
    result = JudgeResult(True, f"judged by {config.model}")
    consistent = 0
    rows = list(zip(prompts, base_outputs, tuned_outputs, strict=True))[: config.max_items]
    for index, (prompt, base, tuned) in enumerate(rows):
        try:
            tuned_second = _ask(client, config.model, criteria, prompt, base, tuned)
            tuned_first = _ask(client, config.model, criteria, prompt, tuned, base)
        except OpenAIError as err:
            where = config.base_url or "api.openai.com"
            return JudgeResult(False, f"The judge endpoint {where} failed after {index} of {len(rows)} items "
                                      f"({type(err).__name__}: {err}); check that it is running and the "
                                      "model name is right.")
        # Map each answer back to a model: in the first call B is tuned, in the second A is.
        votes = ({"A": "base", "B": "tuned"}.get(tuned_second, "tie"),
                 {"A": "tuned", "B": "base"}.get(tuned_first, "tie"))
        winner = votes[0] if votes[0] == votes[1] else "tie"
        consistent += votes[0] == votes[1]
        result.tuned_wins += winner == "tuned"
        result.base_wins += winner == "base"
        result.ties += winner == "tie"
        result.items.append({"index": index, "votes": list(votes), "winner": winner})
    result.position_consistency = consistent / len(rows) if rows else None
    return result


def _ask(client: Any, model: str, criteria: str, prompt: str, first: str, second: str) -> str:
    response = client.chat.completions.create(
        model=model, temperature=0, max_tokens=4,
        messages=[{"role": "system", "content": JUDGE_SYSTEM},
                  {"role": "user", "content": JUDGE_PROMPT.format(criteria=criteria, prompt=prompt,
                                                                  first=first, second=second)}],
    )
    return parse_choice(response.choices[0].message.content or "")
