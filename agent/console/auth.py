"""Who may use the console: the endpoint's API keys, a signed HttpOnly session cookie, CSRF tokens on every form.

A session is a signed cookie (HMAC-SHA256 with a secret made when the console starts, so restarting it ends
every session). Every visitor gets one, anonymous until a key logs it in, so the login form itself carries a
CSRF token. With no API key at all a loopback console is open to this machine, as `ingrain serve` is; once a
key exists, the console wants it (a login, or `Authorization: Bearer <key>` for scripts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from memory import Store
from memory.keys import hash_key, live_key_hashes

COOKIE = "ingrain_console"
KEY_CACHE_SECONDS = 1.0
"""A key created or revoked in another shell counts within this long."""


@dataclass
class Session:
    """What the session cookie says."""

    sid: str
    """Random id; the CSRF token is derived from it."""
    expires: float
    key_id: int | None = None
    """The API key that logged this session in; None while anonymous."""
    name: str = ""
    """The key's name, shown in the page header and recorded as who answered a gate."""


@dataclass
class Viewer:
    """Who is looking at a page: a logged-in key, a bearer key, or anyone on this machine (no key exists)."""

    name: str
    key_id: int | None
    bearer: bool = False
    """Sent the key in a header: no cookie, so no cross-site request can borrow it and no CSRF token is needed."""


class LoginRequired(Exception):
    """The page needs a key; `expired` says a session ran out rather than never having been logged in."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("login required")
        self.expired = expired


class CsrfRefused(Exception):
    """A state-changing request came without the form's CSRF token."""


@dataclass
class ConsoleAuth:
    """Session signing, key checks and CSRF tokens for one console app."""

    loopback: bool
    """Bound to loopback: with no API key at all the console is open to this machine."""
    session_seconds: float = 12 * 3600
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    _keys: dict[str, int] = field(default_factory=dict, repr=False)
    _keys_read: float = field(default=-1e9, repr=False)

    # -- keys ---------------------------------------------------------------------------------------
    def key_hashes(self) -> dict[str, int]:
        if time.monotonic() - self._keys_read >= KEY_CACHE_SECONDS:
            with Store.open() as store:
                self._keys = live_key_hashes(store)
            self._keys_read = time.monotonic()
        return self._keys

    def open_access(self) -> bool:
        """No key exists and the console is loopback-only: anyone on this machine may use it."""
        return self.loopback and not self.key_hashes()

    def check_key(self, key: str) -> int | None:
        """The key's id if `key` is live."""
        self._keys_read = -1e9  # a key created a moment ago must work at once
        return self.key_hashes().get(hash_key(key.strip())) if key.strip() else None

    def key_name(self, key_id: int) -> str:
        from memory.keys import api_keys

        with Store.open() as store:
            return next((k["name"] for k in api_keys(store) if k["id"] == key_id), f"key {key_id}")

    # -- sessions -----------------------------------------------------------------------------------
    def new_session(self, key_id: int | None = None, name: str = "") -> Session:
        return Session(sid=secrets.token_urlsafe(18), expires=time.time() + self.session_seconds, key_id=key_id,
                       name=name)

    def encode(self, session: Session) -> str:
        body = base64.urlsafe_b64encode(json.dumps(session.__dict__).encode()).decode().rstrip("=")
        return f"{body}.{self._sign(body)}"

    def decode(self, cookie: str | None) -> tuple[Session | None, bool]:
        """(session, expired): a missing, forged or garbled cookie is (None, False); a stale one (None, True)."""
        if not cookie or "." not in cookie:
            return None, False
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None, False
        try:
            data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            session = Session(**data)
        except (ValueError, TypeError):
            return None, False
        if session.expires < time.time():
            return None, True
        return session, False

    def _sign(self, body: str) -> str:
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self.secret, f"csrf:{session.sid}".encode(), hashlib.sha256).hexdigest()

    # -- per request --------------------------------------------------------------------------------
    def viewer(self, request: Request) -> Viewer:
        """Who is asking, or LoginRequired."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            key_id = self.check_key(token)
            if key_id is None:
                raise LoginRequired()
            return Viewer(self.key_name(key_id), key_id, bearer=True)
        session: Session = request.state.session
        if session.key_id is not None and session.key_id in self.key_hashes().values():
            return Viewer(session.name, session.key_id)
        if self.open_access():
            return Viewer("local", None)
        raise LoginRequired(expired=request.state.session_expired)

    def check_csrf(self, request: Request, viewer: Viewer | None, form: dict[str, str]) -> None:
        if viewer is not None and viewer.bearer:
            return
        given = form.get("csrf", "")
        if not given or not hmac.compare_digest(given, self.csrf_token(request.state.session)):
            raise CsrfRefused()
