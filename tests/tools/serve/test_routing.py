"""`ingrain serve --upstream URL --route auto`: routed system prompts answered locally, shadow checks, fallback."""

from __future__ import annotations

import logging
import time

from memory import routes, usage
from memory.store import Store
from memory.usage import system_hash
from tests.support.fake_upstream import TRIAGE_SYSTEM_PROMPT, FakeUpstream, triage_teacher
from tests.tools.serve.test_app import client, serving
from tools.serve.routing import answers_agree
from tools.text import token_f1

TEACHER = "teacher-large"
PATTERN = "system:triage"
QUESTION = "My road bike has a flat tyre and I need it today, can you help?"
ROUTED = [{"role": "system", "content": TRIAGE_SYSTEM_PROMPT}, {"role": "user", "content": QUESTION}]


def _set_triage_route(store: Store, agreement: float = 0.95) -> None:
    routes.set_route(store, PATTERN, match={"system_hash": system_hash(TRIAGE_SYSTEM_PROMPT), "strip_system": True},
                     local_model="tiny-v1", agreement=agreement, threshold=0.8, upstream_model=TEACHER)


def _wait_for_samples(store: Store, samples: int, timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while (found := routes.route(store, PATTERN))["samples"] < samples:
        assert time.monotonic() < deadline, f"only {found['samples']} of {samples} shadow samples recorded"
        time.sleep(0.05)
    return found


def test_agreement_needs_the_same_first_line_and_most_words() -> None:
    answer = triage_teacher([{"role": "user", "content": QUESTION}])
    assert answers_agree(answer, answer)
    assert answers_agree(answer.replace("Category: repair", "category:  Repair."), answer)
    other_category = answer.replace("Category: repair", "Category: sales")
    assert token_f1(other_category, answer) > 0.9 and not answers_agree(other_category, answer)
    first_line_only = answer.splitlines()[0] + "\nSomething else entirely, nothing alike."
    assert not answers_agree(first_line_only, answer)
    assert token_f1("", "") == 1.0 and token_f1("a b", "") == 0.0


def test_a_local_route_answers_locally_until_shadow_samples_disagree(store, workspace, caplog) -> None:
    caplog.set_level(logging.INFO, logger="ingrain.serve")
    _set_triage_route(store)
    with FakeUpstream() as fake, serving(workspace, upstream=fake.url, route="auto", shadow_rate=1.0,
                                         log_content="full") as base:
        api = client(base)
        settings = {"max_tokens": 6, "temperature": 0}
        # What the local model says to the question without the system prompt (the route strips it).
        local = api.chat.completions.create(model="ingrain", messages=ROUTED[1:], **settings)
        fake.answer = lambda messages: local.choices[0].message.content  # an upstream that agrees
        routed = api.chat.completions.create(model=TEACHER, messages=ROUTED, **settings)
        assert routed.model == TEACHER  # clients keep the name they asked for
        assert routed.choices[0].message.content == local.choices[0].message.content
        assert routed.usage.prompt_tokens == local.usage.prompt_tokens  # the system prompt was stripped
        chunks = list(api.chat.completions.create(model=TEACHER, messages=ROUTED, stream=True, **settings))
        assert {c.model for c in chunks} == {TEACHER}
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == local.choices[0].message.content
        assert _wait_for_samples(store, 2)["agreement"] == 1.0
        shadowed = fake.chat_requests()
        assert len(shadowed) == 2 and shadowed[0]["body"]["messages"] == ROUTED  # upstream sees it unchanged
        assert "stream" not in shadowed[1]["body"]
        fake.answer = triage_teacher  # now the upstream disagrees with every local answer
        sent = 2
        while routes.route(store, PATTERN)["state"] == "local":
            assert sent < 12, "the route never went back upstream"
            api.chat.completions.create(model=TEACHER, messages=ROUTED, **settings)
            sent += 1
            _wait_for_samples(store, sent)
        flipped = routes.route(store, PATTERN)
        assert (flipped["samples"], flipped["agreement"]) == (10, 0.2)  # 2 of 10 agreed, below 0.8
        assert f"route {PATTERN}: local -> upstream" in caplog.text
        after = api.chat.completions.create(model=TEACHER, messages=ROUTED, **settings)
        assert after.choices[0].message.content == triage_teacher(ROUTED)
    rows = usage.usage_rows(store, limit=None)
    by_source = {s: [r for r in rows if r["source"] == s] for s in ("local", "upstream", "shadow")}
    assert len(by_source["local"]) == 1 + sent and len(by_source["shadow"]) == sent
    assert [r["id"] for r in by_source["upstream"]] == [after.id]
    routed_rows = [r for r in by_source["local"] if r["route"] == PATTERN]
    assert len(routed_rows) == sent and all(r["model"] == "tiny-v1" for r in routed_rows)
    assert routed_rows[-1]["system_prompt"] == TRIAGE_SYSTEM_PROMPT  # logged as the client sent it
    assert all(r["route"] == PATTERN and r["model"] == TEACHER for r in by_source["shadow"])


def test_routes_are_read_while_serving_and_only_every_nth_request_is_shadowed(store, workspace) -> None:
    with FakeUpstream() as fake, serving(workspace, upstream=fake.url, route="auto", shadow_rate=0.5) as base:
        api = client(base)
        before = api.chat.completions.create(model=TEACHER, messages=ROUTED, max_tokens=4)
        assert before.choices[0].message.content == triage_teacher(ROUTED)  # no route yet: upstream
        _set_triage_route(store)
        time.sleep(1.1)  # the route table is re-read at most once a second
        for _ in range(4):
            api.chat.completions.create(model=TEACHER, messages=ROUTED, max_tokens=4, temperature=0)
        _wait_for_samples(store, 2)
        other_prompt = [{"role": "system", "content": "You are a poet."}, ROUTED[1]]
        api.chat.completions.create(model=TEACHER, messages=other_prompt, max_tokens=4)
        time.sleep(0.3)
        assert routes.route(store, PATTERN)["samples"] == 2  # the 1st and 3rd routed requests
        assert len(fake.chat_requests()) == 1 + 2 + 1
    rows = usage.usage_rows(store, limit=None)
    assert sorted(r["source"] for r in rows) == ["local"] * 4 + ["shadow"] * 2 + ["upstream"] * 2
