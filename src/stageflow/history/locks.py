"""The per-environment deploy lock: one ``LOCK`` item, taken with a conditional put, and how a lock
reads to a person.

The holder refreshes ``heartbeat`` (wall clock) as it records its progress (at most every
:data:`HEARTBEAT_EVERY`), so a lock held from another host can be judged: a heartbeat younger than
:data:`HEARTBEAT_FRESH` means its holder is alive. :func:`holder_alive` says whether (and why) a lock's
holder is alive: same host, its pid runs; another host, a fresh heartbeat. ``unlock`` refuses to break
such a lock without ``--force`` (issue 24 finding 9)."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from stageflow.errors import LockedError, UsageError
from stageflow.history.items import LOCK_SK, lock_key
from stageflow.isotime import format_age, iso, parse_iso

HEARTBEAT_EVERY = timedelta(seconds=30)
HEARTBEAT_FRESH = timedelta(minutes=5)  # > a look's interval + a slow write; a stopped run goes stale


def holder_alive(
    lock: Mapping[str, Any],
    *,
    alive: Callable[[int], bool],
    host: str | None = None,
    now: datetime | None = None,
) -> str | None:
    """Why the lock's holder is alive, or None when nothing says it is. ``alive(pid)``: is the process
    running on this host."""
    here = host or socket.gethostname()
    pid = int(lock["pid"]) if str(lock.get("pid") or "").isdigit() else None
    if lock.get("host") == here and pid is not None:
        return f"its process (pid {pid}) is running on {here}" if alive(pid) else None
    beat = lock.get("heartbeat")
    if beat:
        try:
            age = ((now or datetime.now(UTC)) - parse_iso(str(beat))).total_seconds()
        except ValueError:
            return None
        if age < HEARTBEAT_FRESH.total_seconds():
            where = lock.get("host") or "another host"
            return f"its process on {where} reported {format_age(max(0.0, age))} ago"
    return None


def default_who() -> str:
    user = os.environ.get("CODEBUILD_INITIATOR") or os.environ.get("USER") or "unknown"
    return f"{user}@{socket.gethostname()}"


def lock_age_seconds(lock: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """How long the lock has been held, in wall-clock seconds (``acquired``, the real time the lock
    was taken; older locks only have ``since``, the run's clock, which is virtual in local mode)."""
    stamp = lock.get("acquired") or lock.get("since")
    if not stamp:
        return None
    try:
        taken = parse_iso(str(stamp))
    except ValueError:
        return None
    return max(0.0, ((now or datetime.now(UTC)) - taken).total_seconds())


def lock_holder_text(lock: Mapping[str, Any] | None, now: datetime | None = None) -> str:
    """``deployment X (who, pid N on HOST, held for 3 min)``: who holds a lock, for people."""
    if not lock:
        return "another run"
    where = f"pid {lock['pid']} on {lock['host']}" if lock.get("host") and lock.get("pid") else None
    parts = [str(lock.get("who") or "unknown"), *([where] if where else [])]
    parts.append(f"held for {format_age(lock_age_seconds(lock, now))}")
    return f"deployment {lock.get('holder')} ({', '.join(parts)})"


def lock_hint(environment: str) -> str:
    return (
        f"wait; stageflow status {environment} says whether it is stale; "
        f"if so: stageflow unlock {environment} --reason TEXT"
    )


class DynamoLock:
    """The lock item of one environment. ``call`` runs a DynamoDB operation on the table (AWS errors
    mapped, conditional-check failures raised as they are); ``record_event`` records a broken lock."""

    def __init__(self, ddb, pk: str, environment: str, call: Callable, record_event: Callable):
        self.ddb = ddb
        self.pk = pk
        self.environment = environment
        self._call = call
        self._record_event = record_event
        self._beats: dict[str, datetime] = {}  # deployment id -> when this process last beat

    def acquire(self, deployment_id: str, who: str, now: datetime) -> None:
        from botocore.exceptions import ClientError

        item = {
            "pk": {"S": self.pk},
            "sk": {"S": LOCK_SK},
            "holder": {"S": deployment_id},
            "who": {"S": who},
            "since": {"S": iso(now)},  # the run's clock (virtual in a local rehearsal)
            "acquired": {"S": iso(datetime.now(UTC))},  # wall clock: the lock's age
            "host": {"S": socket.gethostname()},
            "pid": {"N": str(os.getpid())},
            "heartbeat": {"S": iso(datetime.now(UTC))},
        }
        try:
            # the same deployment may take its lock again (a resumed run records its own process)
            self._call(
                self.ddb.put_item,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR holder = :h",
                ExpressionAttributeValues={":h": {"S": deployment_id}},
            )
        except ClientError:
            lock = self.read()
            if lock is not None and lock.get("holder") == deployment_id:
                return  # our own put landed and its answer was lost; the retry found it
            raise LockedError(
                f"environment {self.environment}",
                lock_holder_text(lock),
                lock_hint(self.environment),
            ) from None

    def heartbeat(self, deployment_id: str) -> None:
        """The holder is alive: refresh ``heartbeat`` (at most every HEARTBEAT_EVERY; only while
        ``deployment_id`` holds the lock; best effort — a lost beat only makes the lock look older)."""
        wall = datetime.now(UTC)
        last = self._beats.get(deployment_id)
        if last is not None and wall - last < HEARTBEAT_EVERY:
            return
        self._beats[deployment_id] = wall
        # not the holder any more (the condition), or a failed call: the next beat tries again
        with contextlib.suppress(Exception):
            self._call(
                self.ddb.update_item,
                Key=lock_key(self.pk),
                UpdateExpression="SET heartbeat = :t",
                ConditionExpression="holder = :h",
                ExpressionAttributeValues={":t": {"S": iso(wall)}, ":h": {"S": deployment_id}},
            )

    def read(self) -> dict | None:
        resp = self._call(self.ddb.get_item, Key=lock_key(self.pk), ConsistentRead=True)
        item = resp.get("Item")
        if not item:
            return None
        return {k: next(iter(v.values())) for k, v in item.items()}

    def release(self, deployment_id: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._call(
                self.ddb.delete_item,
                Key=lock_key(self.pk),
                ConditionExpression="holder = :h",
                ExpressionAttributeValues={":h": {"S": deployment_id}},
            )
            return True
        except ClientError:
            return False

    def break_(
        self, reason: str, who: str, now: datetime, *, forced: str | None = None, expect: str | None = None
    ) -> dict | None:
        """Delete the lock (``expect``: only if that deployment still holds it) and record a
        ``lock_broken`` event; ``forced`` says why the holder looked alive when it was broken anyway."""
        from botocore.exceptions import ClientError

        if not reason.strip():
            raise UsageError("breaking a lock needs a reason", "--reason 'the run was killed at 14:02'")
        held = self.read()
        if held is None:
            return None
        holder = expect or str(held.get("holder"))
        try:
            self._call(
                self.ddb.delete_item,
                Key=lock_key(self.pk),
                ConditionExpression="holder = :h",
                ExpressionAttributeValues={":h": {"S": holder}},
            )
        except ClientError:
            raise LockedError(
                f"environment {self.environment}",
                lock_holder_text(self.read()),
                "the lock changed hands while it was being broken; look again: stageflow status",
            ) from None
        age = lock_age_seconds(held)
        self._record_event(
            "lock_broken",
            now,
            {
                "holder": held.get("holder"),
                "reason": reason,
                "who": who,
                "held_by": held.get("who"),
                "held_seconds": round(age) if age is not None else None,
                **({"forced": True, "holder_alive": forced} if forced else {}),
            },
        )
        return held
