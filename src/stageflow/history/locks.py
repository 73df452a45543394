"""The per-environment deploy lock: one ``LOCK`` item, taken with a conditional put, and how a lock
reads to a person."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from stageflow.errors import LockedError, UsageError
from stageflow.history.items import LOCK_SK, lock_key
from stageflow.isotime import format_age, iso, parse_iso


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

    def break_(self, reason: str, who: str, now: datetime) -> dict | None:
        if not reason.strip():
            raise UsageError("breaking a lock needs a reason", "--reason 'the run was killed at 14:02'")
        held = self.read()
        if held is None:
            return None
        self._call(self.ddb.delete_item, Key=lock_key(self.pk))
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
            },
        )
        return held
