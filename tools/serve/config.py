"""ServeConfig: how the OpenAI-compatible endpoint binds, logs, queues and picks its model."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tools.errors import ToolError
from tools.serve.slot import RunnerOptions
from tools.serve.usage import LOG_CONTENT_MODES

ROUTE_MODES = ("off", "auto")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeConfig:
    """Everything `ingrain serve` can be told; validated on construction."""

    model: str | None = field(default=None, metadata={
        "help": "Version name, base name or folder to serve, pinned. None: follow the production version "
                "(hot-swapped on promote/rollback), or the default base model when nothing is deployed."})
    host: str = field(default="127.0.0.1", metadata={
        "help": "Address to bind. Anything but loopback requires an API key (`ingrain keys create`)."})
    port: int = field(default=8000, metadata={"help": "TCP port; 0 picks a free one."})
    log_content: str = field(default="redacted", metadata={
        "help": "What the usage log keeps of prompts and replies: none | redacted (emails, phones, long "
                "digit runs masked) | full."})
    queue_size: int = field(default=32, metadata={
        "help": "Requests allowed to wait for the model; more get 429 with Retry-After. Higher = more "
                "latency under load, fewer refusals."})
    default_max_tokens: int = field(default=512, metadata={
        "help": "Completion length when a request gives no max_tokens (always capped by the context)."})
    default_temperature: float = field(default=1.0, metadata={
        "help": "Temperature when a request gives none (OpenAI's default is 1.0; 0 = greedy)."})
    usage_buffer: int = field(default=10_000, metadata={
        "help": "Usage rows held in memory waiting for the background writer; beyond it rows are dropped "
                "(and counted) rather than slowing requests down."})
    torch_threads: int = field(default=1, metadata={
        "help": "CPU threads per generation step. Small models are per-token-overhead bound: measured on "
                "2 busy cores, 1 thread ran the tiny model 5-10x faster than 2."})
    backend: str = field(default="auto", metadata={
        "help": "auto = llama.cpp when llama-cpp-python is installed and the model has a GGUF copy (about 3x "
                "faster per token here, and it batches concurrent requests), else transformers | llamacpp | torch."})
    max_batch: int = field(default=8, metadata={
        "help": "Requests llama.cpp decodes together in one step (each holds a KV cache slice)."})
    swap_check_seconds: float = field(default=0.0, metadata={
        "help": "Minimum seconds between production-version checks; 0 checks before every request "
                "(one indexed SQLite read)."})
    upstream: str | None = field(default=None, metadata={
        "help": "Base URL of an OpenAI-compatible API (as an OpenAI client's base_url, e.g. "
                "https://api.openai.com/v1). Requests for a model not served here are relayed to it and "
                "logged like local ones. None: such requests get 404."})
    upstream_key_env: str | None = field(default=None, metadata={
        "help": "Name of the environment variable holding the upstream's API key (sent as a Bearer token; "
                "the client's own key is never forwarded). None: no key is sent."})
    route: str = field(default="off", metadata={
        "help": "off = every non-local model goes upstream | auto = requests whose system prompt matches a "
                "route in state local (set by the nightly after it promotes a distilled version) are "
                "answered by the local model, with a shadow sample still checked against the upstream."})
    shadow_rate: float = field(default=0.1, metadata={
        "help": "Share of routed requests also sent upstream to check agreement (every round(1/rate)-th); "
                "higher = faster fallback when the local model drifts, more upstream spend. 0 = never."})
    upstream_timeout_s: float = field(default=60.0, metadata={
        "help": "Seconds to wait for the upstream to connect or send the next bytes; then 502."})

    def __post_init__(self) -> None:
        if self.log_content not in LOG_CONTENT_MODES:
            raise ToolError(f"--log-content {self.log_content!r} is not one of {', '.join(LOG_CONTENT_MODES)}.")
        if not 0 <= self.port <= 65535:
            raise ToolError(f"--port {self.port} is out of range: use 1-65535 (or 0 for any free port).")
        if self.queue_size < 1:
            raise ToolError(f"queue_size must be at least 1, not {self.queue_size}.")
        if self.default_max_tokens < 1:
            raise ToolError(f"default_max_tokens must be at least 1, not {self.default_max_tokens}.")
        if not 0.0 <= self.default_temperature <= 2.0:
            raise ToolError(f"default_temperature must be within 0-2, not {self.default_temperature}.")
        if self.torch_threads < 1:
            raise ToolError(f"torch_threads must be at least 1, not {self.torch_threads}.")
        RunnerOptions(self.backend, self.max_batch)  # validates both
        if self.usage_buffer < 1:
            raise ToolError(f"usage_buffer must be at least 1, not {self.usage_buffer}.")
        if self.swap_check_seconds < 0:
            raise ToolError(f"swap_check_seconds must be 0 (check before every request) or more, "
                            f"not {self.swap_check_seconds}.")
        self._check_upstream()

    def _check_upstream(self) -> None:
        if self.upstream is not None:
            parts = urlsplit(self.upstream)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ToolError(f"--upstream {self.upstream!r} is not an http(s) URL: give the API's base URL, "
                                "e.g. https://api.openai.com/v1.")
        if self.route not in ROUTE_MODES:
            raise ToolError(f"--route {self.route!r} is not one of {', '.join(ROUTE_MODES)}.")
        if self.route == "auto" and self.upstream is None:
            raise ToolError("--route auto needs --upstream URL: routing chooses between the local model and "
                            "an upstream, and sends it a shadow sample.")
        if self.upstream_key_env is not None and self.upstream is None:
            raise ToolError("--upstream-key-env names the key of an upstream: give --upstream URL too, or drop it.")
        if not 0.0 <= self.shadow_rate <= 1.0:
            raise ToolError(f"shadow_rate must be within 0-1, not {self.shadow_rate}.")
        if self.upstream_timeout_s <= 0:
            raise ToolError(f"upstream_timeout_s must be positive, not {self.upstream_timeout_s}.")

    def upstream_key(self) -> str | None:
        """The upstream's API key, read from the named environment variable at start."""
        if self.upstream_key_env is None:
            return None
        key = os.environ.get(self.upstream_key_env, "").strip()
        if not key:
            raise ToolError(f"--upstream-key-env names ${self.upstream_key_env}, which is not set: export it "
                            f"(export {self.upstream_key_env}=sk-...) or leave the option out to send no key.")
        return key

    @property
    def runner_options(self) -> RunnerOptions:
        return RunnerOptions(self.backend, self.max_batch)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)
