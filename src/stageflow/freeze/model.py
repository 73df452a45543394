"""What a freeze is and which one is active at a moment (pure: no clock, no AWS)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from stageflow.errors import UsageError
from stageflow.isotime import iso, parse_iso

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def show(moment: datetime) -> str:
    """A freeze's times as people read them: ``2026-12-24 18:00 UTC``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class FreezeWindow:
    """One window of ``[environments.NAME.freeze] windows``: either absolute (``start``..``end``, times
    with a zone) or weekly (``days`` with ``from``..``to``, UTC, ``to`` after ``from``)."""

    reason: str
    start: datetime | None = None
    end: datetime | None = None
    days: tuple[str, ...] = ()
    from_time: time | None = None
    to_time: time | None = None

    def until(self, now: datetime) -> datetime | None:
        """When this window ends, if ``now`` is inside it; ``None`` when it is not."""
        if self.start is not None and self.end is not None:
            return self.end if self.start <= now < self.end else None
        now = now.astimezone(UTC)
        if DAYS[now.weekday()] not in self.days or self.from_time is None or self.to_time is None:
            return None
        if not (self.from_time <= now.time().replace(tzinfo=None) < self.to_time):
            return None
        if self.to_time == time.max:  # "24:00": the end of the day
            return datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=UTC)
        return datetime.combine(now.date(), self.to_time, tzinfo=UTC)

    def describe(self) -> str:
        if self.start is not None and self.end is not None:
            return f"{show(self.start)} to {show(self.end)}"
        end = "24:00" if self.to_time == time.max else f"{self.to_time:%H:%M}"
        return f"{','.join(self.days)} {self.from_time:%H:%M}-{end} UTC"


@dataclass(frozen=True)
class Freeze:
    """An active freeze: why, until when, and where it comes from (``config`` or ``manual``)."""

    environment: str
    reason: str
    until: datetime
    source: str  # "config" (a window of stageflow.toml) or "manual" (stageflow freeze)
    by: str = ""

    def line(self) -> str:
        who = f", set by {self.by}" if self.by else ""
        origin = "stageflow.toml window" if self.source == "config" else f"stageflow freeze{who}"
        return f"{self.environment} is frozen until {show(self.until)}: {self.reason} ({origin})"

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "reason": self.reason,
            "until": iso(self.until),
            "source": self.source,
            "by": self.by,
        }


class FrozenError(UsageError):
    """``deploy``/``canary`` during a freeze (exit 2)."""

    def __init__(self, freeze: Freeze):
        super().__init__(
            f"refused: {freeze.line()}",
            "deploy anyway only for an emergency: --emergency --reason TEXT (recorded and notified); "
            "rollback is never frozen",
        )
        self.freeze = freeze


def manual_freeze(environment: str, item: Mapping[str, Any] | None) -> Freeze | None:
    """The freeze a person set (the history's FREEZE item), if any."""
    if not item:
        return None
    try:
        until = parse_iso(str(item.get("until")))
    except ValueError:
        return None
    return Freeze(environment, str(item.get("reason") or ""), until, "manual", str(item.get("by") or ""))


def active(
    environment: str,
    windows: Iterable[FreezeWindow],
    manual: Mapping[str, Any] | None,
    now: datetime,
) -> Freeze | None:
    """The freeze in force at ``now``: a person's (while its ``until`` is ahead), else the first
    configured window ``now`` falls in. ``None``: deploys may go."""
    person = manual_freeze(environment, manual)
    if person is not None and now < person.until:
        return person
    for w in windows:
        end = w.until(now)
        if end is not None:
            return Freeze(environment, w.reason, end, "config")
    return None


def emergency_text(freeze: Freeze, who: str, reason: str) -> str:
    return f"EMERGENCY deploy during a freeze by {who}: {reason} (overrides: {freeze.line()})"


MAX_FREEZE = timedelta(days=366)
_UNITS = {"m": 60, "h": 3600, "d": 86400}


def parse_until(text: str, now: datetime) -> datetime:
    """``--until``: an ISO 8601 time with a zone (``2026-12-24T18:00Z``) or a duration from now
    (``90m``, ``4h``, ``3d``); in the future and at most a year ahead. Bad input: exit 2."""
    raw = text.strip()
    when: datetime | None = None
    if raw[:-1].isdigit() and raw[-1:] in _UNITS:
        amount = int(raw[:-1])
        if 0 < amount <= MAX_FREEZE.total_seconds() // _UNITS[raw[-1]]:
            when = now + timedelta(seconds=amount * _UNITS[raw[-1]])
    else:
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is None:
            raise UsageError(f"--until {text!r} needs a zone (e.g. {iso(now + timedelta(hours=4))})")
    if when is None:
        raise UsageError(f"--until {text!r}: give a time with a zone (2026-12-24T18:00Z) or 90m, 4h, 3d")
    if when <= now:
        raise UsageError(f"--until {text!r} is not in the future (now {iso(now)})")
    if when - now > MAX_FREEZE:
        raise UsageError(f"--until {text!r} is more than a year ahead")
    return when
