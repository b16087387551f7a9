"""Style conformance: verifiable properties learned from training targets, and checks that score outputs."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.errors import ToolError

BULLET = re.compile(r"^\s*([-*•+]|\d{1,2}[.)])\s+\S")
LABEL = re.compile(r"^\s*(?:\*\*)?([A-Z][A-Za-z0-9/&' -]{0,28}?)(?:\*\*)?:(?:\*\*)?(?:\s|$)")
HEADER = re.compile(r"^\s{0,3}#{1,6}\s+\S")
FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
BOILERPLATE = ("as an ai", "as a language model", "i'm sorry, but", "i cannot help", "i can't help",
               "i am unable to", "i'm just an ai")


@dataclass(frozen=True)
class StyleConfig:
    """How strict the profiler is about what counts as a learnable property."""

    min_support: float = field(default=0.9, metadata={
        "help": "Share of training targets a property must hold for to become a check."})
    min_targets: int = field(default=3, metadata={"help": "Fewer targets than this yield no checks."})
    length_spread: float = field(default=4.0, metadata={
        "help": "A length check is learned only when the longest/shortest word count in range is below this."})
    length_slack: float = field(default=0.3, metadata={
        "help": "Relative slack around the learned word-count range (generations vary more than targets)."})

    def __post_init__(self) -> None:
        if not 0.5 <= self.min_support <= 1.0:
            raise ToolError(f"min_support={self.min_support}: use a share between 0.5 and 1.0 (default 0.9).")
        if self.min_targets < 1 or self.length_spread < 1 or self.length_slack < 0:
            raise ToolError("StyleConfig needs min_targets >= 1, length_spread >= 1 and length_slack >= 0.")


@dataclass(frozen=True)
class Check:
    """One verifiable property of an output."""

    name: str
    description: str
    fn: Callable[[str], bool]
    kind: str = "structure"
    """`structure` (learned layout) or `guardrail` (learned absence of boilerplate, script)."""
    support: float = 1.0
    """Share of the training targets that pass it."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "kind": self.kind,
                "support": round(self.support, 3)}


@dataclass
class StyleProfile:
    """What the training targets consistently look like, as checks an output can pass or fail."""

    n_targets: int
    checks: list[Check]
    properties: dict[str, Any]
    """Learned values (labels, ranges, keys) for the report."""
    notes: list[str]

    @property
    def has_structure(self) -> bool:
        return any(c.kind == "structure" for c in self.checks)

    def score(self, output: str) -> dict[str, bool]:
        return {c.name: bool(c.fn(output)) for c in self.checks}

    def conformance(self, output: str) -> float | None:
        """Share of checks an output passes; None when the profile has no checks."""
        if not self.checks:
            return None
        scores = self.score(output)
        return sum(scores.values()) / len(scores)

    def pass_rate(self, outputs: Sequence[str]) -> dict[str, Any]:
        """Per-check pass rate, mean conformance (`overall`) and the share passing every check."""
        if not self.checks or not outputs:
            return {"per_check": {}, "overall": None, "all_pass": None, "n": len(outputs)}
        scored = [self.score(o) for o in outputs]
        per_check = {c.name: sum(s[c.name] for s in scored) / len(scored) for c in self.checks}
        return {"per_check": per_check,
                "overall": sum(sum(s.values()) / len(s) for s in scored) / len(scored),
                "all_pass": sum(all(s.values()) for s in scored) / len(scored),
                "n": len(outputs)}

    def to_dict(self) -> dict[str, Any]:
        return {"n_targets": self.n_targets, "has_structure": self.has_structure,
                "checks": [c.to_dict() for c in self.checks], "properties": self.properties,
                "notes": self.notes}

    def describe(self) -> str:
        head = f"Style learned from {self.n_targets} training targets"
        if not self.checks:
            return "\n".join([head + ": no checks.", *self.notes])
        lines = [head + ":"]
        lines += [f"- {c.description} ({c.support:.0%} of targets)" for c in self.checks]
        return "\n".join(lines + self.notes)


def style_profile(targets: Sequence[str], config: StyleConfig | None = None) -> StyleProfile:
    """Derive the checks that (nearly) all targets pass; a set without consistent structure gets none."""
    config = config or StyleConfig()
    texts = [t.strip() for t in targets if t and t.strip()]
    if len(texts) < config.min_targets:
        return StyleProfile(len(texts), [], {}, [
            f"Only {len(texts)} non-empty targets (< {config.min_targets}): too few to learn a style from."])
    learned: dict[str, Any] = {}
    candidates = _json_checks(texts, config, learned)
    if not candidates:
        candidates = _layout_checks(texts, config, learned)
    candidates += _line_checks(texts, config, learned, is_json=bool(learned.get("json")))
    structure = _verified(candidates, texts, config)
    notes: list[str] = []
    if not structure:
        notes.append("No consistent structure across the targets (labels, bullets, paragraphs, openings, "
                      "closings, length, JSON): no style checks were derived; judge this set on "
                      "ROUGE-L and loss instead.")
        return StyleProfile(len(texts), [], learned, notes)
    # Guardrails alone would make any output look conforming, so they only join a real style.
    guardrails = _verified(_guardrail_checks(texts, config, learned), texts, config)
    return StyleProfile(len(texts), structure + guardrails, learned, notes)


def _verified(candidates: list[Check], texts: Sequence[str], config: StyleConfig) -> list[Check]:
    """Keep the checks that hold on enough targets, with their measured support."""
    kept = []
    for check in candidates:
        support = sum(bool(check.fn(t)) for t in texts) / len(texts)
        if support >= config.min_support:
            kept.append(Check(check.name, check.description, check.fn, check.kind, support))
    return kept


def _share(texts: Sequence[str], predicate: Callable[[str], bool]) -> float:
    return sum(bool(predicate(t)) for t in texts) / len(texts)


def _tight_range(values: Sequence[int], share: float) -> tuple[int, int]:
    """The narrowest [lo, hi] holding at least `share` of the values (outliers fall outside it)."""
    ordered = sorted(values)
    k = max(1, math.ceil(share * len(ordered)))
    start = min(range(len(ordered) - k + 1), key=lambda i: ordered[i + k - 1] - ordered[i])
    return ordered[start], ordered[start + k - 1]


def parse_json(text: str) -> Any:
    """The JSON value in a text (a ```json fence is allowed); raises ValueError when there is none."""
    text = text.strip()
    fenced = FENCE.match(text)
    return json.loads(fenced.group(1) if fenced else text)


def _is_json(text: str) -> bool:
    try:
        parse_json(text)
    except ValueError:
        return False
    return True


def _json_checks(texts: Sequence[str], config: StyleConfig, learned: dict[str, Any]) -> list[Check]:
    if _share(texts, _is_json) < config.min_support:
        return []
    learned["json"] = True
    checks = [Check("json_valid", "is valid JSON", _is_json)]
    objects = [v for v in (_json_or_none(t) for t in texts) if isinstance(v, dict)]
    if len(objects) / len(texts) >= config.min_support:
        counts = Counter(k for obj in objects for k in obj)
        keys = sorted(k for k, n in counts.items() if n / len(objects) >= config.min_support)
        learned["json_keys"] = keys

        def has_keys(text: str, keys: list[str] = keys) -> bool:
            value = _json_or_none(text)
            return isinstance(value, dict) and all(k in value for k in keys)

        described = ", ".join(keys) or "(any)"
        checks.append(Check("json_keys", f"is a JSON object with keys {described}", has_keys))
    return checks


def _json_or_none(text: str) -> Any:
    try:
        return parse_json(text)
    except ValueError:
        return None


def bullet_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if BULLET.match(line)]


def _bullet_marker(line: str) -> str:
    marker = BULLET.match(line).group(1)  # type: ignore[union-attr]
    return "numbered" if marker[0].isdigit() else marker


def labels_in(text: str) -> list[str]:
    """Line-leading labels such as `Summary:` or `**Key points:**`, in order of appearance."""
    found = []
    for line in text.splitlines():
        match = LABEL.match(line)
        if match and len(match.group(1).split()) <= 4:
            found.append(match.group(1).strip())
    return found


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _layout_checks(texts: Sequence[str], config: StyleConfig, learned: dict[str, Any]) -> list[Check]:
    checks: list[Check] = []
    label_counts = Counter(label for t in texts for label in dict.fromkeys(labels_in(t)))
    labels = [lab for lab, n in label_counts.most_common() if n / len(texts) >= config.min_support]
    if labels:
        first_seen = Counter()
        for t in texts:
            for pos, lab in enumerate(x for x in labels_in(t) if x in labels):
                first_seen[lab] += pos
        labels.sort(key=lambda lab: first_seen[lab])
        learned["labels"] = labels
        for lab in labels:
            checks.append(Check(f"label:{lab}", f"has a line starting with '{lab}:'",
                                lambda t, lab=lab: lab in labels_in(t)))
        if len(labels) > 1:
            def in_order(text: str, labels: list[str] = labels) -> bool:
                seen = [x for x in dict.fromkeys(labels_in(text)) if x in labels]
                return seen == labels

            checks.append(Check("label_order", "labels appear in the order " + " → ".join(labels), in_order))
    with_bullets = [t for t in texts if bullet_lines(t)]
    if len(with_bullets) / len(texts) >= config.min_support:
        markers = Counter(_bullet_marker(line) for t in with_bullets for line in bullet_lines(t))
        marker, count = markers.most_common(1)[0]
        consistent = count / sum(markers.values()) >= config.min_support
        lo, hi = _tight_range([len(bullet_lines(t)) for t in texts], config.min_support)
        learned["bullets"] = {"marker": marker if consistent else "any", "count_range": [lo, hi]}

        def bullets_ok(text: str, marker: str | None = marker if consistent else None) -> bool:
            found = bullet_lines(text)
            return bool(found) and (marker is None or all(_bullet_marker(b) == marker for b in found))

        style = f"'{marker}' bullets" if consistent and marker != "numbered" else (
            "a numbered list" if consistent else "a bulleted list")
        checks.append(Check("bullets", f"uses {style}", bullets_ok))
        checks.append(Check("bullet_count", f"has {_span(lo, hi)} bullet lines",
                            lambda t, lo=lo, hi=hi: lo <= len(bullet_lines(t)) <= hi))
    if _share(texts, lambda t: any(HEADER.match(line) for line in t.splitlines())) >= config.min_support:
        learned["markdown_headers"] = True
        checks.append(Check("markdown_header", "has a markdown header (# ...)",
                            lambda t: any(HEADER.match(line) for line in t.splitlines())))
    counts = [len(paragraphs(t)) for t in texts]
    lo, hi = _tight_range(counts, config.min_support)
    if lo >= 2 and hi - lo <= 1:
        learned["paragraphs"] = [lo, hi]
        checks.append(Check("paragraphs", f"has {_span(lo, hi)} paragraphs",
                            lambda t, lo=lo, hi=hi: lo <= len(paragraphs(t)) <= hi))
    checks += _edge_checks(texts, config, learned)
    words = [len(t.split()) for t in texts]
    lo, hi = _tight_range(words, config.min_support)
    if hi / max(lo, 1) <= config.length_spread:
        lo, hi = max(1, math.floor(lo * (1 - config.length_slack))), math.ceil(hi * (1 + config.length_slack))
        learned["length_words"] = [lo, hi]
        checks.append(Check("length_words", f"is {lo}–{hi} words long",
                            lambda t, lo=lo, hi=hi: lo <= len(t.split()) <= hi))
    return checks


def _span(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _edge_checks(texts: Sequence[str], config: StyleConfig, learned: dict[str, Any]) -> list[Check]:
    """A common opening (first words) and sign-off (last line or last words)."""
    checks: list[Check] = []
    labels = learned.get("labels", [])
    opening = _common_words(texts, lambda words, k: words[:k], config)
    if opening and not any(opening[0].rstrip(":*").lstrip("*") == lab.split()[0] for lab in labels):
        text = " ".join(opening)
        learned["opening"] = text
        checks.append(Check("opening", f"opens with '{text}'",
                            lambda t, o=opening: t.strip().split()[: len(o)] == o))
    last_lines = Counter(_last_line(t) for t in texts)
    line, count = last_lines.most_common(1)[0]
    # Text ending in a list ends with list content, not a sign-off; the bullet checks cover lists.
    if _share(texts, lambda t: bool(BULLET.match(_last_line(t)))) >= config.min_support:
        return checks
    if count / len(texts) >= config.min_support and len(texts) > 1:
        learned["closing"] = line
        checks.append(Check("closing", f"ends with the line '{line}'",
                            lambda t, line=line: _last_line(t) == line))
        return checks
    closing = _common_words(texts, lambda words, k: words[-k:], config)
    if closing:
        text = " ".join(closing)
        learned["closing"] = text
        checks.append(Check("closing", f"ends with '{text}'",
                            lambda t, c=closing: t.strip().split()[-len(c):] == c))
    return checks


def _common_words(texts: Sequence[str], cut: Callable[[list[str], int], list[str]],
                  config: StyleConfig) -> list[str]:
    """The longest run of up to 5 words that (nearly) all targets share at one end."""
    best: list[str] = []
    for k in range(1, 6):
        runs = Counter(tuple(cut(t.split(), k)) for t in texts if len(t.split()) >= k)
        if not runs:
            break
        run, count = runs.most_common(1)[0]
        if count / len(texts) < config.min_support:
            break
        best = list(run)
    return best


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1].strip() if lines else ""


def _line_checks(texts: Sequence[str], config: StyleConfig, learned: dict[str, Any],
                 is_json: bool) -> list[Check]:
    if is_json or _share(texts, lambda t: "\n" not in t) < config.min_support:
        return []
    learned["one_line"] = True
    return [Check("one_line", "is a single line", lambda t: "\n" not in t.strip())]


def dominant_script(text: str) -> str | None:
    """The Unicode script most letters belong to (LATIN, CYRILLIC, CJK, ...), None without letters."""
    scripts = Counter(unicodedata.name(ch, "UNKNOWN").split()[0] for ch in text if ch.isalpha())
    return scripts.most_common(1)[0][0] if scripts else None


def _guardrail_checks(texts: Sequence[str], config: StyleConfig, learned: dict[str, Any]) -> list[Check]:
    checks: list[Check] = []
    if _share(texts, str.isascii) >= config.min_support:
        learned["ascii"] = True
        checks.append(Check("ascii", "uses ASCII characters only", str.isascii, "guardrail"))
    else:
        scripts = Counter(dominant_script(t) for t in texts)
        script, count = scripts.most_common(1)[0]
        if script and count / len(texts) >= config.min_support:
            learned["script"] = script
            checks.append(Check("script", f"is written mostly in {script.title()} script",
                                lambda t, s=script: dominant_script(t) == s, "guardrail"))
    if not any(p in t.lower() for t in texts for p in BOILERPLATE):
        checks.append(Check("no_boilerplate", "avoids assistant boilerplate ('As an AI', 'I cannot', ...)",
                            lambda t: not any(p in t.lower() for p in BOILERPLATE), "guardrail"))
    return checks
