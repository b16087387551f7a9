"""Who may use the console: open on loopback with no key, the endpoint's keys otherwise; CSRF on every form."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agent.cli import app as cli_app
from agent.console.app import standalone
from agent.console.auth import COOKIE
from memory import Store
from tests.agent.console.conftest import csrf_of


def production() -> str | None:
    with Store.open() as store:
        row = store.production_model()
    return row["name"] if row else None


def login(client: TestClient, key: str, next_path: str = "/console/") -> httpx.Response:
    page = client.get("/console/login")
    return client.post("/console/login", data={"key": key, "next": next_path, "csrf": csrf_of(page.text)},
                       follow_redirects=False)


def test_loopback_without_any_key_is_open_to_this_machine_and_says_so(client) -> None:
    page = client.get("/console/")
    assert page.status_code == 200 and "No API key exists" in page.text


def test_once_a_key_exists_pages_want_a_login_and_the_key_gives_an_httponly_session(client, api_key) -> None:
    first = client.get("/console/models", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/console/login?next=%2Fconsole%2Fmodels")
    wrong = login(client, "ingr-not-a-key")
    assert wrong.status_code == 401 and "not valid" in wrong.text
    ok = login(client, api_key, "/console/models")
    assert ok.status_code == 303 and ok.headers["location"] == "/console/models"
    cookie = ok.headers["set-cookie"]
    assert COOKIE in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/console/models")
    assert page.status_code == 200 and "tester" in page.text and api_key not in page.text  # no secret in pages
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_a_login_never_sends_people_to_another_site(client, api_key) -> None:
    assert login(client, api_key, "https://evil.example/").headers["location"] == "/console/"
    assert login(client, api_key, "//evil.example/x").headers["location"] == "/console/"


def test_a_bearer_key_works_for_scripts_and_a_bad_one_is_a_401(client, api_key, two_versions) -> None:
    fresh = TestClient(client.app, base_url="http://127.0.0.1")
    assert fresh.get("/console/models", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
    assert fresh.get("/console/models", headers={"Authorization": "Bearer nope"}).status_code == 401
    # No cookie rides along with a header key, so no cross-site request can borrow it: no CSRF token needed.
    done = fresh.post("/console/models/v1/promote", headers={"Authorization": f"Bearer {api_key}"},
                      follow_redirects=False)
    assert done.status_code == 303 and production() == "v1"


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(client, two_versions) -> None:
    refused = client.post("/console/models/v1/promote", data={}, follow_redirects=False)
    assert refused.status_code == 403 and "security token" in refused.text
    forged = client.post("/console/models/v1/promote", data={"csrf": "0" * 64}, follow_redirects=False)
    assert forged.status_code == 403
    assert production() is None
    token = csrf_of(client.get("/console/models/v1/promote").text)
    assert client.post("/console/models/v1/promote", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert production() == "v1"


def test_a_token_from_another_session_is_refused(client, two_versions) -> None:
    other = TestClient(client.app, base_url="http://127.0.0.1")
    token = csrf_of(other.get("/console/models/v1/promote").text)
    assert client.post("/console/models/v1/promote", data={"csrf": token}).status_code == 403
    assert production() is None


def test_an_expired_session_asks_for_a_login_and_gives_the_form_back(api_key) -> None:
    with TestClient(standalone(loopback=True, session_seconds=1), base_url="http://127.0.0.1") as client:
        assert login(client, api_key).status_code == 303
        token = csrf_of(client.get("/console/new").text)
        time.sleep(1.2)
        sent = client.post("/console/new", data={"csrf": token, "goal": "summaries of ./wiki"},
                           follow_redirects=False)
        assert sent.status_code == 303
        query = parse_qs(urlsplit(sent.headers["location"]).query)
        assert query["expired"] == ["1"] and query["next"] == ["/console/new?goal=summaries+of+.%2Fwiki"]
        page = client.get(sent.headers["location"])
        assert "Your session expired" in page.text
        back = client.post("/console/login", data={"key": api_key, "csrf": csrf_of(page.text),
                                                   "next": "/console/new?goal=summaries+of+./wiki"})
        assert back.status_code == 200 and "summaries of ./wiki</textarea>" in back.text
    with Store.open() as store:
        assert store.runs() == []  # nothing was started behind the login


def test_beyond_loopback_a_key_is_required(tmp_path) -> None:
    closed = TestClient(standalone(loopback=False), base_url="http://10.0.0.5")
    assert closed.get("/console/", follow_redirects=False).status_code == 303
    refused = CliRunner().invoke(cli_app, ["console", "--host", "0.0.0.0", "--port", "0"])
    assert refused.exit_code == 1 and "no API key exists" in str(refused.exception)


@pytest.mark.parametrize("path", ["/console/runs/999", "/console/runs/abc", "/console/models/v9/promote",
                                  "/console/no-such-page"])
def test_what_does_not_exist_is_a_404_page_with_a_way_back(client, path) -> None:
    page = client.get(path)
    assert page.status_code == 404 and 'href="/console/"' in page.text and "All runs" in page.text
