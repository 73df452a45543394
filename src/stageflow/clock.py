"""The injected clock: the deploy engine never calls time.sleep itself."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from stageflow.ports import Clock  # noqa: F401 - defined with the ports, used here


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """A clock that advances only when slept on: a 60-minute canary runs in seconds."""

    def __init__(self, start: datetime | None = None):
        if start is None:
            start = datetime.now(UTC).replace(second=0, microsecond=0)
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)
