"""Issue 24 item 4 (finding 4): only an alarm of this environment that DescribeAlarms shows in ALARM now
rolls back; a crafted message moves nothing and is recorded as a refused trigger. The handler runs with
fakes at its AWS seams (the clients); tests/e2e/test_rollback_function.py runs it from its zip."""

from __future__ import annotations

import json

import pytest

from stageflow.rollback import handler as rollback_lambda
from stageflow.rollback.trigger import AlarmSetInvalid, check_trigger, parse_alarm_names

from .test_rollback_core import LAMBDA_ENV

NAMES = frozenset({"svc-errors-dev", "svc-error-rate-dev"})


class FakeCloudWatch:
    def __init__(self, states: dict[str, str]):
        self.states = states
        self.asked: list[list[str]] = []

    def describe_alarms(self, AlarmNames, AlarmTypes=None):  # noqa: N803 - boto3's names
        self.asked.append(list(AlarmNames))
        return {
            "MetricAlarms": [
                {"AlarmName": n, "StateValue": self.states[n]} for n in AlarmNames if n in self.states
            ],
            "CompositeAlarms": [],
        }


class Recording:
    def __init__(self):
        self.events: list[tuple[str, dict]] = []

    def record_event(self, kind, now, data):
        self.events.append((kind, dict(data)))


class MustNotMove:
    def __getattr__(self, name):
        raise AssertionError(f"{name}: nothing may move on a refused trigger")


def test_parse_alarm_names_fails_closed():
    assert parse_alarm_names('["a", "b"]') == {"a", "b"}
    for bad in (None, "", "not json", '"a"', "[1]", '[""]'):
        with pytest.raises(AlarmSetInvalid):
            parse_alarm_names(bad)


@pytest.mark.parametrize(
    ("name", "state", "accepted", "why"),
    [
        ("svc-errors-dev", "ALARM", True, ""),
        ("totally-made-up", "ALARM", False, "not an alarm of this environment"),
        ("other-service-errors-dev", "ALARM", False, "not an alarm of this environment"),
        ("svc-errors-dev", "OK", False, "OK now"),
        ("svc-error-rate-dev", "INSUFFICIENT_DATA", False, "INSUFFICIENT_DATA now"),
    ],
)
def test_check_trigger(name, state, accepted, why):
    cw = FakeCloudWatch({"svc-errors-dev": "OK", "other-service-errors-dev": "ALARM", name: state})
    got = check_trigger(name, NAMES, cw)
    assert got.accepted is accepted and why in got.reason
    if name not in NAMES:
        assert cw.asked == []  # refused before asking AWS anything


def test_an_alarm_of_the_set_unknown_to_cloudwatch_is_refused():
    assert not check_trigger("svc-errors-dev", NAMES, FakeCloudWatch({})).accepted


def _run(monkeypatch, capsys, alarm: str, states: dict[str, str]):
    for k, v in LAMBDA_ENV.items():
        monkeypatch.setenv(k, v)
    history = Recording()
    monkeypatch.setattr(rollback_lambda, "DynamoHistory", lambda *a: history)
    monkeypatch.setattr(rollback_lambda, "AliasTraffic", lambda *a: MustNotMove())
    monkeypatch.setattr(
        rollback_lambda, "_clients", lambda: (object(), object(), object(), FakeCloudWatch(states))
    )
    msg = {"AlarmName": alarm, "NewStateValue": "ALARM", "StateChangeTime": "2026-12-07T06:00:00Z"}
    result = rollback_lambda.handler({"Records": [{"Sns": {"Message": json.dumps(msg)}}]})
    return result, history, capsys.readouterr().out


def test_a_crafted_alarm_outside_the_environment_moves_nothing_and_is_recorded(monkeypatch, capsys):
    result, history, out = _run(monkeypatch, capsys, "totally-made-up", {"totally-made-up": "ALARM"})
    assert result["rolled_back"] == []
    assert history.events == [
        (
            "trigger_refused",
            {
                "alarm_name": "totally-made-up",
                "reason": "not an alarm of this environment",
                "state_now": None,
                "message_time": "2026-12-07T06:00:00Z",
            },
        )
    ]
    assert "refused rollback trigger" in out and "nothing moved" in out


def test_an_alarm_of_the_environment_not_in_alarm_now_moves_nothing(monkeypatch, capsys):
    result, history, _ = _run(monkeypatch, capsys, "svc-errors-dev", {"svc-errors-dev": "OK"})
    assert result["rolled_back"] == []
    assert [(k, d["state_now"]) for k, d in history.events] == [("trigger_refused", "OK")]


def test_without_the_alarm_set_the_function_fails_closed(monkeypatch):
    for k, v in LAMBDA_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("STAGEFLOW_ALARM_NAMES")
    monkeypatch.setattr(rollback_lambda, "_clients", lambda: pytest.fail("no client before the settings"))
    with pytest.raises(AlarmSetInvalid):
        rollback_lambda.handler({"AlarmName": "svc-errors-dev", "NewStateValue": "ALARM"})
