"""Long prompts sent again and again: exact groups by hash, near-duplicates merged with MinHash LSH."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tools.patterns.config import MiningConfig
from tools.patterns.log import LoggedRequest, block_hash, block_text

_ROLE = re.compile(r"\byou are (?:an? |the )?(.{3,60}?)(?:[.,;:!\n]| who | that | for | and |$)", re.IGNORECASE)


@dataclass
class PromptGroup:
    """One repeated prompt and every request that sent it (or a near-duplicate of it)."""

    variant: str
    """system (a system prompt) | few_shot (user/assistant turns before the request)."""
    key: str
    """Hash of the earliest-seen version: stays the same while later versions join it."""
    text: str
    hashes: list[str] = field(default_factory=list)
    """Hashes of every version merged into the group, most frequent first."""
    members: list[LoggedRequest] = field(default_factory=list)
    turns: int = 0
    """Messages of the few-shot block (0 for a system prompt)."""

    @property
    def label(self) -> str:
        return prompt_label(self.text, self.variant)


def prompt_of(request: LoggedRequest, config: MiningConfig) -> tuple[str, str, str] | None:
    """(variant, hash, text) of the long prompt a request carries, or None."""
    if request.system_prompt and request.system_hash and len(request.system_prompt) >= config.min_prompt_chars:
        return "system", request.system_hash, request.system_prompt
    shots = sum(1 for turn in request.prefix if turn.get("role") == "assistant")
    if shots >= config.min_fewshot_turns:
        text = block_text(request.prefix)
        if len(text) >= config.min_prompt_chars:
            return "few_shot", block_hash(request.prefix), text
    return None


def group_prompts(requests: list[LoggedRequest], config: MiningConfig) -> list[PromptGroup]:
    """Requests grouped by their long prompt, near-duplicates merged; largest group first."""
    exact: dict[tuple[str, str], PromptGroup] = {}
    for request in requests:  # oldest first, so a group's first member is its earliest
        found = prompt_of(request, config)
        if found is None:
            continue
        variant, digest, text = found
        group = exact.get((variant, digest))
        if group is None:
            group = exact[(variant, digest)] = PromptGroup(variant, digest, text, [digest],
                                                           turns=len(request.prefix) if variant == "few_shot" else 0)
        group.members.append(request)
    merged: list[PromptGroup] = []
    for variant in ("system", "few_shot"):
        groups = [g for g in exact.values() if g.variant == variant]
        merged.extend(_merge(cluster, variant) for cluster in _near_duplicates(groups, config))
    return sorted(merged, key=lambda g: (-len(g.members), g.key))


def _near_duplicates(groups: list[PromptGroup], config: MiningConfig) -> list[list[PromptGroup]]:
    """Groups whose texts are near-duplicates, joined transitively (union-find over LSH candidates)."""
    if len(groups) < 2:
        return [[g] for g in groups]
    from datasketch import MinHash, MinHashLSH

    parent = list(range(len(groups)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    lsh = MinHashLSH(threshold=config.near_duplicate, num_perm=config.num_perm)
    for index, group in enumerate(groups):
        signature = MinHash(num_perm=config.num_perm, seed=1)
        signature.update_batch([s.encode("utf-8") for s in shingles(group.text)])
        for other in lsh.query(signature):
            parent[root(int(other))] = root(index)
        lsh.insert(str(index), signature)
    joined: dict[int, list[PromptGroup]] = {}
    for index, group in enumerate(groups):
        joined.setdefault(root(index), []).append(group)
    return list(joined.values())


def _merge(groups: list[PromptGroup], variant: str) -> PromptGroup:
    earliest = min(groups, key=lambda g: g.members[0].ts)
    members = sorted((m for g in groups for m in g.members), key=lambda m: m.ts)
    hashes = [g.key for g in sorted(groups, key=lambda g: -len(g.members))]
    return PromptGroup(variant, earliest.key, earliest.text, hashes, members, earliest.turns)


def shingles(text: str, size: int = 3) -> set[str]:
    """Word `size`-grams of the lower-cased text (the whole text when it is shorter)."""
    words = re.findall(r"\w+", text.lower())
    if len(words) <= size:
        return {" ".join(words)}
    return {" ".join(words[i:i + size]) for i in range(len(words) - size + 1)}


def prompt_label(text: str, variant: str = "system") -> str:
    """A short readable name: the role a system prompt gives ('bicycle shop triage'), else its first words."""
    if variant == "few_shot":
        first = next((line.split(": ", 1)[-1] for line in text.splitlines() if line.startswith("user: ")), text)
        return "few-shot: " + _first_words(first, 6)
    role = _ROLE.search(text[:400])
    if role:
        name = re.sub(r"\s+(assistant|bot|agent|helper)$", "", role.group(1).strip(), flags=re.IGNORECASE)
        if len(name) >= 3:
            return name
    return _first_words(text, 8)


def _first_words(text: str, count: int) -> str:
    words = text.split()
    return " ".join(words[:count]) + ("…" if len(words) > count else "")
