"""The one set of PII patterns: emails, phone numbers and long digit runs, masked wherever text is kept."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A phone number: optional +country, then 7+ digits possibly split by spaces, dots, dashes or parentheses.
_PHONE = re.compile(r"(?<![\w])\+?\(?\d[\d\s().-]{6,}\d(?![\w])")
_DIGITS = re.compile(r"\d{6,}")


def _phone(match: re.Match[str]) -> str:
    found = match.group()
    # A bare digit run is left to the digit rule, so "[phone]" only marks what is written like a number to call.
    looks_dialled = found.startswith("+") or not found.isdigit()
    return "[phone]" if looks_dialled and sum(c.isdigit() for c in found) >= 7 else found


def scrub_pii(text: str) -> str:
    """Mask emails as [email], phone numbers as [phone] and long digit runs (card, account, id) as [number]."""
    text = _EMAIL.sub("[email]", text)
    text = _PHONE.sub(_phone, text)
    return _DIGITS.sub("[number]", text)
