"""The one text form of an instant in records, locks and ids (UTC, microseconds, ``Z``)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def id_stamp(now: datetime) -> str:
    """The time part of a deployment id: ids sort by time (``20261122T015900Z``)."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown time"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
