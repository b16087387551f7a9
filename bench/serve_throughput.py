"""Decode throughput of the endpoint on SmolLM2 against llama.cpp itself, side by side in one run.

    .venv/bin/python bench/serve_throughput.py            # llama.cpp, endpoint (llama.cpp and torch backends)
    .venv/bin/python bench/serve_throughput.py --json --skip-torch

Every side gets the same prompt (a system prompt and a long user message: 464 tokens after the chat
template) and generates up to 200 tokens greedily, on the same GGUF file where llama.cpp is used.
- llama.cpp: llama-cpp-python's `Llama.create_completion` on the packaged GGUF, in this process.
- endpoint: `ingrain serve` in a subprocess on 127.0.0.1, called with the `openai` client; one client,
  then 8 clients at once (each its own request). Throughput = completion tokens / wall seconds,
  prompt reading included, as a client sees it.
Targets: endpoint one client >= 0.8x llama.cpp; endpoint 8 clients > endpoint one client.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROMPT_TOKENS = 464
MAX_TOKENS = 200
CLIENTS = 8
TOPICS = ["the garbage collector", "dictionaries", "the import system", "asyncio", "descriptors", "generators",
          "exceptions", "the data model", "string formatting", "decorators", "context managers", "typing"]


def build_messages(tokenizer, target: int) -> tuple[list[dict], list[int]]:
    """A chat whose templated prompt is exactly `target` tokens (filler sentences trimmed to fit)."""
    sentences = [f"Section {i}: the documentation explains how {TOPICS[i % len(TOPICS)]} works and why it matters."
                 for i in range(200)]

    def render(words: list[str]) -> tuple[list[dict], list[int]]:
        messages = [{"role": "system", "content": "You are a helpful assistant who writes long, detailed answers."},
                    {"role": "user", "content": " ".join(words) + "\nWrite a long, detailed essay about all of "
                     "these topics, one paragraph each."}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                            return_dict=True)["input_ids"]
        return messages, list(ids)

    words = " ".join(sentences).split()
    low, high = 1, len(words)
    while low < high:  # the most words whose prompt stays within target
        mid = (low + high + 1) // 2
        if len(render(words[:mid])[1]) <= target:
            low = mid
        else:
            high = mid - 1
    return render(words[:low])


def llamacpp_direct(gguf: Path, prompt_ids: list[int], threads: int, repeats: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads,
                verbose=False)
    llm.create_completion(prompt=prompt_ids[:32], max_tokens=8, temperature=0.0)  # warm-up
    runs = []
    for _ in range(repeats):
        llm.reset()
        started = time.perf_counter()
        out = llm.create_completion(prompt=prompt_ids, max_tokens=MAX_TOKENS, temperature=0.0)
        seconds = time.perf_counter() - started
        runs.append(out["usage"]["completion_tokens"] / seconds)
    return {"tokens_per_s": statistics.median(runs), "runs": [round(r, 1) for r in runs],
            "completion_tokens": out["usage"]["completion_tokens"], "threads": threads}


def start_server(backend: str, port: int, home: Path) -> tuple[subprocess.Popen, dict]:
    env = {**os.environ, "INGRAIN_HOME": str(home)}
    ingrain = Path(sys.executable).parent / "ingrain"
    process = subprocess.Popen([str(ingrain), "serve", "--port", str(port), "--backend", backend,
                                "--log-content", "none", "--queue-size", "64"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    from tools.errors import ToolError
    from tools.serve.server import wait_until_healthy

    try:
        return process, wait_until_healthy(f"http://127.0.0.1:{port}", timeout_s=300, process=process)
    except ToolError as exc:
        process.kill()
        raise SystemExit(f"ingrain serve --backend {backend}: {exc}") from None


def endpoint(backend: str, port: int, home: Path, messages: list[dict], repeats: int) -> dict:
    from openai import OpenAI

    process, health = start_server(backend, port, home)
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", timeout=900, max_retries=0)

    def ask(tokens: int = MAX_TOKENS) -> int:
        reply = client.chat.completions.create(model="ingrain", messages=messages, max_tokens=tokens,
                                               temperature=0)
        return reply.usage.completion_tokens

    try:
        ask(8)  # warm-up
        single = []
        for _ in range(repeats):
            started = time.perf_counter()
            tokens = ask()
            single.append(tokens / (time.perf_counter() - started))
        counts: list[int] = []
        threads = [threading.Thread(target=lambda: counts.append(ask())) for _ in range(CLIENTS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        concurrent_seconds = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(60)
    return {"backend": health.get("backend", backend), "model": health.get("model"),
            "one_client_tokens_per_s": statistics.median(single), "one_client_runs": [round(r, 1) for r in single],
            "completion_tokens": tokens, f"{CLIENTS}_clients_tokens_per_s": sum(counts) / concurrent_seconds,
            f"{CLIENTS}_clients_completion_tokens": sum(counts), f"{CLIENTS}_clients_seconds": concurrent_seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--skip-torch", action="store_true", help="leave out the endpoint's transformers backend")
    parser.add_argument("--repeats", type=int, default=2, help="one-client runs per side (median reported)")
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()

    os.environ.setdefault("INGRAIN_MODEL_CACHE", str(REPO / ".cache" / "models"))
    from tools.models import load_tokenizer, resolve_base, smollm2_gguf_path
    from tools.serve.slot import base_gguf
    from tools.train.threads import usable_cores

    base = resolve_base()
    messages, prompt_ids = build_messages(load_tokenizer(base.path), PROMPT_TOKENS)
    gguf = base_gguf(base.name, base.path)
    report: dict = {"model": base.name, "gguf": gguf.name, "prompt_tokens": len(prompt_ids),
                    "max_tokens": MAX_TOKENS, "clients": CLIENTS}
    report["llamacpp"] = llamacpp_direct(gguf, prompt_ids, usable_cores(), args.repeats)
    packaged = smollm2_gguf_path()
    report["llamacpp_packaged"] = {"gguf": packaged.name,
                                   **llamacpp_direct(packaged, prompt_ids, usable_cores(), args.repeats)}
    with tempfile.TemporaryDirectory(prefix="ingrain-bench-") as home:
        report["endpoint"] = endpoint("auto", args.port, Path(home), messages, args.repeats)
        if not args.skip_torch:
            report["endpoint_torch"] = endpoint("torch", args.port + 1, Path(home), messages, 1)
    ours, theirs = report["endpoint"], report["llamacpp"]["tokens_per_s"]
    report["one_client_ratio"] = ours["one_client_tokens_per_s"] / theirs
    report["concurrency_gain"] = ours[f"{CLIENTS}_clients_tokens_per_s"] / ours["one_client_tokens_per_s"]
    report["targets_met"] = report["one_client_ratio"] >= 0.8 and report["concurrency_gain"] > 1.0
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Decoding {report['model']}: {len(prompt_ids)}-token prompt, up to {MAX_TOKENS} new "
                        "tokens, greedy (completion tokens per wall second)")
    for column in ("side", "1 client", f"{CLIENTS} clients at once"):
        table.add_column(column)
    table.add_row(f"llama.cpp ({gguf.name}, in process)", f"{theirs:.1f}", "-")
    table.add_row(f"llama.cpp ({packaged.name}, in process)", f"{report['llamacpp_packaged']['tokens_per_s']:.1f}",
                  "-")
    for key in ("endpoint", "endpoint_torch"):
        if key in report:
            side = report[key]
            table.add_row(f"ingrain serve, {side['backend']} backend", f"{side['one_client_tokens_per_s']:.1f}",
                          f"{side[f'{CLIENTS}_clients_tokens_per_s']:.1f}")
    console = Console()
    console.print(table)
    console.print(f"endpoint / llama.cpp, one client: {report['one_client_ratio']:.2f}x (target >= 0.8); "
                  f"{CLIENTS} clients / one client: {report['concurrency_gain']:.2f}x (target > 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
