"""Goal parsing: the rule-based table, validation, CLI overrides, and the LLM path against a local server."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.goal import GoalError, TaskSpec, check_spec, parse_goal, validate_spec
from agent.llm import DEFAULT_AGENT_MODEL, PLACEHOLDER_KEY, AgentLLMConfig, chat_model
from agent.task_spec import slugify
from tools.errors import ToolError

QWEN = "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with the folders and files the goals below name; HOME holds ~/notes."""
    root = tmp_path / "project"
    for folder in ("wiki", "handbook", "notes/papers", "data", "my docs", "models/tiny"):
        (root / folder).mkdir(parents=True)
    (root / "wiki" / "index.md").write_text("# Wiki\n")
    (root / "models" / "tiny" / "config.json").write_text("{}")
    (root / "tickets.jsonl").write_text('{"messages": []}\n')
    (root / "data" / "train.csv").write_text("a,b\n")
    (root / "reviews.parquet").write_bytes(b"PAR1")
    (root / "faq.md").write_text("Q: a\n")
    (tmp_path / "shared.txt").write_text("hello\n")
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(root)
    return root


def _expected_sources(sources: list[tuple[str, str]], root: Path) -> list[tuple[str, str]]:
    out = []
    for kind, location in sources:
        if kind in ("folder", "file", "dataset"):
            home = Path(os.environ["HOME"])
            path = home / location[2:] if location.startswith("~/") else root / location
            location = os.path.normpath(path)
        out.append((kind, location))
    return out


# goal, objective, sources as (kind, location relative to the project), base, budget, policy
GOALS: list[tuple[str, str, list[tuple[str, str]], str, int | None, str | None]] = [
    ("Make a small model that writes paper summaries in the style of my wiki in ./wiki",
     "style", [("folder", "wiki")], "smollm2-135m", None, None),
    ("Put the contents of ./handbook into a model so it can answer questions about it",
     "knowledge", [("folder", "handbook")], "smollm2-135m", None, None),
    ("Every night, bake whatever my endpoint keeps being asked into the weights",
     "task", [], "smollm2-135m", None, "nightly"),
    ("answer questions about the python docs in 10 minutes",
     "knowledge", [("builtin", "pydoc_data")], "smollm2-135m", 10, None),
    (f"Classify support tickets from tickets.jsonl using {QWEN} under 2 hours, automatically",
     "task", [("dataset", "tickets.jsonl")], QWEN, 120, "auto"),
    ("Crawl the web for articles about rust async programming in 20 minutes",
     "task", [("crawl_topic", "rust async programming")], "smollm2-135m", 20, None),
    ("I want a model that knows about the French revolution",
     "knowledge", [("crawl_topic", "French revolution")], "smollm2-135m", None, None),
    ("write like my notes in notes/papers, budget 30 min, base smollm2",
     "style", [("folder", "notes/papers")], "smollm2-135m", 30, None),
    ("fine-tune ./models/tiny on faq.md for 90m",
     "knowledge", [("file", "faq.md")], "models/tiny", 90, None),
    ("Extract invoice fields from data/train.csv",
     "task", [("dataset", "data/train.csv")], "smollm2-135m", None, None),
    ("Translate my English notes in ~/notes into French within 45 minutes",
     "task", [("folder", "~/notes")], "smollm2-135m", 45, None),
    ('Answer questions from "my docs" like a helpful librarian',
     "knowledge", [("folder", "my docs")], "smollm2-135m", None, None),
    ("Learn from https://docs.python.org/3/tutorial/ and answer questions about it.",
     "knowledge", [("url", "https://docs.python.org/3/tutorial/")], "smollm2-135m", None, None),
    ("Summarize support chats in our house style from ./wiki, every night",
     "style", [("folder", "wiki")], "smollm2-135m", None, "nightly"),
    ("Convert questions into SQL queries using {root}/tickets.jsonl",
     "task", [("dataset", "tickets.jsonl")], "smollm2-135m", None, None),
    ("Write like the handbook does, in the same tone, without asking",
     "style", [("folder", "handbook")], "smollm2-135m", None, "auto"),
    ("the way my wiki does it: terse summaries, in 5 minutes",
     "style", [("folder", "wiki")], "smollm2-135m", 5, None),
    ("Make a model that knows pydoc, base model HuggingFaceTB/SmolLM2-135M-Instruct",
     "knowledge", [("builtin", "pydoc_data")], "smollm2-135m", None, None),
    ("Tag customer reviews in reviews.parquet by sentiment; ask me before deploying",
     "task", [("dataset", "reviews.parquet")], "smollm2-135m", None, "interactive"),
    ("Build a model that answers questions about handbook",
     "knowledge", [("folder", "handbook")], "smollm2-135m", None, None),
    ("Scrape https://example.com/blog and write posts in that voice for an hour",
     "style", [("url", "https://example.com/blog")], "smollm2-135m", 60, None),
    ("Teach it the standard library docs, budget: 15 minutes, nightly",
     "knowledge", [("builtin", "pydoc_data")], "smollm2-135m", 15, "nightly"),
    ("Format meeting notes as bullet lists, data in notes, under 90 minutes",
     "style", [("folder", "notes")], "smollm2-135m", 90, None),
    ("Use my local model ./models/tiny to classify tickets.jsonl in 3 minutes",
     "task", [("dataset", "tickets.jsonl")], "models/tiny", 3, None),
    ("Answer questions about ./missing-folder",
     "knowledge", [("folder", "missing-folder")], "smollm2-135m", None, None),
    ("Extract names from faq.md and https://example.org/people.html in two hours",
     "task", [("file", "faq.md"), ("url", "https://example.org/people.html")], "smollm2-135m", 120, None),
    ("Make a model that sounds like our wiki, hands-off",
     "style", [("folder", "wiki")], "smollm2-135m", None, "auto"),
    ("Classify emails as spam or not",
     "task", [], "smollm2-135m", None, None),
    ("Put the contents of wiki into a model in 1.5 hours",
     "knowledge", [("folder", "wiki")], "smollm2-135m", 90, None),
    ("Translate ../shared.txt into German, half an hour max",
     "task", [("file", "../shared.txt")], "smollm2-135m", 30, None),
    ("Learn how our team writes release notes from 'notes/papers' in 25 min",
     "style", [("folder", "notes/papers")], "smollm2-135m", 25, None),
    ("Retrain nightly on tickets.jsonl so it labels new tickets",
     "task", [("dataset", "tickets.jsonl")], "smollm2-135m", None, "nightly"),
    ("Crawl pages about kubernetes networking and answer questions automatically",
     "knowledge", [("crawl_topic", "kubernetes networking")], "smollm2-135m", None, "auto"),
    ("Convert input/output pairs from https://example.com/pairs.json into a model",
     "task", [("url", "https://example.com/pairs.json")], "smollm2-135m", None, None),
    ("Train a 135m model on tickets.jsonl so it can tag them",
     "task", [("dataset", "tickets.jsonl")], "smollm2-135m", None, None),
    ("Use SmolLM2-360M-Instruct as the base and answer questions about ./handbook",
     "knowledge", [("folder", "handbook")], "SmolLM2-360M-Instruct", None, None),
    ("Summarize pages from wiki/ and handbook/ in 2h",
     "task", [("folder", "wiki"), ("folder", "handbook")], "smollm2-135m", 120, None),
    ("Make it answer like a pirate, trained on faq.md, in 1 hour 30 minutes",
     "style", [("file", "faq.md")], "smollm2-135m", 90, None),
]


@pytest.mark.parametrize(("goal", "objective", "sources", "base", "budget", "policy"), GOALS,
                         ids=[slugify(row[0], 50) for row in GOALS])
def test_rule_based_parser_reads_the_goal(project: Path, goal: str, objective: str,
                                          sources: list[tuple[str, str]], base: str, budget: int | None,
                                          policy: str | None) -> None:
    parsed = parse_goal(goal.format(root=project))
    spec = parsed.spec
    assert spec.parser == "deterministic"
    assert spec.objective == objective
    assert [(s.kind, s.location) for s in spec.sources] == _expected_sources(sources, project)
    assert spec.base_model == (str(project / base) if base.startswith("models/") else base)
    assert spec.budget_minutes == budget
    assert spec.policy == policy
    assert spec.task_name and spec.task_name == slugify(spec.task_name)
    assert [entry["path"] for entry in parsed.trace] == ["deterministic"]


def test_parse_without_llm_says_so_in_the_trace(project: Path) -> None:
    parsed = parse_goal("Put the contents of ./handbook into a model")
    assert parsed.trace == [{"path": "deterministic", "reason": parsed.trace[0]["reason"]}]
    assert "no LLM configured" in parsed.trace[0]["reason"]
    assert json.loads(json.dumps(parsed.dict()))["spec"]["sources"][0]["kind"] == "folder"


def test_a_goal_that_can_be_acted_on_has_no_problems(project: Path) -> None:
    spec = parse_goal("write paper summaries in the style of ./wiki in 10 minutes").spec
    assert validate_spec(spec, project) == []
    assert check_spec(spec, project) is spec


def test_missing_folder_is_reported_with_its_fix(project: Path) -> None:
    spec = parse_goal("Put the contents of ./handbook-old into a model").spec
    problems = validate_spec(spec, project)
    assert [p.code for p in problems] == ["missing_path"]
    assert problems[0].message == "./handbook-old does not exist — create it or pass --data PATH."


def test_empty_goal_is_a_problem_and_skips_the_llm(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{_free_port()}/v1")
    parsed = parse_goal("   ")
    assert [entry["path"] for entry in parsed.trace] == ["deterministic"]
    assert "empty" in parsed.trace[0]["reason"]
    problems = validate_spec(parsed.spec, project)
    assert [p.code for p in problems] == ["empty_goal"]
    assert "say what the model should do" in problems[0].message


def test_two_base_models_contradict_each_other(project: Path) -> None:
    spec = parse_goal(f"style of my wiki using smollm2-135m and {QWEN}").spec
    problems = validate_spec(spec, project)
    assert [p.code for p in problems] == ["contradiction"]
    assert "smollm2-135m" in problems[0].message and QWEN in problems[0].message
    assert "--base" in problems[0].message
    # Naming the base on the command line settles it.
    settled = parse_goal(f"style of my wiki using smollm2-135m and {QWEN}", base="smollm2").spec
    assert settled.base_model == "smollm2-135m" and validate_spec(settled, project) == []


def test_same_model_under_two_names_is_no_contradiction(project: Path) -> None:
    spec = parse_goal("answer questions about ./handbook with smollm2 (HuggingFaceTB/SmolLM2-135M-Instruct)").spec
    assert spec.base_model == "smollm2-135m" and spec.conflicts == []


def test_budget_under_a_minute_is_too_small(project: Path) -> None:
    spec = parse_goal("in 30 seconds, translate ./handbook").spec
    assert spec.budget_minutes == 0
    problems = validate_spec(spec, project)
    assert [p.code for p in problems] == ["budget_too_small"]
    assert "at least 1 minute" in problems[0].message
    from_flag = parse_goal("translate ./handbook", budget_minutes=0.5).spec
    assert [p.code for p in validate_spec(from_flag, project)] == ["budget_too_small"]


def test_every_n_hours_is_a_schedule_not_a_budget(project: Path) -> None:
    spec = parse_goal("every 24 hours retrain on tickets.jsonl, budget 20 minutes").spec
    assert spec.budget_minutes == 20 and spec.conflicts == []


def test_two_budgets_contradict_each_other(project: Path) -> None:
    spec = parse_goal("classify tickets.jsonl in 10 minutes, under 2 hours").spec
    assert [c.field for c in spec.conflicts] == ["budget_minutes"]
    assert "--budget-minutes" in validate_spec(spec, project)[0].message


def test_no_data_source_asks_where_the_data_is(project: Path) -> None:
    problems = validate_spec(parse_goal("Classify emails as spam or not").spec, project)
    assert [p.message for p in problems] == [
        "No data source: say where the data is: a folder, a file, --data PATH, or a URL."]


def test_check_spec_raises_every_problem_at_once(project: Path) -> None:
    spec = parse_goal(f"use ./gone with smollm2 and {QWEN} in 20 seconds").spec
    with pytest.raises(GoalError) as caught:
        check_spec(spec, project)
    message = str(caught.value)
    assert "./gone does not exist" in message and "contradicts itself" in message and "too small" in message
    assert isinstance(caught.value, ToolError)


def test_command_line_flags_override_the_text(project: Path) -> None:
    parsed = parse_goal(f"Learn ./missing and https://example.com/faq with {QWEN} in 10 minutes, ask me",
                        data_paths=["tickets.jsonl", "wiki"], base="./models/tiny", budget_minutes=5,
                        policy="nightly")
    spec = parsed.spec
    assert [(s.kind, s.location) for s in spec.sources] == [
        ("dataset", str(project / "tickets.jsonl")), ("folder", str(project / "wiki")),
        ("url", "https://example.com/faq")]
    assert spec.base_model == str(project / "models" / "tiny")
    assert (spec.budget_minutes, spec.policy) == (5, "nightly")
    assert parsed.trace[-1]["path"] == "cli"
    assert validate_spec(spec, project) == []


def test_a_saved_datasets_folder_is_a_dataset_not_a_folder_of_documents(project: Path) -> None:
    from datasets import Dataset

    Dataset.from_list([{"prompt": "Refund?", "completion": "billing"}]).save_to_disk(str(project / "saved"))
    spec = parse_goal("Classify support tickets", data_paths=["saved", "wiki"]).spec
    assert [(s.kind, s.location) for s in spec.sources] == [
        ("dataset", str(project / "saved")), ("folder", str(project / "wiki"))]
    named = parse_goal("Classify support tickets from ./saved").spec
    assert [(s.kind, s.location) for s in named.sources] == [("dataset", str(project / "saved"))]


def test_suffixes_name_sources_in_any_case(project: Path) -> None:
    spec = parse_goal("Label rows.TSV and summarise paper.PDF and notes.Org").spec
    assert [(s.kind, Path(s.location).name) for s in spec.sources] == [
        ("dataset", "rows.TSV"), ("file", "paper.PDF"), ("file", "notes.Org")]


def test_unknown_policy_flag_is_refused(project: Path) -> None:
    with pytest.raises(GoalError, match="interactive, auto, nightly"):
        parse_goal("classify tickets.jsonl", policy="sometimes")


def test_spec_schema_suits_strict_structured_output() -> None:
    schema = TaskSpec.model_json_schema()
    assert "parser" not in schema["properties"]
    assert all("default" not in prop for prop in schema["properties"].values())
    # Nested models carry their description on their definition.
    assert all(prop.get("description") or schema["$defs"][prop["$ref"].split("/")[-1]]["description"]
               for prop in schema["properties"].values())
    spec = TaskSpec.model_validate({"objective": "style", "task_name": "Paper Summaries!", "base_model": ""})
    assert (spec.task_name, spec.base_model, spec.parser) == ("paper-summaries", "smollm2-135m", "deterministic")


# --- the agent's LLM client ---------------------------------------------------------------------------


def test_llm_unconfigured_means_no_client() -> None:
    config = AgentLLMConfig.from_env({"INGRAIN_AGENT_MODEL": "llama3"})
    assert not config.configured
    assert chat_model(config) is None
    assert chat_model() is None


def test_llm_config_defaults_the_model_and_key_for_a_local_endpoint() -> None:
    config = AgentLLMConfig.from_env({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "INGRAIN_AGENT_TIMEOUT": "7"})
    assert (config.model, config.timeout_seconds, config.max_retries) == (DEFAULT_AGENT_MODEL, 7.0, 1)
    model = chat_model(config)
    assert model is not None
    assert (model.model_name, model.openai_api_base, model.request_timeout, model.max_retries) == (
        DEFAULT_AGENT_MODEL, "http://127.0.0.1:9/v1", 7.0, 1)
    assert model.openai_api_key.get_secret_value() == PLACEHOLDER_KEY
    assert "sk-" not in config.describe()


@pytest.mark.parametrize(("env", "fragment"), [
    ({"OPENAI_BASE_URL": "localhost:8000"}, "is not a URL"),
    ({"OPENAI_API_KEY": "k", "INGRAIN_AGENT_TIMEOUT": "soon"}, "not a number"),
    ({"OPENAI_API_KEY": "k", "INGRAIN_AGENT_TIMEOUT": "0"}, "must be positive"),
])
def test_llm_config_rejects_bad_settings_with_a_fix(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ToolError, match=fragment):
        AgentLLMConfig.from_env(env)


# --- the LLM path, against a real OpenAI-compatible server on 127.0.0.1 --------------------------------


LLM_SPEC = {
    "objective": "style",
    "base_model": "smollm2-135m",
    "sources": [{"kind": "folder", "location": "./wiki"}, {"kind": "file", "location": "tickets.jsonl"}],
    "success": {"min_improvement": 0.1, "max_regression": 0.02, "metric": "rouge_l", "notes": "short"},
    "budget_minutes": 15,
    "policy": None,
    "task_name": "Paper Summaries",
    "description": "Summarize papers the way the wiki does.",
    "conflicts": [],
}


class FakeOpenAI(ThreadingHTTPServer):
    """Answers /v1/chat/completions the way the test's `mode` says; keeps every request body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "valid"
        self.requests: list[dict[str, Any]] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hung up on the slow answer, as the timeout test intends

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "body": body})
        mode = self.server.mode
        if mode == "error":
            return self._send(500, {"error": {"message": "model crashed", "type": "server_error"}})
        if mode == "slow":
            time.sleep(2)
        content = {"valid": json.dumps(LLM_SPEC), "slow": json.dumps(LLM_SPEC),
                   "malformed": '{"objective": "style", "sources": [',
                   "invalid": json.dumps({**LLM_SPEC, "objective": "poetry"})}[mode]
        self._send(200, {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        })

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def llm_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("INGRAIN_AGENT_MODEL", "goal-parser")
    monkeypatch.setenv("INGRAIN_AGENT_TIMEOUT", "5")
    yield server
    server.shutdown()
    server.server_close()


GOAL = "Make a small model that writes paper summaries in the style of my wiki in ./wiki"


def test_llm_structured_output_becomes_the_spec(project: Path, llm_server: FakeOpenAI) -> None:
    parsed = parse_goal(GOAL)
    spec = parsed.spec
    assert spec.parser == "llm"
    assert [entry["path"] for entry in parsed.trace] == ["llm"]
    assert "goal-parser" in parsed.trace[0]["reason"] and "error" not in parsed.trace[0]
    # What only the LLM said: its budget, criteria and name; paths are anchored at the working directory
    # and a .jsonl the LLM called a file is a dataset.
    assert (spec.budget_minutes, spec.success.metric, spec.success.min_improvement) == (15, "rouge_l", 0.1)
    assert spec.task_name == "paper-summaries"
    assert [(s.kind, s.location) for s in spec.sources] == [
        ("folder", str(project / "wiki")), ("dataset", str(project / "tickets.jsonl"))]
    request = llm_server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["model"] == "goal-parser"
    assert request["body"]["response_format"]["type"] == "json_schema"
    assert request["body"]["response_format"]["json_schema"]["name"] == "TaskSpec"
    prompt = request["body"]["messages"][-1]["content"]
    assert GOAL in prompt and "wiki/" in prompt


def test_llm_spec_still_yields_to_command_line_flags(project: Path, llm_server: FakeOpenAI) -> None:
    parsed = parse_goal(GOAL, budget_minutes=3, policy="auto")
    assert parsed.spec.parser == "llm"
    assert (parsed.spec.budget_minutes, parsed.spec.policy) == (3, "auto")
    assert [entry["path"] for entry in parsed.trace] == ["llm", "cli"]


@pytest.mark.parametrize("mode", ["malformed", "invalid", "error"])
def test_bad_llm_answers_fall_back_to_rules(project: Path, llm_server: FakeOpenAI, mode: str) -> None:
    llm_server.mode = mode
    parsed = parse_goal(GOAL)
    _assert_fell_back(parsed.spec, parsed.trace, project)
    assert llm_server.requests, "the LLM was not asked"
    if mode == "error":
        assert "500" in parsed.trace[0]["error"]
        assert len(llm_server.requests) == 2  # max_retries=1: one retry, then give up


def test_llm_timeout_falls_back_to_rules(project: Path, llm_server: FakeOpenAI,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    llm_server.mode = "slow"
    monkeypatch.setenv("INGRAIN_AGENT_TIMEOUT", "0.3")
    parsed = parse_goal(GOAL)
    _assert_fell_back(parsed.spec, parsed.trace, project)
    assert "Timeout" in parsed.trace[0]["error"]


def test_unreachable_llm_falls_back_to_rules(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{_free_port()}/v1")
    monkeypatch.setenv("INGRAIN_AGENT_TIMEOUT", "5")
    parsed = parse_goal(GOAL)
    _assert_fell_back(parsed.spec, parsed.trace, project)
    assert "Connection" in parsed.trace[0]["error"]


def test_invalid_llm_settings_fall_back_to_rules(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:8000")
    parsed = parse_goal(GOAL)
    assert parsed.spec.parser == "deterministic"
    assert "is not a URL" in parsed.trace[0]["error"]


def _assert_fell_back(spec: TaskSpec, trace: list[dict[str, Any]], project: Path) -> None:
    assert spec.parser == "deterministic"
    assert [entry["path"] for entry in trace] == ["llm", "deterministic"]
    assert trace[0]["error"] and "failed" in trace[0]["reason"]
    assert "fell back" in trace[1]["reason"]
    # The fallback still read the goal.
    assert (spec.objective, [(s.kind, s.location) for s in spec.sources]) == (
        "style", [("folder", str(project / "wiki"))])


def _free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
