"""Mining speed on a synthetic usage log: wall time, peak memory, rows/s and the patterns found.

    .venv/bin/python bench/mine_patterns.py                  # 100,000 rows
    .venv/bin/python bench/mine_patterns.py --rows 20000 --embedder tfidf

The log has three long system prompts (one with a date and a customer name that change: near-duplicates),
a few-shot block, eight request topics with slot values, 2 % noise, upstream-answered rows, shadow rows, failed
and redacted rows, and feedback (-1 with corrections, some contradictory), over seven days;
poems rise on the last day (drift). Runs in a private temporary INGRAIN_HOME.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DAY = 86_400.0
PROMPTS = [
    "You are a bicycle shop triage assistant for {name}. Read the customer's message, decide whether the bike "
    "needs a repair, a part order or an adjustment, and answer in three lines: the category, the likely cause "
    "and what to bring. Today is {date}. Never promise a price.",
    "You are a wiki summary writer. Summarise the article the user pastes in exactly two sentences, neutral tone, "
    "no opinions, no lists, keep names and dates exactly as written, and never add facts that are not in the "
    "article itself.",
    "You are a support macro assistant for an online bookshop. Classify the customer's email as refund, "
    "delivery, account or other, then draft a reply in the shop's voice: warm, brief, signed 'The Pageturn "
    "team', with the order number repeated back when one is given.",
]
FEWSHOT = [{"role": "user", "content": "Sentiment of: 'I loved the film, the music was great.'"},
           {"role": "assistant", "content": "positive"},
           {"role": "user", "content": "Sentiment of: 'The service was slow and the food arrived cold again.'"},
           {"role": "assistant", "content": "negative"},
           {"role": "user", "content": "Sentiment of: 'It was fine, nothing special about it at all really.'"},
           {"role": "assistant", "content": "neutral"}]
R = random.Random(0)
TOPICS = {
    "translate": lambda: f"translate this sentence to {R.choice(['French', 'German', 'Spanish'])}: "
                         f"{R.choice(['the cat', 'my neighbour', 'the train', 'our manager'])} "
                         f"{R.choice(['is late', 'sleeps', 'loves pizza', 'went to the market'])}",
    "sql": lambda: f"write a SQL query returning all {R.choice(['orders', 'users', 'invoices'])} from "
                   f"{R.choice(['last week', '2023', 'the EU'])} sorted by {R.choice(['date', 'price', 'name'])}",
    "email": lambda: f"draft a polite email to {R.choice(['my landlord', 'a customer', 'HR'])} about "
                     f"{R.choice(['the broken heater', 'a late payment', 'holiday plans'])}",
    "recipe": lambda: f"give me a recipe for {R.choice(['lasagna', 'vegan curry', 'banana bread'])} for "
                      f"{R.randint(2, 8)} people",
    "regex": lambda: f"regex to match {R.choice(['email addresses', 'UK postcodes', 'ISO dates', 'hex colours'])} "
                     f"in {R.choice(['Python', 'JavaScript', 'grep'])}",
    "poem": lambda: f"write a short poem about {R.choice(['autumn', 'the sea', 'coffee', 'a lost key'])} in "
                    f"{R.choice(['four', 'six', 'eight'])} lines",
    "explain": lambda: f"explain {R.choice(['recursion', 'TCP handshakes', 'inflation', 'photosynthesis'])} "
                       f"to a {R.choice(['child', 'student', 'manager'])}",
    "bike": lambda: f"{R.choice(['my chain slips', 'the brake squeaks', 'a flat tyre', 'gears skip'])} "
                    f"{R.choice(['since Monday', 'on hills', 'in the rain', 'again'])}",
}
WORDS = ["alpha", "quantum", "piano", "galaxy", "tomato", "engine", "violet", "canyon", "marble", "lantern",
         "copper", "breeze"]


def synthetic_rows(n: int, now: float) -> tuple[list[dict], list[dict]]:
    """(usage rows, feedback rows) for a week of traffic ending at `now`."""
    rows, feedback = [], []
    for i in range(n):
        ts = now - 7 * DAY + 7 * DAY * i / n
        roll = R.random()
        system, prefix, source, model = None, [], "local", "prod-v3"
        if roll < 0.25:  # the triage prompt, its date and customer name changing: near-duplicates
            day = time.strftime("%Y-%m-%d", time.gmtime(ts))
            system = PROMPTS[0].format(name=R.choice(["Velo Rapido", "Cycle Hub", "Spokes & Co"]), date=day)
            user = TOPICS["bike"]()
        elif roll < 0.33:
            system, user = PROMPTS[1], f"Article {i}: the river flooded the old town and the mayor spoke."
        elif roll < 0.38:
            system, user = PROMPTS[2], f"Order {R.randint(1000, 9999)} has not arrived, can I get a refund?"
        elif roll < 0.42:
            prefix, user = FEWSHOT, f"Sentiment of: '{R.choice(['great', 'awful', 'meh'])} experience {i}'"
        elif roll < 0.98:
            topic = R.choice(list(TOPICS))
            if ts > now - DAY and R.random() < 0.3:
                topic = "poem"  # the last day's traffic shifts towards poems: a drift pattern
            user = TOPICS[topic]()
            if topic in ("sql", "regex") and R.random() < 0.8:
                source, model = "upstream", "gpt-big"
        else:
            user = " ".join(R.choice(WORDS) for _ in range(R.randint(3, 8))) + f" {i}"
        status = "ok" if R.random() > 0.01 else "error"
        messages = [*prefix, {"role": "user", "content": user}]
        row = {"id": f"chatcmpl-{i}", "ts": ts, "model": model, "status": status, "system_prompt": system,
               "system_hash": hashlib.sha256(system.encode()).hexdigest() if system else None,
               "messages": messages, "response": "ok.", "source": source, "prompt_tokens": 40,
               "completion_tokens": 12, "latency_s": 0.2}
        if R.random() < 0.005:
            row.update(messages=None, system_prompt=None, response=None)  # logged with --log-content none
        rows.append(row)
        if R.random() < 0.003:
            rows.append({**row, "id": f"shadow-{i}", "source": "shadow", "model": "gpt-big"})
        if R.random() < 0.01:
            feedback.append({"response_id": row["id"], "rating": -1,
                             "correction": "A better answer." if R.random() < 0.5 else None})
            if R.random() < 0.1:
                feedback.append({"response_id": row["id"], "rating": 1, "correction": None})
    return rows, feedback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--embedder", default="auto", choices=["auto", "wordllama", "tfidf"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["INGRAIN_HOME"] = home
        from memory import Store
        from memory.feedback import add_feedback
        from memory.usage import log_requests
        from tools.patterns import MiningConfig, mine_patterns

        now = time.time()
        clock = time.perf_counter()
        rows, feedback = synthetic_rows(args.rows, now)
        store = Store.open()
        log_requests(store, rows)
        for f in feedback:
            add_feedback(store, f["response_id"], rating=f["rating"], correction=f["correction"])
        print(f"log     | {len(rows)} usage rows, {len(feedback)} feedback rows written in "
              f"{time.perf_counter() - clock:.1f}s")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        clock = time.perf_counter()
        result = mine_patterns(store, now=now, config=MiningConfig(embedder=args.embedder))
        wall = time.perf_counter() - clock
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        store.close()
    print(f"mine    | {wall:.1f}s wall | {result.rows_read / wall:,.0f} rows/s | peak RSS {rss:,.0f} MB "
          f"(process, {rss_before:,.0f} MB before mining, log held in memory) | embedder {result.embedder}")
    print("steps   | " + " | ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    print(f"rows    | read {result.rows_read} | used {result.rows_used} | skipped {result.skipped}")
    print(f"found   | {result.counts} | actionable {result.actionable} | {result.message}")
    for note in result.notes:
        print(f"note    | {note}")
    for p in result.patterns:
        print(f"pattern | {p['id']:<24} {p['kind']:<17} {p['count']:>6} {p['score']:>8g}/{p['threshold']:<4g} "
              f"{'*' if p['goal'] else ' '} {p['label'][:60]}")


if __name__ == "__main__":
    main()
