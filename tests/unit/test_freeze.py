"""Deploy freezes: stageflow.toml windows, freezes a person sets, the guard deploy/canary run first, and
the --emergency override (recorded and notified). Fakes at the history and notifier seams."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stageflow import pipeline
from stageflow.config import load, to_plain
from stageflow.errors import ConfigError, ExitCode, UsageError
from stageflow.freeze import FrozenError, active, parse_until
from stageflow.freeze.guard import check_freeze
from tests.fakes import InMemoryHistory
from tests.helpers.deploy_fakes import services

FRI_4PM = datetime(2026, 12, 11, 16, 0, tzinfo=UTC)  # a Friday
XMAS = datetime(2026, 12, 25, 10, 0, tzinfo=UTC)
WINDOWS = """
[environments.prod.freeze]
windows = [
  { start = 2026-12-21T00:00:00Z, end = "2027-01-04T08:00:00+00:00", reason = "year-end freeze" },
  { days = ["fri"], from = "15:00", to = "24:00", reason = "no Friday-afternoon deploys" },
]
"""


def config(tmp_path: Path, body: str = WINDOWS):
    p = tmp_path / "stageflow.toml"
    p.write_text('[service]\nname = "frz"\n' + body)
    return load(p)


class Notes:
    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)


def test_windows_of_stageflow_toml_freeze_at_their_times_only(tmp_path):
    env = config(tmp_path).env("prod")
    year_end = active("prod", env.freeze, None, XMAS)
    assert year_end.reason == "year-end freeze" and year_end.until == datetime(2027, 1, 4, 8, tzinfo=UTC)
    friday = active("prod", env.freeze, None, FRI_4PM)
    assert friday.until == datetime(2026, 12, 12, tzinfo=UTC)  # "24:00": midnight after
    assert "prod is frozen until 2026-12-12 00:00 UTC: no Friday-afternoon deploys" in friday.line()
    assert active("prod", env.freeze, None, FRI_4PM - timedelta(hours=2)) is None  # 14:00 Friday
    assert active("prod", env.freeze, None, FRI_4PM + timedelta(days=1)) is None  # Saturday
    assert active("dev", config(tmp_path).env("dev").freeze, None, XMAS) is None  # only prod's
    assert json.dumps(to_plain(env.freeze))  # --json config stays JSON


@pytest.mark.parametrize(
    ("window", "key", "says"),
    [
        ('{ start = 2026-12-21T00:00:00Z, end = 2026-12-20T00:00:00Z, reason = "r" }', "end", "after start"),
        ('{ start = 2026-12-21T00:00:00, end = 2026-12-22T00:00:00Z, reason = "r" }', "start", "zone"),
        ('{ start = "christmas", end = 2026-12-22T00:00:00Z, reason = "r" }', "start", "ISO 8601"),
        ("{ start = 2026-12-21T00:00:00Z, end = 2026-12-22T00:00:00Z }", "reason", "needs a reason"),
        ('{ days = ["friday"], from = "15:00", to = "18:00", reason = "r" }', "days", "unknown day"),
        ('{ days = ["fri"], from = "18:00", to = "15:00", reason = "r" }', "to", "after from"),
        ('{ days = ["fri"], from = "3pm", to = "18:00", reason = "r" }', "from", "HH:MM"),
        ('{ days = ["fri"], from = "15:00", to = "18:00", reason = "r", tz = "CET" }', "tz", "unknown key"),
    ],
)
def test_a_bad_window_is_a_config_error_naming_its_key(tmp_path, window, key, says):
    with pytest.raises(ConfigError) as err:
        config(tmp_path, f"[environments.prod.freeze]\nwindows = [{window}]\n")
    assert f"environments.prod.freeze.windows[0].{key}" in str(err.value) and says in str(err.value)
    assert err.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("text", "expect"),
    [("90m", timedelta(minutes=90)), ("4h", timedelta(hours=4)), ("3d", timedelta(days=3))],
)
def test_until_takes_durations(text, expect):
    assert parse_until(text, XMAS) == XMAS + expect


def test_until_takes_a_time_with_a_zone_and_refuses_the_rest():
    assert parse_until("2026-12-25T18:00Z", XMAS) == datetime(2026, 12, 25, 18, tzinfo=UTC)
    for bad, says in [
        ("2026-12-25T18:00", "needs a zone"),
        ("2026-12-24T18:00Z", "not in the future"),
        ("tomorrow", "give a time"),
        ("0h", "give a time"),
        ("400d", "give a time"),
        ("2028-01-01T00:00Z", "more than a year"),
        ("nanh", "give a time"),
    ]:
        with pytest.raises(UsageError, match=says):
            parse_until(bad, XMAS)


def test_a_person_s_freeze_wins_until_it_ends_and_is_lifted_by_unfreeze(tmp_path):
    env, history = config(tmp_path, "").env("dev"), InMemoryHistory("dev")
    history.set_freeze(XMAS + timedelta(hours=4), "incident INC-42 open", "alice@host", XMAS)
    with pytest.raises(FrozenError) as err:
        check_freeze(env, history, XMAS, emergency=None, who="bob", service="frz")
    assert err.value.exit_code == ExitCode.USAGE
    said = "dev is frozen until 2026-12-25 14:00 UTC: incident INC-42 open (stageflow freeze, set by alice@h"
    assert said in str(err.value)
    later = XMAS + timedelta(hours=5)
    assert check_freeze(env, history, later, emergency=None, who="b", service="frz") is None
    history.clear_freeze("resolved", "alice@host", XMAS)
    assert check_freeze(env, history, XMAS, emergency=None, who="bob", service="frz") is None
    assert [e["kind"] for e in history.events()] == ["unfreeze", "freeze"]


def test_an_emergency_deploy_goes_through_recorded_and_notified(tmp_path):
    env, history, notes = config(tmp_path).env("prod"), InMemoryHistory("prod"), Notes()
    frozen = check_freeze(
        env, history, XMAS, emergency="CVE-2026-1234 hotfix", who="carol", service="frz", notifier=notes
    )
    assert frozen.reason == "year-end freeze"
    (event,) = history.events()
    assert event["kind"] == "freeze_override" and event["who"] == "carol"
    assert event["reason"] == "CVE-2026-1234 hotfix" and event["freeze"]["source"] == "config"
    (msg,) = notes.sent
    assert msg.kind == "freeze_override" and "EMERGENCY deploy during a freeze by carol" in msg.text
    with pytest.raises(UsageError, match="needs --reason"):
        check_freeze(env, history, XMAS, emergency="  ", who="carol", service="frz")


def test_an_emergency_outside_a_freeze_records_nothing(tmp_path):
    env, history, notes = config(tmp_path).env("prod"), InMemoryHistory("prod"), Notes()
    thursday = FRI_4PM - timedelta(days=1)
    assert check_freeze(env, history, thursday, emergency="x", who="c", service="f") is None
    assert history.events() == [] and notes.sent == []


def test_a_frozen_deploy_stops_before_any_stage_and_changes_nothing(tmp_path):
    order: list[str] = []

    def frozen(env_name, emergency):
        raise FrozenError(active("prod", config(tmp_path).env("prod").freeze, None, XMAS))

    with pytest.raises(FrozenError):
        pipeline.deploy(services(order=order, freeze_check=frozen), "prod")
    assert order == []


def test_an_emergency_deploy_records_the_override_in_the_deployment(tmp_path):
    order: list[str] = []
    seen: dict = {}
    year_end = active("prod", config(tmp_path).env("prod").freeze, None, XMAS)

    def overridden(env_name, emergency):
        seen["reason"] = emergency
        return year_end

    svc = services(order=order, freeze_check=overridden)
    started = svc.start_canary

    def start(*a, **kw):
        seen["extra"] = kw["extra"]
        return started(*a, **kw)

    svc = type(svc)(**{**svc.__dict__, "start_canary": start})
    pipeline.deploy(svc, "prod", emergency="hotfix")
    assert seen["reason"] == "hotfix"
    assert seen["extra"]["emergency"] == {"reason": "hotfix", "freeze": year_end.to_json()}
