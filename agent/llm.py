"""The LLM the agent itself may use (any OpenAI-compatible endpoint), configured from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tools.errors import ToolError

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

DEFAULT_AGENT_MODEL = "gpt-4o-mini"
# Local servers (vLLM, Ollama, llama.cpp) ignore the key, but the OpenAI client refuses to start without one.
PLACEHOLDER_KEY = "not-needed"


@dataclass
class AgentLLMConfig:
    """Where the agent's own LLM lives; unconfigured (no base URL and no key) means the offline paths run."""

    base_url: str | None = field(default=None, metadata={
        "help": "OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1 (env OPENAI_BASE_URL); "
                "None with an api_key means api.openai.com."})
    api_key: str | None = field(default=None, metadata={"help": "API key (env OPENAI_API_KEY)."})
    model: str | None = field(default=None, metadata={
        "help": f"Model name (env INGRAIN_AGENT_MODEL); {DEFAULT_AGENT_MODEL} when an endpoint or key is set."})
    timeout_seconds: float = field(default=30.0, metadata={
        "help": "Per-request timeout (env INGRAIN_AGENT_TIMEOUT); the agent falls back to offline paths after."})
    max_retries: int = field(default=1, metadata={
        "help": "Retries on connection errors and 5xx; kept low so a dead endpoint costs seconds, not minutes."})
    temperature: float | None = field(default=0.0, metadata={
        "help": "Sampling temperature; 0 so the same goal parses the same way. None leaves the server default."})

    def __post_init__(self) -> None:
        self.base_url = (self.base_url or "").strip() or None
        self.api_key = (self.api_key or "").strip() or None
        self.model = (self.model or "").strip() or None
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ToolError(f"OPENAI_BASE_URL={self.base_url!r} is not a URL: set it to the endpoint's base, "
                            "e.g. http://127.0.0.1:8000/v1, or unset it to run without an LLM.")
        if self.timeout_seconds <= 0:
            raise ToolError(f"The agent LLM timeout must be positive, got {self.timeout_seconds}: "
                            "set INGRAIN_AGENT_TIMEOUT to a number of seconds such as 30.")
        if self.max_retries < 0:
            raise ToolError(f"max_retries must be 0 or more, got {self.max_retries}.")
        if self.configured and self.model is None:
            self.model = DEFAULT_AGENT_MODEL

    @property
    def configured(self) -> bool:
        """True when an endpoint or a key is set: only then does the agent call an LLM."""
        return bool(self.base_url or self.api_key)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AgentLLMConfig:
        """Read OPENAI_BASE_URL, OPENAI_API_KEY, INGRAIN_AGENT_MODEL and INGRAIN_AGENT_TIMEOUT."""
        env = os.environ if env is None else env
        timeout = env.get("INGRAIN_AGENT_TIMEOUT", "").strip()
        try:
            timeout_seconds = float(timeout) if timeout else 30.0
        except ValueError:
            raise ToolError(f"INGRAIN_AGENT_TIMEOUT={timeout!r} is not a number of seconds: set it to e.g. 30."
                            ) from None
        return cls(base_url=env.get("OPENAI_BASE_URL"), api_key=env.get("OPENAI_API_KEY"),
                   model=env.get("INGRAIN_AGENT_MODEL"), timeout_seconds=timeout_seconds)

    def describe(self) -> str:
        """One line for the trace: which model at which endpoint (never the key)."""
        if not self.configured:
            return "no LLM configured (set OPENAI_BASE_URL or OPENAI_API_KEY to use one)"
        return f"{self.model} at {self.base_url or 'https://api.openai.com/v1'}"


def chat_model(config: AgentLLMConfig | None = None) -> ChatOpenAI | None:
    """A ChatOpenAI client for the configured endpoint, or None when no LLM is configured."""
    config = config or AgentLLMConfig.from_env()
    if not config.configured:
        return None
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=config.model,
        base_url=config.base_url,
        api_key=config.api_key or PLACEHOLDER_KEY,
        timeout=config.timeout_seconds,
        max_retries=config.max_retries,
        temperature=config.temperature,
    )
