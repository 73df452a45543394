"""Approvals end to end through the real CLI on the shared Terraform-built dev environment in the emulator,
configured with production's approval rule (issue 26): two distinct identities holding the two roles are
needed before the canary; the same identity twice is refused; the step pause's deadline passing rolls the
canary back through `stageflow tick` with nobody answering; a late answer is refused with one line; every
answer is in the record; the approval notice's report is stored in the emulator's S3."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_canary_cli import run, status
from tests.helpers import policy
from tests.helpers.policy import change_code

pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1200)]

REPORTS = "sample-api-approval-reports"

# prod's rule on dev: before the canary and between steps, two people, DevOps and the product owner; a
# step pause ends by itself after one (virtual) minute
PROD_RULE = """
[environments.dev.canary]
steps = [{ weight = 10, bake_minutes = 2 }, { weight = 50, bake_minutes = 2 }, { weight = 100 }]
post_promotion_minutes = 2

[environments.dev.gates]
min_latency_minutes = 2

[environments.dev.approvals]
before_canary = true
between_steps = true
required = 2
roles = ["devops", "product"]
timeout_minutes = 1
"""

APPROVERS = """
[approvers]
alice = ["devops"]
carol = ["devops"]
bob = ["product"]
"""


@pytest.fixture
def prod_like(project, deployed):
    toml = project / "stageflow.toml"
    policy.with_policy(toml, PROD_RULE)
    toml.write_text(toml.read_text() + APPROVERS)
    s3 = deployed.aws.client("s3")
    if REPORTS not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=REPORTS)
    return project


def test_a_prod_like_rehearsal_needs_two_identities_and_its_deadline_rolls_back(prod_like, deployed):
    project, base = prod_like, deployed.base
    env = {"STAGEFLOW_REPORT_BUCKET": REPORTS}

    def cli(*args):
        return run(project, deployed, *args, env=env)

    change_code(project, "two-approvers")
    started = cli("--json", "canary", "dev", "--no-input")
    assert started.returncode == 0, started.stderr[-3000:]
    assert json.loads(started.stdout)["phase"] == "awaiting_approval"
    assert deployed.weights() == {base: 100}  # nothing moves before the approvals
    new = str(deployed.latest_version())

    first = cli("approve", "dev", "--as", "alice", "--reason", "tests and plan look right")
    assert first.returncode == 0, first.stderr
    assert "waiting for 1 more approver(s) of 2; role product" in first.stdout + first.stderr
    twice = cli("approve", "dev", "--as", "alice")
    assert twice.returncode == 2
    (line,) = twice.stderr.strip().splitlines()
    assert "alice already approved this pause; the same identity does not count twice" in line
    same_role = cli("approve", "dev", "--as", "carol")
    assert same_role.returncode == 0 and "role product" in same_role.stdout + same_role.stderr
    assert deployed.weights() == {base: 100}

    met = cli("--json", "approve", "dev", "--as", "bob", "--reason", "product owner ok")
    assert met.returncode == 0, met.stderr[-3000:]
    paused = json.loads(met.stdout)
    assert paused["phase"] == "awaiting_approval" and paused["weight"] == 10 and paused["deadline"]
    assert deployed.weights() == {base: 90, new: 10}

    # nobody answers the step pause: its deadline passes, and tick (no process waiting) rolls back
    ticked = cli("tick", "dev")
    assert ticked.returncode == 0, ticked.stderr
    assert "no approval before the deadline" in ticked.stdout and "rolled back" in ticked.stdout
    assert deployed.weights() == {base: 100}

    late = cli("approve", "dev", "--as", "bob")
    assert late.returncode == 2
    (line,) = late.stderr.strip().splitlines()
    assert "too late" in line and "already ended rolled_back" in line and "deadline" in line
    assert deployed.weights() == {base: 100}

    st = status(project, deployed)
    answers = [(a["who"], a["option"]) for a in st["approvals"]]
    assert answers == [
        ("alice", "approve"),
        ("carol", "approve"),
        ("bob", "approve"),
        ("deadline", "deadline"),
    ], answers
    assert st["approvals"][0]["reason"] == "tests and plan look right"
    assert st["approvals"][0]["roles"] == ["devops"]
    human = run(project, deployed, "status", "dev").stdout
    assert "answer: " in human and "bob (product) approve at before_canary" in human

    # each pause's notice carried the deployment's report, stored in the (emulator's) report bucket
    keys = [o["Key"] for o in deployed.aws.client("s3").list_objects_v2(Bucket=REPORTS).get("Contents", [])]
    mine = [k for k in keys if st["deployment_id"] in k]
    assert {k.rsplit("/", 1)[-1] for k in mine} == {"before_canary.html", "step-0.html"}, keys

    quiet = cli("tick", "dev")
    assert quiet.returncode == 0 and "nothing to do" in quiet.stdout
