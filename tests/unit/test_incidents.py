"""Incidents: opened by every rollback that moved traffic, their time to restore, the post-mortem draft,
and DORA's time to restore from them (fakes and the virtual clock; the e2e test runs the real CLI)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stageflow.deploy import canary
from stageflow.deploy.records import Deployment, State, Transition, VerdictRecord
from stageflow.dora.compute import compute
from stageflow.errors import ReleaseRejected
from stageflow.incidents import Incident, from_deployment, from_rollback
from stageflow.incidents.postmortem import render
from stageflow.isotime import iso
from tests.fakes import T0, FakeArtifact, ScriptedSource, config_env, failing_canary, fake_context

BAD_RESULT = {
    "metric": "error_rate",
    "kind": "absolute",
    "outcome": "fail",
    "observed": 0.2,
    "baseline": 0.003,
    "threshold": 0.01,
    "canary_count": 60,
    "stable_count": 540,
}


def rolled_back(minutes_of_traffic: float = 4) -> Deployment:
    start = T0 + timedelta(minutes=1)
    end = start + timedelta(minutes=minutes_of_traffic)
    return Deployment(
        deployment_id="20260101T000000Z-aaaaaa",
        environment="prod",
        service="svc",
        version="8",
        previous_version="7",
        status="rolled_back",
        phase="rolled_back",
        started_at=iso(T0),
        who="alice",
        ended_at=iso(end),
        state=State(phase="rolled_back", step=0, canary_start=iso(start), reason="error rate 20.00% > 1.00%"),
        transitions=(
            Transition(iso(start), "pending", "baking", "shifted", 0, 10),
            Transition(iso(end), "baking", "rolled_back", "error rate 20.00% > 1.00%", 0, 0),
        ),
        verdicts=(
            VerdictRecord(
                iso(end), "rollback", "baking", 0, 10, reasons=("error rate",), results=(BAD_RESULT,)
            ),
        ),
    )


def test_a_canary_rollback_is_an_incident_with_its_numbers_and_time_to_restore():
    dep = rolled_back(4)
    inc = from_deployment(dep, T0 + timedelta(minutes=5))
    assert inc.key == dep.deployment_id and inc.trigger == "canary" and inc.status == "restored"
    assert inc.bad_version == "8" and inc.restored_version == "7"
    assert inc.time_to_restore_s == 240.0
    assert inc.verdict["results"][0]["observed"] == 0.2
    assert inc.postmortem_due.startswith("2026-01-06")  # five days later
    assert Incident.from_json(inc.to_json()) == inc
    failed = from_deployment(
        Deployment(**{**dep.__dict__, "phase": "failed", "status": "failed"}), T0 + timedelta(minutes=5)
    )
    assert failed.status == "restore_failed" and failed.time_to_restore_s is None


def test_an_on_call_rollback_after_promotion_counts_from_the_bad_version_s_first_traffic():
    dep = rolled_back(4)
    promoted = Deployment(**{**dep.__dict__, "status": "succeeded", "phase": "succeeded"})
    inc = from_rollback(
        environment="prod",
        service="svc",
        now=T0 + timedelta(hours=1, minutes=1),
        trigger="alarm",
        reason="svc-prod-errors in ALARM",
        who="alarm",
        from_weights={"8": 100},
        to_version="7",
        bad=promoted,
    )
    assert inc.key.startswith("20260101T010100Z") and inc.bad_version == "8" and inc.trigger == "alarm"
    assert inc.time_to_restore_s == 3600.0 and inc.deployment_id == ""


def test_the_post_mortem_draft_holds_the_timeline_numbers_and_prompts():
    dep = rolled_back(4)
    text = render(from_deployment(dep, T0 + timedelta(minutes=5)), dep)
    assert text.startswith("# Post-mortem (draft): svc prod — rollback of v8")
    assert "| error_rate (absolute) | 0.2 | 0.003 | 0.01 | 60 / 540 | fail |" in text
    assert "Time to restore: 4.0 min" in text
    timeline = text.split("## Timeline (UTC)")[1].split("##")[0]
    assert timeline.index("v8 first took traffic") < timeline.index("rollback (canary)")
    assert "## Root cause" in text and "- [ ] _owner" in text


def test_a_canary_that_rolls_back_on_the_fakes_opens_one_incident():
    ctx = fake_context(config_env("dev"), source=ScriptedSource(failing_canary(["2"])))
    with pytest.raises(ReleaseRejected):
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert ctx.notifier.kinds[-2:] == ["rolled_back", "incident"]
    (inc,) = ctx.history.incidents()
    assert inc["trigger"] == "canary" and inc["status"] == "restored" and inc["bad_version"] == "2"


def test_dora_time_to_restore_comes_from_incidents_when_there_are_any():
    dep = rolled_back(4)
    inc = from_deployment(dep, T0 + timedelta(minutes=5)).to_json()
    until = T0 + timedelta(days=1)
    with_incidents = compute("prod", [dep], [], until=until, days=30, incidents=[inc])
    ttr = with_incidents.to_json()["figures"]["time_to_restore"]
    assert ttr["value"] == 4.0 and "(incident records)" in ttr["detail"]
    without = compute("prod", [dep], [], until=until, days=30).to_json()["figures"]["time_to_restore"]
    assert "(incident records)" not in without["detail"]
