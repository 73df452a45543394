"""The rollback function: alarm → SNS (filtered to CloudWatch ALARM messages) → this handler → the live
alias back on the last known good version, recorded in the history table and notified on the topic.

It runs where Terraform deploys it, from ``build/lambda/stageflow-rollback.zip``: no stageflow.toml, no
Terraform, only the Lambda runtime's boto3 and the standard library. Everything it needs comes from the
environment the service module sets (infrastructure/modules/service/lambda.tf):

``STAGEFLOW_SERVICE``, ``STAGEFLOW_ENVIRONMENT``, ``STAGEFLOW_FUNCTION_NAME``, ``STAGEFLOW_ALIAS_NAME``,
``STAGEFLOW_HISTORY_TABLE``, ``STAGEFLOW_TOPIC_ARN`` and, optionally, ``STAGEFLOW_ROLLBACK_ALARM`` (the
alarm on this function's own errors, ignored should it ever arrive here) and ``STAGEFLOW_FUNCTIONS``
(a service of several functions: JSON ``{"KEY": "function-name"}``, every one rolled back together
through its ``STAGEFLOW_ALIAS_NAME`` alias; without it, the one function). ``STAGEFLOW_ALARM_NAMES`` (a
JSON list, required) is the environment's alarm set: only an alarm in it that DescribeAlarms shows in
ALARM now rolls back; any other ALARM message is refused, logged and recorded (:mod:`.trigger`). The
region and any endpoint come from the runtime as for any boto3 client (``AWS_REGION``, ``AWS_ENDPOINT_URL``).

On failure it publishes "automatic rollback FAILED — page a person" on the topic and re-raises, so the
invocation counts as an error (the rollback function's Errors alarm) and SNS's retries and the
dead-letter queue keep the event.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from stageflow.deploy.release import Member, Release
from stageflow.deploy.traffic import AliasTraffic
from stageflow.history.dynamo import DynamoHistory
from stageflow.notify import Notifiers, SnsNotifier
from stageflow.rollback.core import RollbackRequest, notify_failure, parse_alarm_event
from stageflow.rollback.core import rollback as core_rollback
from stageflow.rollback.trigger import ALARM_NAMES_VAR, check_trigger, parse_alarm_names, record_refusal

ENV_VARS = {
    "service": "STAGEFLOW_SERVICE",
    "environment": "STAGEFLOW_ENVIRONMENT",
    "function_name": "STAGEFLOW_FUNCTION_NAME",
    "alias_name": "STAGEFLOW_ALIAS_NAME",
    "history_table": "STAGEFLOW_HISTORY_TABLE",
    "topic_arn": "STAGEFLOW_TOPIC_ARN",
}


class SettingsMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    service: str
    environment: str
    function_name: str
    alias_name: str
    history_table: str
    topic_arn: str
    own_alarm: str = ""
    functions: tuple[tuple[str, str], ...] = ()  # (key, function name); empty: the one function
    alarm_names: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        missing = sorted(var for var in ENV_VARS.values() if not environ.get(var))
        if missing:
            raise SettingsMissing(f"rollback function: environment variables not set: {', '.join(missing)}")
        values = {field: environ[var] for field, var in ENV_VARS.items()}
        return cls(
            **values,
            own_alarm=environ.get("STAGEFLOW_ROLLBACK_ALARM", ""),
            functions=_functions(environ.get("STAGEFLOW_FUNCTIONS", "")),
            alarm_names=parse_alarm_names(environ.get(ALARM_NAMES_VAR)),
        )

    def release(self, lam) -> Release:
        """Every function's alias (the one function when ``STAGEFLOW_FUNCTIONS`` is not set)."""
        pairs = self.functions or ((self.function_name, self.function_name),)
        return Release(tuple(Member(k, AliasTraffic(lam, fn, self.alias_name)) for k, fn in pairs))


def _functions(raw: str) -> tuple[tuple[str, str], ...]:
    """``STAGEFLOW_FUNCTIONS``: a JSON object of non-empty names; anything else is a settings error."""
    if not raw.strip():
        return ()
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if (
        not isinstance(data, dict)
        or not data
        or not all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in data.items())
    ):
        raise SettingsMissing(
            'rollback function: STAGEFLOW_FUNCTIONS must be a JSON object {"KEY": "function-name"}'
        )
    return tuple(data.items())


class LogReporter:
    """One JSON line per event on stdout (CloudWatch Logs)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def _line(self, level: str, **fields) -> None:
        print(
            json.dumps({"level": level, **fields}, default=str, sort_keys=True), file=self.stream, flush=True
        )

    def info(self, phase: str, subject: str, text: str) -> None:
        self._line("info", phase=phase, subject=subject, text=text)

    def warn(self, text: str) -> None:
        self._line("warning", text=text)


def _clients():
    import boto3
    from botocore.config import Config

    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=15)
    session = boto3.session.Session()
    return (
        session.client("lambda", config=cfg),
        session.client("dynamodb", config=cfg),
        session.client("sns", config=cfg),
        session.client("cloudwatch", config=cfg),
    )


def handler(event: dict, context: object = None) -> dict:
    """Lambda entry point (``stageflow.rollback.handler.handler``). The scheduled check of approval
    deadlines (an EventBridge schedule with the input ``{"stageflow": "tick"}``) goes to
    :func:`stageflow.rollback.tick.handler`."""
    if isinstance(event, dict) and event.get("stageflow") == "tick":
        return tick_handler()
    started = time.monotonic()
    log = LogReporter()
    settings = Settings.from_env(os.environ)
    lam, ddb, sns, cloudwatch = _clients()
    notifier = Notifiers([SnsNotifier(sns, settings.topic_arn)], reporter=log)
    history = DynamoHistory(ddb, settings.history_table, settings.service, settings.environment)
    release = settings.release(lam)
    traffic = release.first.traffic
    results = []
    try:
        events = parse_alarm_event(event)
    except Exception as exc:
        req = RollbackRequest(
            settings.environment, settings.service, reason="unreadable event", trigger="alarm"
        )
        notify_failure(notifier, req, exc)
        raise
    for ev in events:
        if ev.new_state != "ALARM" or (settings.own_alarm and ev.alarm_name == settings.own_alarm):
            log.info("rollback", ev.alarm_name, f"state {ev.new_state}: nothing to do")
            continue
        check = check_trigger(ev.alarm_name, settings.alarm_names, cloudwatch)
        if not check.accepted:
            record_refusal(history, log, ev.alarm_name, check, ev.time, datetime.now(UTC))
            continue
        req = RollbackRequest(
            environment=settings.environment,
            service=settings.service,
            reason=f"alarm {ev.alarm_name}: {ev.reason}".strip(),
            trigger="alarm",
            who=f"alarm:{ev.alarm_name}",
        )
        result = core_rollback(
            req,
            history=history,
            traffic=traffic,
            notifier=notifier,
            reporter=log,
            now=datetime.now(UTC),
            started=started,
            release=release,
        )
        results.append(result.to_json())
    return {"rolled_back": results, "at": datetime.now(UTC).isoformat()}


def tick_handler() -> dict:
    """The scheduled check of approval deadlines (:func:`stageflow.rollback.tick.tick`) with this
    function's settings and clients, on the system clock."""
    from stageflow.rollback.tick import tick

    log = LogReporter()
    settings = Settings.from_env(os.environ)
    lam, ddb, sns, _cloudwatch = _clients()
    notifier = Notifiers([SnsNotifier(sns, settings.topic_arn)], reporter=log)
    history = DynamoHistory(ddb, settings.history_table, settings.service, settings.environment)
    release = settings.release(lam)
    result = tick(
        settings.environment,
        settings.service,
        history=history,
        traffic=release.first.traffic,
        notifier=notifier,
        reporter=log,
        now=datetime.now(UTC),
        release=release,
    )
    log.info("tick", settings.environment, result.text)
    return result.to_json()
