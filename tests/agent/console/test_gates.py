"""Answering gates from the console: the same runner calls as the CLI, exactly once per pause."""

from __future__ import annotations

import threading

import httpx
from typer.testing import CliRunner

from agent.cli import app as cli_app
from memory import Store
from tests.agent.console.conftest import csrf_of, pause_of, run_row, wait_for


def answers(run_id: int) -> list[dict]:
    with Store.open() as store:
        return [e["data"] for e in store.events(run_id, kinds=["answer"])]


def test_the_gate_page_shows_the_plan_and_approve_moves_the_run_on(client, pause_run) -> None:
    run_id = pause_run()
    page = client.get(f"/console/runs/{run_id}/gate")
    assert page.status_code == 200
    assert "Approve this plan?" in page.text and "Sweep grid" in page.text  # the report's plan part
    sent = client.post(f"/console/runs/{run_id}/gate", data={"csrf": csrf_of(page.text), "action": "approve",
                                                             "pause": pause_of(page.text)}, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == f"/console/runs/{run_id}"
    run = wait_for(lambda: (r := run_row(run_id))["status"] == "paused" and r["gate"] == "winner" and r,
                   what="the run to reach the winner gate")
    assert run["owner_pid"] is None
    assert [(a["action"], a["by"]) for a in answers(run_id)] == [("approve", "console:local")]
    winner = client.get(f"/console/runs/{run_id}/gate")
    assert 'type="radio" name="choice"' in winner.text and "Approve with this choice" in winner.text


def test_a_gate_answered_from_the_cli_is_not_answered_again(client, pause_run) -> None:
    run_id = pause_run()
    page = client.get(f"/console/runs/{run_id}/gate")  # a browser opened the gate page ...
    # ... and then the command line answered the gate.
    stopped = CliRunner().invoke(cli_app, ["reject", str(run_id), "--reason", "not now", "--stop"])
    assert stopped.exit_code == 0, stopped.output
    late = client.post(f"/console/runs/{run_id}/gate", data={"csrf": csrf_of(page.text), "action": "approve",
                                                             "pause": pause_of(page.text)})
    assert late.status_code == 409 and "already answered" in late.text and "Nothing was changed" in late.text
    assert [a["action"] for a in answers(run_id)] == ["reject"]
    again = client.get(f"/console/runs/{run_id}/gate")
    assert "Nothing to answer" in again.text and "answered" in again.text and "reject" in again.text
    status = client.get(f"/console/runs/{run_id}/gate/status", params={"pause": pause_of(page.text)})
    assert "answered elsewhere" in status.text


def test_a_stale_form_does_not_answer_the_next_pause_at_the_same_gate(client, pause_run) -> None:
    run_id = pause_run()
    page = client.get(f"/console/runs/{run_id}/gate")
    replanned = CliRunner().invoke(cli_app, ["reject", str(run_id), "--reason", "use 3 trials"])
    assert replanned.exit_code == 3 and run_row(run_id)["gate"] == "plan"  # paused at the plan gate again
    stale = client.post(f"/console/runs/{run_id}/gate", data={"csrf": csrf_of(page.text), "action": "approve",
                                                              "pause": pause_of(page.text)})
    assert stale.status_code == 409 and run_row(run_id)["status"] == "paused"


def test_two_browsers_pressing_approve_at_once_one_wins_and_the_other_is_told(live_console, pause_run) -> None:
    run_id = pause_run()
    browsers = [httpx.Client(base_url=live_console) for _ in range(2)]
    forms = []
    for browser in browsers:
        html = browser.get(f"/console/runs/{run_id}/gate").text
        forms.append({"csrf": csrf_of(html), "action": "approve", "pause": pause_of(html)})
    together, codes = threading.Barrier(2), {}

    def press(i: int) -> None:
        together.wait()
        reply = browsers[i].post(f"/console/runs/{run_id}/gate", data=forms[i], follow_redirects=False)
        codes[i] = (reply.status_code, reply.text)

    threads = [threading.Thread(target=press, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(code for code, _ in codes.values()) == [303, 409]
    loser = next(text for code, text in codes.values() if code == 409)
    assert "already" in loser and "Already answered" in loser
    wait_for(lambda: run_row(run_id)["gate"] == "winner", what="the winner gate")
    assert [a["action"] for a in answers(run_id)] == ["approve"]  # resumed once


def test_reject_needs_a_reason_and_keeps_what_was_typed(client, pause_run) -> None:
    run_id = pause_run()
    page = client.get(f"/console/runs/{run_id}/gate")
    empty = client.post(f"/console/runs/{run_id}/gate", data={"csrf": csrf_of(page.text), "action": "reject",
                                                              "reason": "  ", "pause": pause_of(page.text)})
    assert empty.status_code == 400 and "Say why" in empty.text
    assert run_row(run_id)["status"] == "paused" and answers(run_id) == []
    sent = client.post(f"/console/runs/{run_id}/gate", data={"csrf": csrf_of(page.text), "action": "reject",
                                                             "reason": "use 3 trials", "pause": pause_of(page.text)},
                       follow_redirects=False)
    assert sent.status_code == 303
    wait_for(lambda: len(answers(run_id)) == 1 and run_row(run_id)["status"] == "paused", what="the re-plan")
    assert answers(run_id)[0]["reason"] == "use 3 trials" and run_row(run_id)["gate"] == "plan"


def test_a_choice_that_is_not_a_trial_is_refused_before_anything_runs(client, pause_run) -> None:
    run_id = pause_run()
    page = client.get(f"/console/runs/{run_id}/gate")
    client.post(f"/console/runs/{run_id}/gate", data={"csrf": csrf_of(page.text), "action": "approve",
                                                      "pause": pause_of(page.text)})
    wait_for(lambda: run_row(run_id)["gate"] == "winner", what="the winner gate")
    page = client.get(f"/console/runs/{run_id}/gate")
    bad = client.post(f"/console/runs/{run_id}/gate", data={"csrf": csrf_of(page.text), "action": "approve",
                                                            "choice": "Z", "pause": pause_of(page.text)})
    assert bad.status_code == 400 and "not a trial" in bad.text and run_row(run_id)["gate"] == "winner"
