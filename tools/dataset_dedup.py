"""Exact and near-duplicate detection for examples: content hashes, and MinHash + LSH over word shingles."""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections import defaultdict
from typing import Any

NEAR_DUPLICATE_JACCARD = 0.9
_WORD = re.compile(r"\w+")
_MERSENNE = (1 << 61) - 1


def canonical_json(example: dict[str, Any]) -> str:
    """One stable serialisation per example, so equal examples hash equally whatever their key order."""
    return json.dumps(example, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def example_key(example: dict[str, Any]) -> str:
    """Content hash of an example (hex sha256 of its canonical JSON)."""
    return hashlib.sha256(canonical_json(example).encode("utf-8")).hexdigest()


def example_text(example: dict[str, Any]) -> str:
    """The example's words in order, roles included, as near-duplicate detection compares them."""
    if "messages" in example:
        return "\n".join(f"{m['role']}: {m['content']}" for m in example["messages"])
    return str(example.get("text", ""))


def shingles(text: str, k: int = 3) -> set[int]:
    """Hashed word k-grams of lower-cased text; a text shorter than k words is one shingle."""
    words = _WORD.findall(text.lower())
    if not words:
        return set()
    if len(words) < k:
        return {zlib.crc32(" ".join(words).encode("utf-8"))}
    grams = (" ".join(words[i:i + k]) for i in range(len(words) - k + 1))
    return {zlib.crc32(g.encode("utf-8")) for g in grams}


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def minhash_signatures(sets: list[set[int]], num_perm: int = 128, seed: int = 1) -> Any:
    """A (len(sets), num_perm) uint64 array of MinHash signatures; empty sets get all-max rows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # a < 2**31 and crc32 values < 2**32 keep a*x + b below 2**64, so uint64 arithmetic never wraps.
    a = rng.integers(1, 1 << 31, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, 1 << 31, size=num_perm, dtype=np.uint64)
    signatures = np.full((len(sets), num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    batch: list[int] = []
    owners: list[int] = []
    starts: list[int] = []

    def flush() -> None:
        if not batch:
            return
        values = np.asarray(batch, dtype=np.uint64)[:, None]
        hashed = (values * a + b) % _MERSENNE
        signatures[owners] = np.minimum.reduceat(hashed, starts, axis=0)
        batch.clear(), owners.clear(), starts.clear()

    for index, items in enumerate(sets):
        if not items:
            continue
        starts.append(len(batch))
        owners.append(index)
        batch.extend(items)
        if len(batch) >= 50_000:  # bounds the (shingles x num_perm) block to ~50 MB
            flush()
    flush()
    return signatures


def near_duplicates(texts: list[str], threshold: float = NEAR_DUPLICATE_JACCARD, *, bands: int = 16,
                    rows: int = 8, max_candidates: int = 200) -> list[tuple[int, int, float]]:
    """Pairs (earlier, later, jaccard) of texts whose shingle Jaccard is >= threshold.

    Each later text is paired with one earlier text that starts a group (the verified candidate
    sharing the most LSH bands), which is enough to report it and to group near-duplicates. LSH with
    16 bands of 8 rows finds a pair of Jaccard 0.9 with probability > 0.999; every candidate is then
    checked on the exact shingle sets, so no pair below the threshold is reported.
    """
    sets = [shingles(t) for t in texts]
    signatures = minhash_signatures(sets, num_perm=bands * rows)
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    pairs: list[tuple[int, int, float]] = []
    for index, items in enumerate(sets):
        if not items:
            continue
        keys = [(band, signatures[index, band * rows:(band + 1) * rows].tobytes()) for band in range(bands)]
        hits: dict[int, int] = defaultdict(int)
        for key in keys:
            for other in buckets[key]:
                hits[other] += 1
        # Most shared bands first: those are the likeliest matches when a bucket is crowded.
        match = None
        for other in sorted(hits, key=lambda o: (-hits[o], o))[:max_candidates]:
            similarity = jaccard(items, sets[other])
            if similarity >= threshold:
                match = (other, index, similarity)
                break
        if match:
            pairs.append(match)
        else:
            # Only texts that start a group go into the index, so 10k copies of one template cost
            # one comparison each instead of a quadratic scan of a crowded bucket.
            for key in keys:
                buckets[key].append(index)
    return pairs


def group_near_duplicates(n: int, pairs: list[tuple[int, int, float]]) -> list[int]:
    """Union-find over the pairs: a group id (the smallest member) for each of n items."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(n)]
