"""Bounded load test of the endpoint on loopback: no 5xx, one usage row per request, latency percentiles.

    .venv/bin/python bench/serve_load.py                       # tiny random model, 500 requests, 50 at once
    .venv/bin/python bench/serve_load.py --model smollm2 -n 40 -c 8 --max-tokens 32   # the real default

Runs in a private temporary INGRAIN_HOME and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


async def _fire(base: str, n: int, concurrency: int, max_tokens: int, stream_every: int) -> list[tuple]:
    import httpx

    gate = asyncio.Semaphore(concurrency)
    results: list[tuple] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as client:

        async def one(i: int) -> None:
            body = {"model": "ingrain", "max_tokens": max_tokens, "temperature": 0.7, "seed": i,
                    "messages": [{"role": "system", "content": "Answer in one line."},
                                 {"role": "user", "content": f"question {i}: what does the paper say?"}]}
            async with gate:
                started = time.perf_counter()
                if stream_every and i % stream_every == 0:
                    async with client.stream("POST", "/v1/chat/completions",
                                             json={**body, "stream": True}) as response:
                        async for _ in response.aiter_lines():
                            pass
                        status = response.status_code
                else:
                    status = (await client.post("/v1/chat/completions", json=body)).status_code
                results.append((status, time.perf_counter() - started))

        await asyncio.gather(*(one(i) for i in range(n)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny (random 2-layer test model) or smollm2")
    parser.add_argument("-n", "--requests", type=int, default=500)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--queue-size", type=int, default=64, help="server queue; beyond it requests get 429")
    parser.add_argument("--stream-every", type=int, default=5, help="every k-th request streams (0: none)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="ingrain-bench-"))
    os.environ["INGRAIN_HOME"] = str(home)
    os.environ.setdefault("INGRAIN_MODEL_CACHE", str(REPO / ".cache" / "models"))
    from memory import usage
    from memory.store import Store
    from memory.workspace import Workspace
    from tools.models import build_tiny_model, convert_smollm2
    from tools.serve.config import ServeConfig
    from tools.serve.server import bound_port, running_server

    ws = Workspace.from_env().ensure()
    cache = ws.models_dir
    folder = build_tiny_model(cache / "tiny-llama") if args.model == "tiny" else convert_smollm2(
        cache / "smollm2-135m")
    store = Store.open(ws)
    store.register_model(f"bench-{args.model}", base=str(folder), kind="full", path=str(folder))
    store.promote(f"bench-{args.model}")

    config = ServeConfig(port=0, queue_size=args.queue_size, log_content="full")
    wall = time.perf_counter()
    with running_server(config, ws) as server:
        base = f"http://127.0.0.1:{bound_port(server)}"
        results = asyncio.run(_fire(base, args.requests, args.concurrency, args.max_tokens, args.stream_every))
    wall = time.perf_counter() - wall

    rows = usage.usage_rows(store, limit=None)
    served = sorted(seconds for status, seconds in results if status == 200)
    codes: dict[int, int] = {}
    for status, _ in results:
        codes[status] = codes.get(status, 0) + 1
    five_xx = sum(n for code, n in codes.items() if code >= 500)
    tokens = sum(r["completion_tokens"] or 0 for r in rows)

    def pct(q: float) -> float:
        return served[min(len(served) - 1, round(q * (len(served) - 1)))] if served else float("nan")

    print(f"model {args.model} | {args.requests} requests, {args.concurrency} concurrent, "
          f"max_tokens {args.max_tokens}, queue {args.queue_size}")
    print(f"status codes {dict(sorted(codes.items()))} | 5xx {five_xx} ({'PASS' if not five_xx else 'FAIL'})")
    print(f"usage rows {len(rows)} == requests {args.requests}: {'PASS' if len(rows) == args.requests else 'FAIL'}")
    print(f"latency of 200s: p50 {pct(0.5):.2f}s p95 {pct(0.95):.2f}s max {pct(1.0):.2f}s "
          f"mean {statistics.fmean(served) if served else float('nan'):.2f}s")
    print(f"wall {wall:.1f}s (incl. model load) | {tokens} completion tokens | {tokens / wall:.0f} tok/s overall")
    store.close()
    return 0 if not five_xx and len(rows) == args.requests else 1


if __name__ == "__main__":
    raise SystemExit(main())
