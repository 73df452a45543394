"""Redaction by value: every secret value, and its common encodings, is masked in all output.

A value is registered with :data:`REDACTOR` as soon as it is fetched, before anything could print it.
:class:`Redactor` then masks these forms of it wherever they appear in a line:

- the raw value, and each line of a multi-line value (child output is streamed line by line);
- base64 (standard, unpadded and URL-safe), also where the value sits inside a longer base64 text
  at any of the three byte alignments (as in ``user:password`` encoded for Basic auth);
- URL-encoded (``quote`` with and without ``/`` kept, ``quote_plus``);
- JSON-escaped (what ``json.dumps`` writes for the value inside a string, ASCII and UTF-8).

Values shorter than :data:`MIN_LEN` are not registered: masking them would mask ordinary words.
:mod:`stageflow.secrets` refuses such values, so every secret it hands out is maskable.
Overlapping matches are merged and masked as one ``***``, so no piece of either value survives.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse

MASK = "***"
MIN_LEN = 4  # shorter values would mask ordinary words; they are refused as secrets elsewhere
MIN_EMBEDDED_B64 = 8  # an inner base64 run shorter than this is too likely to occur by chance


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


def _embedded_base64(raw: bytes) -> set[str]:
    """The base64 characters that encode ``raw`` wherever it sits inside a longer byte string.

    With ``k`` bytes before it (k = 0, 1, 2 modulo 3), only the 4-character groups made entirely of
    the value's own bytes are stable; those runs are what can be matched.
    """
    forms: set[str] = set()
    for k in (0, 1, 2):
        data = b"\0" * k + raw
        encoded = base64.b64encode(data).decode()
        start = 4 if k else 0  # the first group mixes in the bytes before the value
        end = 4 * (len(data) // 3)  # the last partial group mixes in the bytes after it
        run = encoded[start:end]
        if len(run) >= MIN_EMBEDDED_B64:
            forms.add(run)
            forms.add(run.replace("+", "-").replace("/", "_"))  # URL-safe alphabet
    return forms


def encodings(value: str) -> set[str]:
    """The forms in which a value commonly leaks: raw, base64, URL-encoded, JSON-escaped."""
    raw = value.encode()
    forms = {
        value,
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }
    forms |= _embedded_base64(raw)
    if "\n" in value:
        forms |= {line.strip() for line in value.splitlines()}
    return {f for f in forms if len(f) >= MIN_LEN}


class Redactor:
    """Holds the forms to mask; ``redact`` masks every occurrence, merging overlapping matches."""

    def __init__(self):
        self._forms: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not value or len(value) < MIN_LEN:
            return
        with self._lock:
            merged = set(self._forms) | encodings(value)
            self._forms = tuple(sorted(merged, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __len__(self) -> int:
        return len(self._forms)

    def clear(self) -> None:
        """Forget every value (tests only; a running tool never forgets a secret)."""
        with self._lock:
            self._forms = ()

    def redact(self, text: str) -> str:
        forms = self._forms  # a snapshot: add() replaces the tuple, never mutates it
        spans: list[tuple[int, int]] = []
        for form in forms:
            start = text.find(form)
            while start != -1:
                spans.append((start, start + len(form)))
                start = text.find(form, start + 1)
        if not spans:
            return text
        spans.sort()
        merged: list[list[int]] = []
        for s, e in spans:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        out: list[str] = []
        pos = 0
        for s, e in merged:
            out.append(text[pos:s])
            out.append(MASK)
            pos = e
        out.append(text[pos:])
        return "".join(out)


# The process-wide redactor: everything the tool prints or logs passes through it.
REDACTOR = Redactor()
