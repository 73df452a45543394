"""The rollback's plain data: the request, the result, the alarm notifications it reads, the retry
policy. Standard library only (the rollback function's zip carries it)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from stageflow.errors import UsageError

FAILED_KIND = "rollback_failed"


@dataclass(frozen=True)
class RollbackResult:
    environment: str
    changed: bool
    from_weights: dict[str, int]
    to_version: str
    reason: str
    trigger: str  # "manual" | "alarm"
    deployment_id: str | None = None
    seconds_to_restore: float | None = None  # tool time from the request to the alias verified
    functions: dict | None = None  # several functions: {key: {"to_version", "from_weights"}}
    moved_by_another_run: bool = False  # a concurrent run moved traffic (and records it); this one did not

    def to_json(self) -> dict:
        out = asdict(self)
        if self.functions is None:
            del out["functions"]
        return out


@dataclass(frozen=True)
class RollbackRequest:
    environment: str
    service: str
    to: str | None = None  # a version to go to; None: in-flight previous / already rolled back / LKG
    reason: str = "manual rollback"
    trigger: str = "manual"  # "manual" | "alarm"
    who: str = "unknown"


@dataclass(frozen=True)
class AlarmEvent:
    alarm_name: str
    new_state: str
    reason: str
    time: str | None


def parse_alarm_event(raw: str | dict) -> list[AlarmEvent]:
    """Accept the shapes SNS delivers: a Lambda SNS event ({"Records": [{"Sns": {"Message": ...}}]}),
    an SNS HTTP/SQS notification ({"Type": "Notification", "Message": ...}), or the alarm JSON itself."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise UsageError(f"alarm event is not JSON: {exc}") from None
    messages: list[Any] = []
    if isinstance(data, dict) and isinstance(data.get("Records"), list):
        messages = [(r.get("Sns") or {}).get("Message") for r in data["Records"]]
    elif isinstance(data, dict) and "Message" in data:
        messages = [data["Message"]]
    else:
        messages = [data]
    events = []
    for msg in messages:
        try:
            body = json.loads(msg) if isinstance(msg, str) else msg
        except ValueError:
            raise UsageError("alarm event: the SNS Message is not a CloudWatch alarm notification") from None
        if not isinstance(body, dict) or "AlarmName" not in body or "NewStateValue" not in body:
            raise UsageError(
                "alarm event: no AlarmName/NewStateValue in the message",
                "expected a CloudWatch alarm notification delivered by SNS",
            )
        events.append(
            AlarmEvent(
                body["AlarmName"],
                body["NewStateValue"],
                body.get("NewStateReason", ""),
                body.get("StateChangeTime"),
            )
        )
    if not events:
        raise UsageError("alarm event has no records")
    return events


@dataclass(frozen=True)
class Retry:
    """How often the alias restore is tried (each try with botocore's own retries), and the wait
    before the second try (doubling after each)."""

    attempts: int = 3
    first_wait: float = 1.0


DEFAULT_RETRY = Retry()
