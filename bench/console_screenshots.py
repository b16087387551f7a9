"""Screenshot every page of the web console at a desktop width (1440 px), over a workspace filled on the spot.

Run: scripts/screenshots.sh [OUT_DIR]   (default .cache/console-screenshots/, not committed)

It builds a fresh workspace: one run finished on the tiny random model (auto policy, so it sweeps, trains,
evaluates and deploys), one paused at the winner gate, one at the plan gate, a few hundred synthetic endpoint
requests with feedback, the patterns mined from them, and a nightly; then serves `ingrain console` on
127.0.0.1, logs in with a fresh key in Debian's headless chromium and saves one PNG per page.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = [
    ("01-runs", "/console/"),
    ("02-run-finished", "/console/runs/{finished}"),
    ("03-run-paused", "/console/runs/{winner}"),
    ("04-gate-winner", "/console/runs/{winner}/gate"),
    ("05-gate-plan", "/console/runs/{plan}/gate"),
    ("06-models", "/console/models"),
    ("07-promote-confirm", "/console/models/{candidate}/promote"),
    ("08-usage", "/console/usage"),
    ("09-lessons", "/console/lessons"),
    ("10-new-goal", "/console/new"),
    ("11-not-found", "/console/runs/9999"),
]
TOPICS = ["cats", "rivers", "engines", "apples", "clouds", "trains", "maps", "songs", "bread", "stars"]


def fill_workspace(home: Path) -> dict[str, object]:
    """Runs, a model, usage, patterns, a nightly and lessons, made the way ingrain makes them."""
    from agent import runner
    from evals.report import write_nightly_report
    from memory import Store
    from memory.feedback import add_feedback
    from memory.usage import log_requests
    from tools.models import build_tiny_model
    from tools.patterns import mine_patterns

    tiny = build_tiny_model(Path(os.environ["INGRAIN_MODEL_CACHE"]) / "tiny-llama")
    data = home / "notes.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Summarize note {i} about {TOPICS[i % 10]}."},
        {"role": "assistant", "content": "- noted\n- that is all"}]}) + "\n" for i in range(80)))
    goal = "Write notes in the house style, lr 1e-2, 2 trials"
    common = {"data_paths": [str(data)], "base": str(tiny), "budget_minutes": 20}
    finished = runner.start(goal, policy="auto", **common)
    winner = runner.start("Summarize notes as two bullets, 2 trials", policy="interactive", **common)
    winner = runner.approve(winner.run_id)
    plan = runner.start("Answer in the help-desk style of notes.jsonl, 3 trials", policy="interactive", **common)

    rng = random.Random(0)
    now = time.time()
    wiki = "You summarize papers for the team wiki: three bullets, then one line on why it matters."
    rows = []
    for i in range(360):
        system = wiki if i % 3 else None
        prompt = (f"Summarize the paper on {rng.choice(TOPICS)} number {i}" if system
                  else f"What is a good name for a {rng.choice(TOPICS)} shop?")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        rows.append({"id": f"chatcmpl-{i}", "ts": now - rng.uniform(0, 2.5 * 86400), "model": finished.model,
                     "status": "ok" if i % 29 else "queue_full", "system_prompt": system, "messages": messages,
                     "response": "- it works\n- it is small\n- it is cheap\nWhy: <b>fast</b> on a CPU.",
                     "prompt_tokens": rng.randint(40, 400), "completion_tokens": rng.randint(20, 120),
                     "latency_s": rng.uniform(0.4, 2.5), "source": "local"})
    with Store.open() as store:
        log_requests(store, rows)
        for i in range(0, 60, 4):
            add_feedback(store, f"chatcmpl-{i}", rating=1 if i % 8 else -1)
        mine_patterns(store)
        nightly = store.create_run("nightly: mine the usage log, retrain on new patterns, promote only a better "
                                   "model", "nightly", kind="nightly")
        report = {"nightly_id": nightly, "message": "Nothing to do: no new pattern over its threshold.",
                  "production_before": finished.model, "production_after": finished.model, "wall_seconds": 4.2,
                  "patterns": [], "mining": {"rows_read": len(rows)}}
        write_nightly_report(home / "runs" / str(nightly) / "report.html", report)
        store.release_run(nightly, "finished", model=finished.model, verdict="kept", wall_seconds=4.2)
        candidate = home / "candidate-copy"
        candidate.mkdir(exist_ok=True)
        store.register_model("tiny-candidate", base=str(tiny), kind="full", path=str(candidate),
                             metrics={"primary_metric": "style_conformance", "tuned_metric": 0.41})
    return {"finished": finished.run_id, "winner": winner.run_id, "plan": plan.run_id,
            "candidate": "tiny-candidate"}


def screenshot_pages(base: str, key: str, ids: dict[str, object], out: Path) -> list[Path]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1440,900",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='ingrain-chromium-')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    saved = []
    try:
        driver.get(f"{base}/console/login")
        out.mkdir(parents=True, exist_ok=True)
        _shoot(driver, out / "00-login.png", saved)
        driver.find_element(By.NAME, "key").send_keys(key)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        time.sleep(1)
        for name, path in PAGES:
            driver.get(base + path.format(**ids))
            time.sleep(1.5)  # let the live fragments settle
            if name == "02-run-finished":  # show the trace tree's first branches opened
                for summary in driver.find_elements(By.CSS_SELECTOR, "ul.trace > li > details > summary")[:3]:
                    summary.click()
            _shoot(driver, out / f"{name}.png", saved)
    finally:
        driver.quit()
    return saved


def _shoot(driver: object, path: Path, saved: list[Path]) -> None:
    height = driver.execute_script("return Math.min(document.documentElement.scrollHeight, 6000)")
    driver.set_window_size(1440, max(900, height))
    driver.save_screenshot(str(path))
    driver.set_window_size(1440, 900)
    saved.append(path)
    print(f"saved {path}", flush=True)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / ".cache" / "console-screenshots").resolve()
    home = Path(tempfile.mkdtemp(prefix="ingrain-screens-"))
    os.environ["INGRAIN_HOME"] = str(home)
    os.environ.setdefault("INGRAIN_MODEL_CACHE", str(REPO / ".cache" / "models"))
    import uvicorn

    from agent.console.app import standalone
    from memory import Store
    from memory.keys import create_key

    ids = fill_workspace(home)
    with Store.open() as store:
        key = create_key(store, "screenshots")
    server = uvicorn.Server(uvicorn.Config(standalone(loopback=True), host="127.0.0.1", port=0,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    saved = screenshot_pages(f"http://127.0.0.1:{port}", key, ids, out)
    server.should_exit = True
    print(f"{len(saved)} screenshots in {out} (workspace {home})")


if __name__ == "__main__":
    main()
