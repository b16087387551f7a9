"""Clusters of similar requests: HDBSCAN on a sample, the rest joined to the nearest centre, c-TF-IDF labels."""

from __future__ import annotations

import math
import re

import numpy as np

_MIN_SAMPLE_CLUSTER = 5
_HDBSCAN_DIMS = 32
_LABEL_DOCS = 1000
_WORD = r"(?u)\b[^\W\d_][^\W\d_]+\b"


def cluster_vectors(vectors: np.ndarray, *, min_cluster_size: int, sample: int, merge: float = 0.5,
                    seed: int = 0) -> np.ndarray:
    """A cluster number per row (-1: in no cluster); every cluster has at least `min_cluster_size` rows.

    HDBSCAN sees at most `sample` rows, reduced by PCA to `_HDBSCAN_DIMS` dimensions (its trees are 10x
    faster there, with the same clusters), with its minimum size scaled to the sample. It splits one request
    template by its slot values ('recipe for lasagna', 'recipe for curry'), so clusters whose centres have a
    cosine similarity of `merge` or more are joined (single linkage). Each other row, and each sampled row
    HDBSCAN called an outlier (it is conservative: a third of a template's requests, measured), joins the
    nearest centre when no farther from it than that cluster's farthest member. Sizes are checked again on
    the full count.
    """
    from sklearn.decomposition import PCA

    n = len(vectors)
    labels = np.full(n, -1, dtype=np.int64)
    if n < min_cluster_size:
        return labels
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(n, sample, replace=False)) if n > sample else np.arange(n)
    size = min_cluster_size if len(picked) == n else max(_MIN_SAMPLE_CLUSTER,
                                                         math.ceil(min_cluster_size * len(picked) / n))
    points = vectors[picked]
    if points.shape[1] > _HDBSCAN_DIMS and len(points) > _HDBSCAN_DIMS:
        points = PCA(_HDBSCAN_DIMS, random_state=seed).fit_transform(points)
    found = _hdbscan(points, size, single=False)
    if found.max() < 0:  # one kind of request only: HDBSCAN needs leave to call everything one cluster
        found = _hdbscan(points, size, single=True)
    found = _merge_close(found, vectors[picked], merge)
    clusters = [c for c in np.unique(found) if c >= 0]
    if not clusters:
        return labels
    centres = np.stack([unit(vectors[picked[found == c]].mean(axis=0)) for c in clusters])
    radius = np.array([1.0 - (vectors[picked[found == c]] @ centres[i]).min() for i, c in enumerate(clusters)])
    for start in range(0, n, 8192):
        block = vectors[start:start + 8192] @ centres.T
        best = block.argmax(axis=1)
        near = (1.0 - block[np.arange(len(best)), best]) <= radius[best] + 1e-6
        labels[start:start + 8192] = np.where(near, best, -1)
    labels[picked] = np.where(found >= 0, np.searchsorted(clusters, found), labels[picked])
    return _drop_small(labels, min_cluster_size)


def _hdbscan(points: np.ndarray, size: int, *, single: bool) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    # allow_single_cluster only as a second try: on a small mixed log it prefers the root, one cluster of all
    return HDBSCAN(min_cluster_size=size, min_samples=min(size, 10), allow_single_cluster=single,
                   copy=True).fit_predict(points)


def _merge_close(found: np.ndarray, vectors: np.ndarray, merge: float) -> np.ndarray:
    """Clusters whose centres are at least `merge` alike (cosine) share the smallest of their numbers."""
    clusters = [c for c in np.unique(found) if c >= 0]
    if len(clusters) < 2:
        return found
    centres = np.stack([unit(vectors[found == c].mean(axis=0)) for c in clusters])
    parent = list(range(len(clusters)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    alike = np.argwhere(np.triu(centres @ centres.T, k=1) >= merge)
    for i, j in alike:
        parent[root(int(j))] = root(int(i))
    mapping = {c: clusters[root(i)] for i, c in enumerate(clusters)}
    return np.array([mapping.get(int(c), -1) for c in found], dtype=np.int64)


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Clusters under `min_size` rows become noise; the rest are renumbered by size, largest first."""
    numbers, counts = np.unique(labels[labels >= 0], return_counts=True)
    kept = [c for c, k in sorted(zip(numbers, counts, strict=True), key=lambda x: -x[1]) if k >= min_size]
    mapping = np.full(int(labels.max()) + 2 if len(labels) else 1, -1, dtype=np.int64)
    for new, old in enumerate(kept):
        mapping[old] = new
    return np.where(labels >= 0, mapping[np.maximum(labels, 0)], -1)


def unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def top_terms(groups: list[list[str]], background: list[str] | None = None, count: int = 3) -> list[list[str]]:
    """The `count` most telling words of each group (class-based TF-IDF, as BERTopic labels topics).

    Each group is one document; a word scores high when it is frequent in the group and rare across groups
    (`background`, e.g. the requests in no cluster, counts as one more group for the rarity).
    """
    from sklearn.feature_extraction.text import CountVectorizer

    docs = [" ".join(g[:_LABEL_DOCS]) for g in groups] + [" ".join((background or [])[:_LABEL_DOCS])]
    try:
        counts = CountVectorizer(stop_words="english", token_pattern=_WORD).fit(docs)
    except ValueError:  # no words at all
        return [[] for _ in groups]
    matrix = counts.transform(docs).toarray().astype(np.float64)
    words = counts.get_feature_names_out()
    per_class = matrix.sum(axis=1, keepdims=True)
    tf = matrix / np.maximum(per_class, 1)
    idf = np.log(1 + per_class.mean() / np.maximum(matrix.sum(axis=0), 1))
    scores = tf * idf
    return [[str(words[j]) for j in np.argsort(-scores[i])[:count] if scores[i, j] > 0]
            for i in range(len(groups))]


def terms_label(terms: list[str], texts: list[str]) -> str:
    """'translate / french / sentence', or the first words of a request when no term stood out."""
    if terms:
        return " / ".join(terms)
    words = re.findall(r"\S+", texts[0] if texts else "")
    return " ".join(words[:6]) or "(empty requests)"
