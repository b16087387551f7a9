"""Training examples from the endpoint's own usage log, for a mined pattern (OpenPipe's logs → dataset).

Which reply a request teaches:
- a correction a caller sent through /v1/feedback, in place of the reply it corrects (the latest one wins);
- otherwise the reply itself, when it came from the upstream (the teacher) or was a local reply nobody
  rated down;
- nothing, for a reply rated down with no correction, a partial or failed request, or one whose content the
  log did not keep (`--log-content none`).
When the pattern bakes a repeated system prompt into the weights, the prompt is left out of the inputs,
so callers can stop sending it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memory.feedback import ResponseFeedback, feedback_by_response
from memory.store import Store
from memory.usage import usage_rows_by_id
from tools.data.dedup import example_key
from tools.data.split import write_jsonl

MIN_EXAMPLES = 50
"""Below this many usable examples a pattern is reported, not trained: the run keeps a fifth as its sealed
hold-out, and a verdict on fewer than 10 hold-out examples cannot claim significance, so nothing smaller
could ever be promoted."""


@dataclass
class LogExamples:
    """What the log gave for one pattern."""

    path: str | None
    """The JSONL file of chat examples (None when too few to train)."""
    n_examples: int
    n_requests: int
    """Requests the pattern named."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Why requests gave no example: rated_down, not_ok, partial, no_content, missing, duplicate."""
    sources: dict[str, int] = field(default_factory=dict)
    """Where the taught replies came from: upstream, local, correction."""
    too_small: str | None = None
    """Why the pattern is reported instead of run, when it is."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _taught(row: dict[str, Any], fb: ResponseFeedback | None) -> tuple[str | None, str]:
    """(reply to teach, where it came from) or (None, why not)."""
    if fb and fb.correction:
        return fb.correction, "correction"
    if row["status"] != "ok":
        return None, "not_ok"
    if row.get("partial"):
        return None, "partial"
    if fb and fb.rating == -1:
        return None, "rated_down"
    if not row.get("response"):
        return None, "no_content"
    return row["response"], "upstream" if row.get("source") == "upstream" else "local"


def examples_from_log(store: Store, request_ids: list[str], out_path: Path | str, *,
                      strip_system: bool = False, min_examples: int = MIN_EXAMPLES) -> LogExamples:
    """Write the chat examples the logged requests teach to `out_path` (atomically); see the module doc."""
    ids = list(dict.fromkeys(request_ids))
    rows, feedback = usage_rows_by_id(store, ids), feedback_by_response(store, ids)
    skipped: Counter[str] = Counter()
    examples: dict[str, tuple[dict[str, Any], str]] = {}
    # Oldest first, so a later answer to the same input replaces an earlier one.
    for request_id in sorted(ids, key=lambda i: rows[i]["ts"] if i in rows else 0.0):
        row = rows.get(request_id)
        if row is None:
            skipped["missing"] += 1
            continue
        messages = row.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict) \
                or messages[-1].get("role") != "user":
            skipped["no_content"] += 1
            continue
        reply, origin = _taught(row, feedback.get(request_id))
        if reply is None:
            skipped[origin] += 1
            continue
        chat = [{"role": m["role"], "content": m["content"]} for m in messages]
        if row.get("system_prompt") and not strip_system:
            chat.insert(0, {"role": "system", "content": row["system_prompt"]})
        example = {"messages": [*chat, {"role": "assistant", "content": reply}]}
        key = example_key({"messages": chat})
        if key in examples:
            skipped["duplicate"] += 1
        examples[key] = (example, origin)
    result = LogExamples(path=None, n_examples=len(examples), n_requests=len(ids), skipped=dict(skipped),
                         sources=dict(Counter(origin for _, origin in examples.values())))
    if len(examples) < min_examples:
        result.too_small = (f"only {len(examples)} usable examples in {len(ids)} logged requests (at least "
                            f"{min_examples} are needed); skipped: {dict(skipped) or 'none'}")
        return result
    result.path = str(write_jsonl(out_path, [example for example, _ in examples.values()]))
    return result
