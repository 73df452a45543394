"""``stageflow rollback dev --infra`` end to end on the session's shared Terraform-built dev environment
in the emulator (no environment of its own), through the real CLI, real git and real Terraform. A bad
release changes Terraform variables of dev in the project's stageflow.toml (log retention 14 -> 7 days,
X-Ray on: two IAM policy attachments created) and marks dev protected, committed and deployed with a
code change. ``rollback dev --infra`` is refused (exit 2): restoring would delete the attachments and
dev is protected — nothing changes. With ``--allow-destroy`` the log group's retention is the last good
release's again, the attachments are gone (both read from the emulator) and the alias is on the last
good version. The environment ends as it began (retention 14, no X-Ray), for the session's other
tests."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import commit_all
from tests.e2e.test_canary_cli import run
from tests.helpers import policy
from tests.helpers.policy import FAST_POLICY, change_code

pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1800)]


def commit(project, message: str) -> str:
    return commit_all(project, message)


def retention(deployed) -> int:
    name = f"/aws/lambda/{deployed.function}"
    groups = deployed.aws.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return next(g["retentionInDays"] for g in groups if g["logGroupName"] == name)


XRAY_POLICY = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"


def xray_attached(deployed) -> list[str]:
    """The X-Ray policy attachments of the service function's role (X-Ray on: one)."""
    role = deployed.lam().get_function_configuration(FunctionName=deployed.function)["Role"].rsplit("/", 1)[1]
    attached = deployed.aws.client("iam").list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    return [p["PolicyArn"] for p in attached if "XRay" in p["PolicyArn"]]


def events(project, deployed) -> list[dict]:
    r = run(project, deployed, "--json", "history", "dev", "--limit", "20")
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)["events"]


def test_rollback_infra_restores_the_last_good_releases_infrastructure_and_traffic(project, deployed):
    toml = project / "stageflow.toml"
    policy.with_policy(toml, FAST_POLICY)
    change_code(project, "infra-good")
    good_commit = commit(project, "good release: dev keeps its logs 14 days, no X-Ray")
    r = run(project, deployed, "--json", "deploy", "dev", timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    good = str(deployed.latest_version())
    assert deployed.weights() == {good: 100} and retention(deployed) == 14 and xray_attached(deployed) == []
    hist = json.loads(run(project, deployed, "--json", "history", "dev").stdout)
    rec = hist["deployments"][0]
    assert rec["version"] == good and good_commit.startswith(rec["commit"])
    assert len(rec["extra"]["release"]["infra_digest"]) == 64 and rec["extra"]["release"]["secrets"] == []

    text = toml.read_text().replace("log_retention_days = 14", "log_retention_days = 7", 1)
    toml.write_text(text.replace("xray = false", "xray = true\nprotected = true", 1))
    change_code(project, "infra-bad")
    bad_commit = commit(project, "bad release: dev keeps its logs 7 days, X-Ray on, protected")
    r = run(project, deployed, "--json", "deploy", "dev", timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    bad = str(deployed.latest_version())
    assert bad != good and deployed.weights() == {bad: 100} and retention(deployed) == 7
    assert xray_attached(deployed) == [XRAY_POLICY]

    # protected: re-applying the good release deletes the attachments -> refused, nothing changed
    before = events(project, deployed)
    refused = run(project, deployed, "rollback", "dev", "--infra", "--reason", "retention broke", timeout=900)
    assert refused.returncode == 2, refused.stderr[-3000:]
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("stageflow: error: the plan for protected environment dev has 2 delete(s)"), line
    assert "--allow-destroy" in line
    assert deployed.weights() == {bad: 100} and retention(deployed) == 7
    assert xray_attached(deployed) == [XRAY_POLICY]
    assert events(project, deployed) == before  # no rollback, no infra_rollback recorded

    rb = run(
        project,
        deployed,
        "--json",
        "rollback",
        "dev",
        "--infra",
        "--allow-destroy",
        "--reason",
        "retention broke",
        timeout=900,
    )
    assert rb.returncode == 0, rb.stderr[-4000:]
    out = json.loads(rb.stdout)
    assert good_commit.startswith(out["commit"]) and out["infrastructure"]["applied"] is True
    assert retention(deployed) == 14 and xray_attached(deployed) == []  # the last good release's again
    assert deployed.weights() == {good: 100}  # and so is the traffic
    assert "infrastructure of commit" in rb.stderr and "2 to delete" in rb.stderr
    head = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, check=True)
    assert head.stdout.decode().strip() == bad_commit  # the work tree was not checked out elsewhere
    dirty = subprocess.run(["git", "-C", str(project), "status", "--porcelain"], capture_output=True)
    assert dirty.stdout == b""  # nor changed

    ev = next(e for e in events(project, deployed) if e["kind"] == "infra_rollback")
    assert ev["to_version"] == good and ev["applied"] is True and ev["commit"] == out["commit"]
    assert ev["reason"] == "retention broke" and ev["infra_digest"] == rec["extra"]["release"]["infra_digest"]
    assert not list((deployed.state / "rollback-infra").glob("*"))  # the temporary tree is gone

    # again: the restored commit plans no changes (always planned: the records cannot see a console
    # change), traffic only
    again = run(project, deployed, "--json", "rollback", "dev", "--infra", timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["infrastructure"]["applied"] is False
    assert "no infrastructure change to roll back" in again.stderr and retention(deployed) == 14
