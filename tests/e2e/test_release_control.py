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
