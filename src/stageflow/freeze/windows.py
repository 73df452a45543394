"""``[environments.NAME.freeze]`` → :class:`FreezeWindow` tuples, strictly (a bad window is exit 2 naming
its key, like every other key of ``stageflow.toml``).

    [environments.prod.freeze]
    windows = [
      { start = 2026-12-21T00:00:00Z, end = 2027-01-04T08:00:00Z, reason = "year-end freeze" },
      { days = ["fri"], from = "15:00", to = "24:00", reason = "no Friday-afternoon deploys" },
    ]

Absolute windows take TOML offset date-times (or ISO 8601 strings with a zone); weekly windows take
day names and ``HH:MM`` times in UTC (``to`` after ``from``; ``24:00`` is the end of the day).
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from stageflow.freeze.model import DAYS, FreezeWindow

_ABSOLUTE = {"start", "end", "reason"}
_WEEKLY = {"days", "from", "to", "reason"}


def parse_freeze(r: Any, raw_env: dict, key: str) -> tuple[FreezeWindow, ...]:
    """``r`` is the config reader (``fail``, ``table``, ``check_keys``)."""
    if "freeze" not in raw_env:
        return ()
    fkey = f"{key}.freeze"
    table = r.table(raw_env["freeze"], fkey)
    r.check_keys(table, fkey, {"windows"})
    raw = table.get("windows", [])
    if not isinstance(raw, list):
        raise r.fail(f"{fkey}.windows", "must be a list of tables")
    return tuple(_window(r, w, f"{fkey}.windows[{i}]") for i, w in enumerate(raw))


def _window(r: Any, raw: Any, key: str) -> FreezeWindow:
    w = r.table(raw, key)
    reason = w.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise r.fail(f"{key}.reason", "every freeze window needs a reason (shown when a deploy is refused)")
    if "days" in w or "from" in w or "to" in w:
        r.check_keys(w, key, _WEEKLY)
        return _weekly(r, w, key, reason.strip())
    r.check_keys(w, key, _ABSOLUTE)
    start, end = _moment(r, w.get("start"), f"{key}.start"), _moment(r, w.get("end"), f"{key}.end")
    if end <= start:
        raise r.fail(f"{key}.end", f"must be after start ({start.isoformat()})")
    return FreezeWindow(reason.strip(), start=start, end=end)


def _weekly(r: Any, w: dict, key: str, reason: str) -> FreezeWindow:
    days = w.get("days")
    if not isinstance(days, list) or not days or not all(isinstance(d, str) for d in days):
        raise r.fail(f"{key}.days", f"must be a non-empty list of day names ({', '.join(DAYS)})")
    bad = [d for d in days if d.lower() not in DAYS]
    if bad:
        raise r.fail(f"{key}.days", f"unknown day {bad[0]!r} (use {', '.join(DAYS)})")
    start, end = _clock(r, w.get("from"), f"{key}.from"), _clock(r, w.get("to"), f"{key}.to")
    if end <= start:
        raise r.fail(f"{key}.to", "must be after from (a window over midnight is two windows)")
    return FreezeWindow(reason, days=tuple(d.lower() for d in days), from_time=start, to_time=end)


def _moment(r: Any, value: Any, key: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise r.fail(key, f"not an ISO 8601 time with a zone: {value!r}") from None
    if not isinstance(value, datetime):
        raise r.fail(key, "must be a date-time with a zone (e.g. 2026-12-21T00:00:00Z)")
    if value.tzinfo is None:
        raise r.fail(key, "needs a zone (e.g. 2026-12-21T00:00:00Z): a local time is ambiguous")
    return value.astimezone(UTC)


def _clock(r: Any, value: Any, key: str) -> time:
    if value == "24:00":
        return time.max
    try:
        if not isinstance(value, str) or len(value) != 5:
            raise ValueError
        return time.fromisoformat(value)
    except ValueError:
        raise r.fail(key, f"must be HH:MM in UTC (00:00 to 24:00), got {value!r}") from None
