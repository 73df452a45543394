"""Redaction by value: every secret value, and its common encodings, is masked in all output."""

from __future__ import annotations

import base64
import threading
import urllib.parse

MASK = "***"
MIN_LEN = 4  # shorter values would mask ordinary words; they are refused as secrets elsewhere


class Secret:
    """A value that prints as ``***``: str(), repr() and format() never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return "Secret('***')"

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def encodings(value: str) -> set[str]:
    """The forms in which a value commonly leaks: raw, base64 (std and url-safe), URL-encoded."""
    raw = value.encode()
    forms = {
        value,
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
    }
    return {f for f in forms if len(f) >= MIN_LEN}


class Redactor:
    """Holds the values to mask; ``redact`` replaces every occurrence, longest first."""

    def __init__(self):
        self._forms: list[str] = []
        self._lock = threading.Lock()

    def add(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not value or len(value) < MIN_LEN:
            return
        with self._lock:
            merged = set(self._forms) | encodings(value)
            self._forms = sorted(merged, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def redact(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


# The process-wide redactor: everything the tool prints or logs passes through it.
REDACTOR = Redactor()
