"""Hold-out generation speed on the real SmolLM2: fp32 vs bf16 autocast, batch sizes (run on demand)."""

# .venv/bin/python bench/evals_generate.py [--n 50] [--max-new-tokens 128]
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from evals.generate import generate_token_ids, load_for_eval
from tools.models import convert_smollm2

TOPICS = ["photosynthesis", "the French revolution", "binary search", "compound interest", "volcanoes",
          "the water cycle", "TCP handshakes", "vaccines", "black holes", "supply and demand"]
ASKS = ["Explain {} in two sentences.", "Give three facts about {}.", "What is the main idea of {}?",
        "Summarise {} for a child.", "Why does {} matter?"]


def holdout_prompts(n: int) -> list[list[dict[str, str]]]:
    prompts = [[{"role": "user", "content": ask.format(topic)}] for ask in ASKS for topic in TOPICS]
    return prompts[:n]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--configs", default="fp32:8:2,bf16:8:2,fp32:16:2,fp32:8:1",
                        help="dtype:batch_size:threads, comma-separated")
    args = parser.parse_args()
    loaded = load_for_eval(convert_smollm2(Path(".cache/models/smollm2-135m")))
    prompts = holdout_prompts(args.n)
    for spec in args.configs.split(","):
        dtype, batch, threads = spec.split(":")
        torch.set_num_threads(int(threads))
        started = time.perf_counter()
        ids = generate_token_ids(loaded, prompts, max_new_tokens=args.max_new_tokens, batch_size=int(batch),
                                 autocast_bf16=dtype == "bf16")
        seconds = time.perf_counter() - started
        tokens = sum(len(r) for r in ids)
        print(json.dumps({"dtype": dtype, "batch_size": int(batch), "threads": int(threads), "prompts": len(prompts),
                          "new_tokens": tokens, "seconds": round(seconds, 1),
                          "tok_per_s": round(tokens / seconds, 1),
                          "cut_at_cap": sum(len(r) >= args.max_new_tokens for r in ids)}), flush=True)


if __name__ == "__main__":
    main()
