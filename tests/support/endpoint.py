"""Asking a served ingrain endpoint through the real openai client, as a user's script would."""

from __future__ import annotations

import openai


def ask_all(base_url: str, messages: list[str], *, model: str = "ingrain", system: str | None = None,
            max_tokens: int = 80) -> list[str]:
    """Each message as its own chat (after `system`, if given), answered greedily."""
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="local", max_retries=0, timeout=300)
    head = [{"role": "system", "content": system}] if system else []
    return [client.chat.completions.create(model=model, messages=[*head, {"role": "user", "content": text}],
                                           max_tokens=max_tokens, temperature=0).choices[0].message.content or ""
            for text in messages]
