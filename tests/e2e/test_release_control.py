"""Release control end to end through the real CLI on the shared Terraform-built dev environment in the
emulator: a freeze refuses deploy and canary before anything changes, an emergency deploy goes through
recorded, and a rollback is never frozen."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_canary_cli import run, status
from tests.helpers import policy
from tests.helpers.policy import FAST_POLICY, change_code

pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1200)]


@pytest.fixture
def fast(project):
    policy.with_policy(project / "stageflow.toml", FAST_POLICY)
    return project


def test_a_freeze_refuses_deploys_lets_an_emergency_through_and_never_a_rollback(fast, deployed):
    project = fast
    base, before = deployed.base, deployed.latest_version()
    r = run(project, deployed, "freeze", "dev", "--until", "2h", "--reason", "INC-7 under investigation")
    assert r.returncode == 0, r.stderr
    assert "dev: frozen until" in r.stdout and "INC-7 under investigation" in r.stdout
    st = status(project, deployed)
    assert st["freeze"]["reason"] == "INC-7 under investigation" and st["freeze"]["source"] == "manual"

    change_code(project, "frozen-change")
    for argv in (("canary", "dev"), ("deploy", "dev")):
        refused = run(project, deployed, *argv)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "refused: dev is frozen until" in refused.stderr and "INC-7" in refused.stderr
        assert "--emergency --reason" in refused.stderr
        assert "stage " not in refused.stderr  # no stage ran
    assert deployed.latest_version() == before and deployed.weights() == {base: 100}
    assert status(project, deployed)["locked_by"] is None

    bad = run(project, deployed, "canary", "dev", "--emergency")
    assert bad.returncode == 2 and "--emergency needs --reason" in bad.stderr
    assert deployed.latest_version() == before

    go = run(project, deployed, "--json", "canary", "dev", "--emergency", "--reason", "CVE hotfix")
    assert go.returncode == 0, go.stderr[-3000:]
    new = str(before + 1)
    assert json.loads(go.stdout)["phase"] == "succeeded" and deployed.weights() == {new: 100}
    hist = json.loads(run(project, deployed, "--json", "history", "dev").stdout)
    assert hist["deployments"][0]["extra"]["emergency"]["reason"] == "CVE hotfix"
    assert hist["deployments"][0]["extra"]["emergency"]["freeze"]["reason"] == "INC-7 under investigation"
    kinds = [e["kind"] for e in hist["events"]]
    assert "freeze_override" in kinds and "freeze" in kinds

    rb = run(project, deployed, "rollback", "dev", "--to", base, "--reason", "frozen; rollback is allowed")
    assert rb.returncode == 0, rb.stderr
    assert deployed.weights() == {base: 100}

    lifted = run(project, deployed, "unfreeze", "dev", "--reason", "INC-7 resolved")
    assert lifted.returncode == 0 and "freeze lifted (INC-7 under investigation)" in lifted.stdout
    assert status(project, deployed)["freeze"] is None


def test_a_rehearsed_rollback_opens_an_incident_with_a_post_mortem_draft(fast, deployed, tmp_path):
    scenario = tmp_path / "bad.json"
    scenario.write_text(
        json.dumps(
            {
                "name": "canary fails a fifth of requests",
                "seed": 5,
                "traffic_per_minute": 600,
                "stable": {"error_rate": 0.003, "latency_ms": {"median": 100, "p95": 400}},
                "canary": {"error_rate": 0.2, "latency_ms": {"median": 100, "p95": 400}},
                "expect": "rollback",
            }
        )
    )
    change_code(fast, "incident-bad-at-10")
    r = run(fast, deployed, "canary", "dev", "--scenario", str(scenario))
    assert r.returncode == 4, r.stderr
    dep_id = status(fast, deployed)["deployment_id"]
    listed = run(fast, deployed, "--json", "incidents", "dev")
    assert listed.returncode == 0, listed.stderr
    inc = json.loads(listed.stdout)["incidents"][0]
    assert inc["key"] == dep_id and inc["trigger"] == "canary" and inc["status"] == "restored"
    assert inc["restored_version"] == deployed.base and inc["time_to_restore_s"] > 0
    assert any(res["outcome"] == "fail" for res in inc["verdict"]["results"])
    human = run(fast, deployed, "incidents", "dev")
    assert dep_id in human.stdout and "post-mortem due" in human.stdout
    out = tmp_path / "postmortem.md"
    pm = run(fast, deployed, "incidents", "dev", "--postmortem", dep_id, "--out", str(out))
    assert pm.returncode == 0, pm.stderr
    text = out.read_text()
    assert text.startswith("# Post-mortem (draft): sample-api dev — rollback of v")
    assert "## Timeline (UTC)" in text and "error_rate (absolute)" in text and "| fail |" in text
    assert "Time to restore:" in text and "## Action items" in text
    missing = run(fast, deployed, "incidents", "dev", "--postmortem", "no-such-incident")
    assert missing.returncode == 2 and "no incident no-such-incident in dev" in missing.stderr
    dora = json.loads(run(fast, deployed, "--json", "dora", "dev").stdout)
    ttr = dora["figures"]["time_to_restore"]
    assert "(incident records)" in ttr["detail"], ttr
