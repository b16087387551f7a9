"""Detect a record's format (OpenAI, ShareGPT, Alpaca, prompt/completion, text) and normalise it to chat."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tools.data.issues import Issue, issue
from tools.train.chat_template import ROLES

FORMATS: dict[str, str] = {
    "openai": "`messages`: [{role, content}] (OpenAI chat)",
    "sharegpt": "`conversations`: [{from, value}] (ShareGPT)",
    "alpaca": "`instruction`, optional `input`, `output` (Alpaca)",
    "completion": "`prompt`, `completion`",
    "text": "`text` (raw text, trained as language modelling)",
}
ACCEPTED = "; ".join(FORMATS.values())

SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "chatgpt": "assistant"}


@dataclass
class Normalized:
    """A record after format detection: the chat (or text) example, or the reasons it has none."""

    format: str | None
    """A key of FORMATS, or None when no format matched."""
    example: dict[str, Any] | None
    """`{"messages": [...]}` for chat formats, `{"text": str}` for raw text; None if unusable."""
    issues: list[Issue] = field(default_factory=list)
    """Problems of this record alone (errors and warnings)."""

    @property
    def valid(self) -> bool:
        return self.example is not None and not any(i.severity == "error" for i in self.issues)


def _has(data: dict[str, Any], key: str) -> bool:
    # Columnar sources (Parquet, datasets) fill absent columns with None.
    return data.get(key) is not None


def detect_format(data: Any) -> str | None:
    """The FORMATS key this record matches, checked from the most to the least specific, or None."""
    if not isinstance(data, dict):
        return None
    if _has(data, "messages"):
        return "openai"
    if _has(data, "conversations"):
        return "sharegpt"
    if _has(data, "instruction") and _has(data, "output"):
        return "alpaca"
    if _has(data, "prompt") and _has(data, "completion"):
        return "completion"
    if _has(data, "text"):
        return "text"
    return None


def normalize_record(data: Any, line: int = 0) -> Normalized:
    """Turn one raw record into `{"messages": [...]}` (or `{"text": ...}`) and check its turns.

    A `text` record has no prompt to split off, so it is kept as a raw-text example (language modelling
    on every token) and flagged by validation rather than forced into a made-up chat turn.
    """
    if not isinstance(data, dict):
        kind = type(data).__name__
        return Normalized(None, None, [issue(line, "not_an_object", f"record is a {kind}, not an object; "
                                                                   f"accepted formats: {ACCEPTED}.")])
    fmt = detect_format(data)
    if fmt is None:
        keys = sorted(k for k in data if data[k] is not None)
        return Normalized(None, None, [issue(line, "unknown_format", f"unrecognised record with keys {keys}; "
                                                                    f"accepted formats: {ACCEPTED}.")])
    if fmt == "text":
        text = data["text"]
        if not isinstance(text, str):
            return Normalized(fmt, None, [issue(line, "bad_field", f"`text` is a {type(text).__name__}; "
                                                                   "make it a string.")])
        problems = [] if text.strip() else [issue(line, "empty_turn", "`text` is empty; drop the record.")]
        return Normalized(fmt, {"text": text}, problems)
    messages, problems = _CONVERTERS[fmt](data, line)
    if messages is None:
        return Normalized(fmt, None, problems)
    problems += check_turns(messages, line)
    return Normalized(fmt, {"messages": messages}, problems)


def _content_text(content: Any) -> str | None:
    """Content as a string; OpenAI's list-of-parts form keeps its text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    return None


def _turns(items: Any, line: int, field_name: str, role_key: str, content_key: str,
           role_map: dict[str, str]) -> tuple[list[dict[str, str]] | None, list[Issue]]:
    if not isinstance(items, list) or not all(isinstance(m, dict) for m in items):
        return None, [issue(line, "bad_field", f"`{field_name}` must be a list of objects with "
                                               f"`{role_key}` and `{content_key}`.")]
    messages, problems = [], []
    for n, item in enumerate(items, start=1):
        raw_role = item.get(role_key, item.get("role"))
        content = _content_text(item.get(content_key, item.get("content")))
        if content is None:
            return None, [issue(line, "bad_field", f"`{field_name}`[{n}] has no text `{content_key}`; "
                                                   "give every turn a string.")]
        role = role_map.get(str(raw_role).lower()) if raw_role is not None else None
        if role is None:
            accepted = ", ".join(sorted(set(role_map)))
            problems.append(issue(line, "unknown_role", f"turn {n} has role {raw_role!r}; "
                                                        f"use one of {accepted}."))
            role = str(raw_role)
        messages.append({"role": role, "content": content})
    return messages, problems


def _from_openai(data: dict[str, Any], line: int) -> tuple[list[dict[str, str]] | None, list[Issue]]:
    return _turns(data["messages"], line, "messages", "role", "content", {r: r for r in ROLES})


def _from_sharegpt(data: dict[str, Any], line: int) -> tuple[list[dict[str, str]] | None, list[Issue]]:
    messages, problems = _turns(data["conversations"], line, "conversations", "from", "value", SHAREGPT_ROLES)
    system = data.get("system")
    if messages is not None and isinstance(system, str) and system.strip():
        messages.insert(0, {"role": "system", "content": system})
    return messages, problems


def _from_alpaca(data: dict[str, Any], line: int) -> tuple[list[dict[str, str]] | None, list[Issue]]:
    fields = {k: data.get(k) for k in ("instruction", "input", "output", "system")}
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            kind = type(value).__name__
            return None, [issue(line, "bad_field", f"`{name}` is a {kind}; make it a string.")]
    prompt = fields["instruction"]
    if fields["input"] and fields["input"].strip():
        prompt = f"{prompt}\n\n{fields['input']}"
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": fields["output"]}]
    if fields["system"] and fields["system"].strip():
        messages.insert(0, {"role": "system", "content": fields["system"]})
    return messages, []


def _from_completion(data: dict[str, Any], line: int) -> tuple[list[dict[str, str]] | None, list[Issue]]:
    prompt, completion = data["prompt"], data["completion"]
    if isinstance(prompt, str) and isinstance(completion, str):
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}], []
    if isinstance(prompt, list) and isinstance(completion, list):
        # TRL's conversational prompt/completion: two message lists that join into one chat.
        return _turns(prompt + completion, line, "prompt + completion", "role", "content",
                      {r: r for r in ROLES})
    return None, [issue(line, "bad_field", "`prompt` and `completion` must both be strings or both be "
                                           "lists of {role, content} messages.")]


_CONVERTERS = {"openai": _from_openai, "sharegpt": _from_sharegpt, "alpaca": _from_alpaca,
               "completion": _from_completion}


def check_turns(messages: list[dict[str, str]], line: int = 0) -> list[Issue]:
    """Problems with the order and content of a chat's turns (roles are assumed already mapped)."""
    problems: list[Issue] = []
    roles = [m["role"] for m in messages]
    for n, (role, message) in enumerate(zip(roles, messages, strict=True), start=1):
        if message["content"].strip():
            continue
        if role == "assistant":
            problems.append(issue(line, "empty_assistant", f"turn {n}: the assistant reply is empty; "
                                                           "write the reply or drop the record."))
        elif role == "system":
            problems.append(issue(line, "empty_system", f"turn {n}: the system prompt is empty; "
                                                        "drop that turn."))
        else:
            problems.append(issue(line, "empty_turn", f"turn {n}: the {role} turn is empty; "
                                                      "write it or drop the record."))
    if "system" in roles[1:]:
        n = roles.index("system", 1) + 1
        problems.append(issue(line, "turn_order", f"turn {n}: a system turn must come first; "
                                                  "move or drop it."))
    chat = [r for r in roles if r != "system"]
    if "assistant" not in chat:
        problems.append(issue(line, "missing_assistant", "no assistant turn: add the reply the model "
                                                         "should learn, or drop the record."))
    elif chat[0] != "user":
        problems.append(issue(line, "turn_order", f"the conversation opens with {chat[0]!r}; it must open "
                                                  "with a user turn (after an optional system turn)."))
    previous, previous_n = None, 0
    for n, role in enumerate(roles, start=1):
        if role == "system":
            continue
        if role == previous and role in ("user", "assistant"):
            problems.append(issue(line, "turn_order", f"turns {previous_n} and {n} are both {role} turns; "
                                                      "merge them or add the missing turn between."))
            break
        previous, previous_n = role, n
    if chat and chat[-1] == "user" and "assistant" in chat:
        problems.append(issue(line, "unanswered_turn", "the last turn is a user turn with no reply; it "
                                                       "teaches nothing, consider dropping it."))
    return problems
