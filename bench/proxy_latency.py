"""What `ingrain serve --upstream` adds to an upstream's latency: the same requests, direct and through the proxy.

    .venv/bin/python bench/proxy_latency.py              # 300 non-stream requests each way, interleaved
    .venv/bin/python bench/proxy_latency.py -n 1000 --stream

One process on loopback: a FakeUpstream (tests/support/fake_upstream.py, the triage teacher) and the real
endpoint (tiny model loaded, never asked) with --upstream pointing at it, both served by uvicorn in threads.
Requests go one at a time over keep-alive connections, alternating direct and proxied so both see the same
machine noise. The proxy's cost includes its key check, the model-name check, the relay and the usage row.
Runs in a private temporary INGRAIN_HOME and stops by itself; target: under 5 ms added at p50.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MAX_REQUESTS = 5000
TARGET_ADDED_MS = 5.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _one(client: httpx.Client, base: str, body: dict, stream: bool) -> float:
    started = time.perf_counter()
    if stream:
        with client.stream("POST", f"{base}/chat/completions", json={**body, "stream": True}) as response:
            for _ in response.iter_lines():
                pass
            assert response.status_code == 200, response.status_code
    else:
        response = client.post(f"{base}/chat/completions", json=body)
        assert response.status_code == 200, response.text
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--requests", type=int, default=300, help=f"per side, at most {MAX_REQUESTS}")
    parser.add_argument("--warmup", type=int, default=20, help="requests per side not measured")
    parser.add_argument("--stream", action="store_true", help="stream the answers (time to the last event)")
    args = parser.parse_args()
    n = max(1, min(args.requests, MAX_REQUESTS))

    home = Path(tempfile.mkdtemp(prefix="ingrain-bench-"))
    os.environ["INGRAIN_HOME"] = str(home)
    os.environ.setdefault("INGRAIN_MODEL_CACHE", str(REPO / ".cache" / "models"))
    from memory import usage
    from memory.store import Store
    from memory.workspace import Workspace
    from tests.support.fake_upstream import TRIAGE_SYSTEM_PROMPT, FakeUpstream, triage_messages
    from tools.models import build_tiny_model
    from tools.serve.config import ServeConfig
    from tools.serve.server import bound_port, running_server

    ws = Workspace.from_env().ensure()
    folder = build_tiny_model(Path(os.environ["INGRAIN_MODEL_CACHE"]) / "tiny-llama")
    store = Store.open(ws)
    store.register_model("bench-tiny", base=str(folder), kind="full", path=str(folder))
    store.promote("bench-tiny")

    messages = [text for text, _ in triage_messages(n + args.warmup, seed=1)]
    direct_ms, proxied_ms = [], []
    with FakeUpstream() as fake, \
            running_server(ServeConfig(port=0, upstream=fake.url, log_content="full"), ws) as server, \
            httpx.Client(timeout=60) as client:
        proxy = f"http://127.0.0.1:{bound_port(server)}/v1"
        for i, text in enumerate(messages):
            body = {"model": "teacher-large", "messages": [{"role": "system", "content": TRIAGE_SYSTEM_PROMPT},
                                                            {"role": "user", "content": text}]}
            # Alternate which side goes first so neither always runs on a just-warmed path.
            order = ((fake.url, direct_ms), (proxy, proxied_ms))
            for base, sink in order if i % 2 else order[::-1]:
                ms = _one(client, base, body, args.stream)
                if i >= args.warmup:
                    sink.append(ms)
    rows = usage.usage_rows(store, limit=None)
    store.close()

    kind = "stream" if args.stream else "non-stream"
    print(f"{n} {kind} requests per side, one at a time, {args.warmup} warm-up each, loopback, one process")
    print(f"{'':10} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for name, values in (("direct", direct_ms), ("proxied", proxied_ms)):
        print(f"{name:10} {_pct(values, 0.5):8.2f} {_pct(values, 0.95):8.2f} {statistics.fmean(values):8.2f}")
    added_p50 = _pct(proxied_ms, 0.5) - _pct(direct_ms, 0.5)
    added_p95 = _pct(proxied_ms, 0.95) - _pct(direct_ms, 0.95)
    verdict = "PASS" if added_p50 < TARGET_ADDED_MS else "FAIL"
    print(f"{'added':10} {added_p50:8.2f} {added_p95:8.2f} {'':>8}  (target p50 < {TARGET_ADDED_MS:g} ms: {verdict})")
    logged = sum(r["source"] == "upstream" and r["status"] == "ok" for r in rows)
    print(f"usage rows: {logged} upstream rows for {n + args.warmup} proxied requests")
    return 0 if verdict == "PASS" and logged == n + args.warmup else 1


if __name__ == "__main__":
    raise SystemExit(main())
