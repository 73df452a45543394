"""Compact per-minute series kept with each verdict, so a report can chart exactly what the judge read.

A verdict item stores ``minutes = {"canary": [[minute, invocations, errors, p95_ms], ...], "stable":
[...]}`` for the minutes of its window that the previous check of the same window had not yet seen
(plus the two before, in case late CloudWatch data revised them). :func:`merge` rebuilds one series per
role from every verdict of a deployment; a later verdict's minute replaces an earlier one's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from stageflow.metrics.interface import VersionSeries

REVISE_MINUTES = 2


def _row(m) -> list:
    from stageflow.history import iso

    return [iso(m.start), int(m.invocations), int(m.errors), None if m.p95_ms is None else float(m.p95_ms)]


def compact(
    canary: VersionSeries | None, stable: VersionSeries | None, *, since: datetime | None = None
) -> dict[str, list]:
    """The rows of ``canary`` and ``stable`` whose minute starts at or after ``since`` (all if None)."""
    out: dict[str, list] = {}
    cut = since - timedelta(minutes=REVISE_MINUTES) if since is not None else None
    for role, series in (("canary", canary), ("stable", stable)):
        if series is None:
            continue
        out[role] = [_row(m) for m in series.minutes if cut is None or m.start >= cut]
    return out


def merge(verdicts: Iterable[dict]) -> dict[str, dict[str, dict]]:
    """``{"canary": {minute: {"invocations", "errors", "p95_ms"}}, "stable": {...}}``, by minute."""
    merged: dict[str, dict[str, dict]] = {"canary": {}, "stable": {}}
    for v in verdicts:
        for role, rows in (v.get("minutes") or {}).items():
            for row in rows or []:
                at, n, k, p95 = (list(row) + [None] * 4)[:4]
                merged.setdefault(role, {})[at] = {"invocations": n or 0, "errors": k or 0, "p95_ms": p95}
    return {role: dict(sorted(rows.items())) for role, rows in merged.items()}
