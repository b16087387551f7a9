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


class _WordHashes(dict):
    """word → crc32, computed once per distinct word (a corpus repeats its words many times)."""

    def __missing__(self, word: str) -> int:
        value = self[word] = zlib.crc32(word.encode("utf-8"))
        return value


def shingle_hashes(texts: list[str], k: int = 3) -> list[Any]:
    """Per text, the sorted unique 32-bit hashes of its lower-cased word k-grams (uint64 numpy arrays).

    A text shorter than k words is one shingle; a text without words has none.
    """
    import numpy as np

    words = _WordHashes()
    mix = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9][:k], dtype=np.uint64)
    result = []
    for text in texts:
        ids = np.fromiter(map(words.__getitem__, _WORD.findall(text.lower())), dtype=np.uint64)
        if len(ids) == 0:
            result.append(ids)
            continue
        if len(ids) < k:
            ids = np.concatenate([ids, np.zeros(k - len(ids), dtype=np.uint64)])
        grams = np.zeros(len(ids) - k + 1, dtype=np.uint64)
        for offset in range(k):  # wrapping multiply-xor mixes the k word hashes position-dependently
            grams ^= ids[offset:len(ids) - k + 1 + offset] * mix[offset]
        result.append(np.unique((grams ^ (grams >> np.uint64(32))) & np.uint64(0xFFFFFFFF)))
    return result


def jaccard(a: Any, b: Any) -> float:
    """Jaccard similarity of two sorted unique hash arrays."""
    import numpy as np

    if len(a) == 0 and len(b) == 0:
        return 1.0
    shared = len(np.intersect1d(a, b, assume_unique=True))
    return shared / (len(a) + len(b) - shared)


def minhash_signatures(sets: list[Any], num_perm: int = 128, seed: int = 1) -> Any:
    """A (len(sets), num_perm) uint64 array of MinHash signatures; empty sets get all-max rows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # Multiply-add-shift hashing of 32-bit keys: uint64 arithmetic wraps by design, the high half is the hash.
    a = rng.integers(1, 1 << 63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64)
    signatures = np.full((len(sets), num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    nonempty = [i for i, items in enumerate(sets) if len(items)]
    for chunk_start in range(0, len(nonempty), 256):  # bounds the (shingles x num_perm) block in memory
        owners = nonempty[chunk_start:chunk_start + 256]
        values = np.concatenate([sets[i] for i in owners])[:, None]
        starts = np.cumsum([0] + [len(sets[i]) for i in owners[:-1]])
        with np.errstate(over="ignore"):
            hashed = (values * a + b) >> np.uint64(32)
        signatures[owners] = np.minimum.reduceat(hashed, starts, axis=0)
    return signatures


def near_duplicates(texts: list[str], threshold: float = NEAR_DUPLICATE_JACCARD, *, bands: int = 16,
                    rows: int = 8, max_candidates: int = 200) -> list[tuple[int, int, float]]:
    """Pairs (earlier, later, jaccard) of texts whose word-3-gram Jaccard is >= threshold.

    Each later text is paired with one earlier text that starts a group (the verified candidate
    sharing the most LSH bands), which is enough to report it and to group near-duplicates. LSH with
    16 bands of 8 rows finds a pair of Jaccard 0.9 with probability > 0.999; every candidate is then
    checked on the exact shingle sets, so no pair below the threshold is reported.
    """
    import numpy as np

    sets = shingle_hashes(texts)
    signatures = minhash_signatures(sets, num_perm=bands * rows)
    # One 64-bit key per band, computed for all texts at once; a key collision only adds a candidate,
    # which the exact check then rejects.
    weights = np.random.default_rng(2).integers(1, 1 << 63, size=rows, dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):
        band_keys = (signatures.reshape(len(sets), bands, rows) * weights).sum(axis=2, dtype=np.uint64).tolist()
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    pairs: list[tuple[int, int, float]] = []
    for index, items in enumerate(sets):
        if len(items) == 0:
            continue
        keys = list(enumerate(band_keys[index]))
        hits: dict[int, int] = defaultdict(int)
        for key in keys:
            for other in buckets[key]:
                hits[other] += 1
        match = None
        # Most shared bands first: those are the likeliest matches when a bucket is crowded.
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
