"""Sentence vectors for requests: WordLlama loaded from its own wheel (never downloaded), TF-IDF + SVD otherwise."""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tools.errors import ToolError

WORDLLAMA_DIM = 256
_BATCH = 512


def wordllama_cache() -> Path:
    """Where WordLlama's tokenizer link lives: the workspace's cache (INGRAIN_HOME)."""
    from memory import Workspace

    return Workspace.from_env().root / "cache" / "wordllama"


@functools.lru_cache(maxsize=2)
def load_wordllama(cache_dir: str) -> Any:
    """WordLlama's 256-dim model, offline.

    wordllama 0.4 looks for its tokenizer under `wordllama/tokenizer/` but the wheel ships it in
    `wordllama/tokenizers/`, so `load()` would go to Hugging Face. The shipped file is linked into
    `cache_dir/tokenizers/`, where `WordLlama.get_file_path("tokenizer", cache_dir)` looks next, and
    downloads are disabled: a missing file is an error here, never a download.
    """
    import wordllama
    from wordllama import WordLlama

    shipped = Path(wordllama.__file__).parent / "tokenizers" / "l2_supercat_tokenizer_config.json"
    target_dir = WordLlama.get_file_path("tokenizer", Path(cache_dir))
    target = target_dir / shipped.name
    if not target.exists() and shipped.exists():
        target_dir.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(shipped)
        except OSError:
            shutil.copyfile(shipped, target)
    logging.getLogger("wordllama").setLevel(logging.ERROR)
    return WordLlama.load(config="l2_supercat", dim=WORDLLAMA_DIM, cache_dir=Path(cache_dir), disable_download=True)


def embed_texts(texts: list[str], *, embedder: str, cache_dir: Path, seed: int = 0) -> tuple[np.ndarray, str, str]:
    """Unit vectors for `texts` (one row each), the embedder used, and a note when it fell back."""
    unique = list(dict.fromkeys(texts))
    index = {text: i for i, text in enumerate(unique)}
    rows = np.fromiter((index[t] for t in texts), dtype=np.int64, count=len(texts))
    note = ""
    vectors = None
    if embedder in ("auto", "wordllama"):
        try:
            model = load_wordllama(str(cache_dir))
            vectors = np.asarray(model.embed(unique, norm=True, batch_size=_BATCH), dtype=np.float32)
            name = "wordllama"
        except Exception as exc:  # a broken or missing wheel file: any failure means the fallback
            if embedder == "wordllama":
                raise ToolError(f"WordLlama could not load offline ({exc}); reinstall wordllama==0.4.0.post1 "
                                "or mine with the tfidf embedder.") from exc
            note = f"WordLlama could not load offline ({type(exc).__name__}: {exc}); clustered TF-IDF vectors."
    if vectors is None:
        vectors, name = tfidf_vectors(unique, seed=seed), "tfidf"
    return vectors[rows], name, note


def tfidf_vectors(texts: list[str], *, seed: int = 0, dims: int = 128) -> np.ndarray:
    """TF-IDF over word 1-2 grams, reduced by SVD to at most `dims` dimensions, unit length."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    if not texts:
        return np.zeros((0, 1), dtype=np.float32)
    try:
        matrix = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), stop_words="english",
                                 max_features=50_000).fit_transform(texts)
    except ValueError:  # nothing but stop words or punctuation
        return np.zeros((len(texts), 1), dtype=np.float32)
    components = min(dims, matrix.shape[1] - 1, matrix.shape[0] - 1)
    dense = (TruncatedSVD(components, random_state=seed).fit_transform(matrix) if components >= 2
             else matrix.toarray())
    return normalize(dense).astype(np.float32)
