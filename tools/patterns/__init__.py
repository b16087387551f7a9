"""Pattern mining over the endpoint's usage log: what recurs, how often, and the goal each would produce.

Five kinds (memory.patterns.PATTERN_KINDS): a long system prompt or few-shot block sent again and again
(exact hash + MinHash near-duplicates), clusters of similar requests (WordLlama vectors, HDBSCAN, c-TF-IDF
labels; TF-IDF vectors when WordLlama cannot load), requests rated down with their corrections, traffic the
upstream answered (distillation candidates), and drift of each cluster's share and centre over days.
`mine_patterns` stores them with memory.patterns.save_patterns, so a handled pattern stays handled.
"""

from tools.patterns.config import MiningConfig, MiningResult
from tools.patterns.mine import mine_patterns

__all__ = ["MiningConfig", "MiningResult", "mine_patterns"]
