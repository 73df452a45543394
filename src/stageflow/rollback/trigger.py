"""Which alarm messages may roll an environment back (issue 24 item 4).

Anyone who can publish to the alerts topic (the deployer publishes its notifications there) can craft
``{"AlarmName": ..., "NewStateValue": "ALARM"}``. The topic policy admits only this environment's alarms
as CloudWatch publishers (``aws:SourceArn``, infrastructure/modules/service/sns.tf), and this check is the
handler's own: the alarm must be one of the environment's alarm set (``STAGEFLOW_ALARM_NAMES``, a JSON
list Terraform writes from the alarms it creates) and ``DescribeAlarms`` must show it in ALARM *now*.
Anything else is a refused trigger: logged, recorded in the history as a ``trigger_refused`` event, and
nothing moves.

Standard library and boto3 only (part of the rollback zip).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

REFUSED_KIND = "trigger_refused"
ALARM_NAMES_VAR = "STAGEFLOW_ALARM_NAMES"


class AlarmSetInvalid(RuntimeError):
    pass


def parse_alarm_names(raw: str | None) -> frozenset[str]:
    """``STAGEFLOW_ALARM_NAMES`` (a JSON list of alarm names) → the set; missing or malformed is an
    error (the handler then moves nothing and its invocation fails, which pages)."""
    if not raw:
        raise AlarmSetInvalid(f"rollback function: {ALARM_NAMES_VAR} is not set")
    try:
        names = json.loads(raw)
    except ValueError:
        raise AlarmSetInvalid(f"rollback function: {ALARM_NAMES_VAR} is not JSON") from None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise AlarmSetInvalid(f"rollback function: {ALARM_NAMES_VAR} must be a JSON list of alarm names")
    return frozenset(names)


@dataclass(frozen=True)
class TriggerCheck:
    accepted: bool
    reason: str  # why it was refused ("" when accepted)
    state_now: str | None = None  # what DescribeAlarms said, when asked


def alarm_state_now(cloudwatch, alarm_name: str) -> str | None:
    """The alarm's StateValue as DescribeAlarms reports it, or None when no such alarm exists."""
    resp = cloudwatch.describe_alarms(AlarmNames=[alarm_name], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    for alarm in [*resp.get("MetricAlarms", []), *resp.get("CompositeAlarms", [])]:
        if alarm.get("AlarmName") == alarm_name:
            return alarm.get("StateValue")
    return None


def check_trigger(alarm_name: str, alarm_names: frozenset[str], cloudwatch) -> TriggerCheck:
    """May an ALARM message for ``alarm_name`` roll this environment back?"""
    if alarm_name not in alarm_names:
        return TriggerCheck(False, "not an alarm of this environment")
    state = alarm_state_now(cloudwatch, alarm_name)
    if state is None:
        return TriggerCheck(False, "DescribeAlarms does not know this alarm")
    if state != "ALARM":
        return TriggerCheck(False, f"the alarm is {state} now, not ALARM", state)
    return TriggerCheck(True, "", state)


def record_refusal(history, log, alarm_name: str, check: TriggerCheck, message_time, now) -> None:
    """Log the refused trigger and record it in the history (best effort on the record: a history
    that cannot be written must not turn a refusal into a failed invocation that SNS retries)."""
    text = f"refused rollback trigger for alarm {alarm_name!r}: {check.reason}; nothing moved"
    log.warn(text)
    try:
        history.record_event(
            REFUSED_KIND,
            now,
            {
                "alarm_name": alarm_name[:256],
                "reason": check.reason,
                "state_now": check.state_now,
                "message_time": message_time,
            },
        )
    except Exception as exc:  # noqa: BLE001 - the refusal stands; the log line above keeps it
        log.warn(f"could not record the refused trigger: {type(exc).__name__}: {exc}")
