"""The console in a real headless chromium: log in, answer gates and watch runs move, start a goal, promote and
roll back, and check that a <script> in a model output stays text. Runs pause at gates on the tiny model."""

from __future__ import annotations

import time

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from memory import Store
from memory.usage import log_requests
from tests.agent.console.conftest import GOAL, run_row, wait_for

pytestmark = pytest.mark.slow
SCRIPT = "<script>window.__pwned = 1</script>"


def text_of(browser, element_id: str) -> str:
    try:
        return browser.find_element(By.ID, element_id).text
    except StaleElementReferenceException:  # the live fragment was just replaced
        return ""


def until(browser, check, timeout: float = 90.0, what: str = "the page"):
    return WebDriverWait(browser, timeout, poll_frequency=0.3).until(lambda d: check(d), message=what)


def log_in(browser, base: str, key: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{base}/console/")
    assert "/console/login" in browser.current_url  # a key exists: the console asks for it
    browser.find_element(By.NAME, "key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    until(browser, lambda d: d.current_url.rstrip("/").endswith("/console"), 30, "the runs page after login")


def answers(run_id: int) -> list[dict]:
    with Store.open() as store:
        return [e["data"] for e in store.events(run_id, kinds=["answer"])]


def test_approve_and_watch_the_run_move_reject_another_and_start_a_goal(browser, live_console, api_key, pause_run,
                                                                         style_data, tiny_model_dir) -> None:
    first, second = pause_run(), pause_run()
    log_in(browser, live_console, api_key)
    assert browser.find_element(By.ID, f"run-{first}") and browser.find_element(By.ID, f"run-{second}")
    assert "paused" in text_of(browser, f"run-{first}")

    # Approve: from the runs page to the run, to its gate, and back to the run page, which follows it live.
    browser.find_element(By.CSS_SELECTOR, f"#run-{first} a").click()
    assert "waiting" in browser.find_element(By.CSS_SELECTOR, "ol.graph li.waiting").get_attribute("class")
    browser.find_element(By.ID, "answer-gate").click()
    assert "Approve this plan?" in browser.find_element(By.CSS_SELECTOR, "h2.question").text
    browser.find_element(By.ID, "approve").click()
    until(browser, lambda d: d.current_url.endswith(f"/console/runs/{first}"), 30, "the run page")
    until(browser, lambda d: "at the winner gate" in text_of(d, "live"), 120, "the page to show the winner gate")
    run = run_row(first)
    assert (run["status"], run["gate"]) == ("paused", "winner")  # the store confirms what the page shows
    assert [(a["action"], a["by"]) for a in answers(first)] == [("approve", "console:tester")]
    assert "winner_gate" in browser.find_element(By.CSS_SELECTOR, "ol.graph li.waiting").text

    # Reject another with a reason: the planner plans again and the run waits at the plan gate once more.
    browser.get(f"{live_console}/console/runs/{second}/gate")
    browser.find_element(By.ID, "reason").send_keys("use 3 trials")
    browser.find_element(By.ID, "reject").click()
    wait_for(lambda: answers(second) and run_row(second)["status"] == "paused", 120, what="the re-plan")
    assert answers(second)[0]["reason"] == "use 3 trials" and run_row(second)["gate"] == "plan"

    # A new goal, parsed and planned as `ingrain run` does.
    browser.get(f"{live_console}/console/new")
    browser.find_element(By.ID, "goal").send_keys(GOAL)
    browser.find_element(By.ID, "data").send_keys(str(style_data))
    browser.find_element(By.ID, "base").send_keys(str(tiny_model_dir))
    Select(browser.find_element(By.ID, "policy")).select_by_value("interactive")
    browser.find_element(By.ID, "budget").send_keys("20")
    browser.find_element(By.ID, "start").click()
    until(browser, lambda d: "/console/runs/" in d.current_url, 60, "the new run's page")
    new_id = int(browser.current_url.rstrip("/").rsplit("/", 1)[1])
    until(browser, lambda d: "at the plan gate" in text_of(d, "live"), 120, "the new run to reach its plan gate")
    assert run_row(new_id)["goal"] == GOAL and run_row(new_id)["gate"] == "plan"

    # A POST without the form's CSRF token, from the logged-in page itself, is refused.
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/console/models/rollback', {method: 'POST', credentials: 'same-origin',"
        " headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'x=1'})"
        ".then(r => done(r.status), () => done(-1));")
    assert status == 403


def test_promote_and_roll_back_and_a_script_in_a_model_output_is_inert(browser, live_console, api_key,
                                                                     two_versions) -> None:
    with Store.open() as store:
        run_id = store.create_run("evaluate the tuned model", "interactive")
        store.record_event(run_id, "node_start", node="evaluate", name="evaluate")
        store.record_event(run_id, "tool_call", node="evaluate", name="generate", data={"result": SCRIPT})
        log_requests(store, [{"id": "r1", "ts": time.time(), "status": "ok", "model": "v1", "latency_s": 0.3,
                              "messages": [{"role": "user", "content": "hi"}], "response": SCRIPT}])
    log_in(browser, live_console, api_key)

    def production() -> str | None:
        with Store.open() as store:
            row = store.production_model()
        return row["name"] if row else None

    for name in ("v1", "v2"):
        browser.get(f"{live_console}/console/models")
        browser.find_element(By.ID, f"promote-{name}").click()
        assert f"Promote {name}?" in browser.find_element(By.TAG_NAME, "h1").text  # a confirmation first
        browser.find_element(By.ID, "confirm").click()
        until(browser, lambda d, n=name: text_of(d, "production") == n, 30, f"{name} in production")
        assert production() == name
    browser.find_element(By.ID, "rollback").click()
    browser.find_element(By.ID, "confirm").click()
    until(browser, lambda d: text_of(d, "production") == "v1", 30, "the rollback")
    assert production() == "v1" and "Rolled back" in text_of(browser, "note")

    for path in ("/console/usage", f"/console/runs/{run_id}"):
        browser.get(live_console + path)
        if path.startswith("/console/runs"):
            for summary in browser.find_elements(By.CSS_SELECTOR, "ul.trace summary"):  # the node, its tool call
                summary.click()
            until(browser, lambda d: SCRIPT in d.find_element(By.ID, "live").text, 10, "the trace detail")
        assert SCRIPT in browser.find_element(By.TAG_NAME, "main").text  # shown as text ...
        assert browser.execute_script("return window.__pwned === undefined")  # ... and never run
