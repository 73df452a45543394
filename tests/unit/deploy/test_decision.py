"""Issue 26 item 3: the approval notice carries the decision package — the tests' result, the security
gate's summary, the plan summary, the canary's numbers so far (per function when several) — and links:
the HTML report in the report bucket behind a URL presigned until the pause's deadline, the dashboard."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

from stageflow.deploy import canary
from stageflow.wiring import decision_links
from tests.fakes import FakeArtifact, config_env, fake_context, release_context

PIPELINE = {
    "pipeline": [
        {"stage": "lint", "ok": True, "seconds": 1.0, "summary": "ruff: clean"},
        {"stage": "unit", "ok": True, "seconds": 2.0, "summary": "41 passed, coverage 92%"},
        {"stage": "security", "ok": True, "seconds": 3.0, "summary": "passed (bandit passed)"},
        {"stage": "infrastructure", "ok": True, "seconds": 4.0, "summary": "terraform: 1 to change"},
    ],
    "security": {"passed": True, "scanners": {"bandit": "passed", "trivy": "passed"}},
}


def _links(dep, state):
    return {"report_url": f"https://reports.example/{dep.deployment_id}", "dashboard_url": "https://dash"}


def _notices(ctx):
    return [m for m in ctx.notifier.messages if m.kind == "approval_needed"]


def test_the_approval_notice_carries_the_decision_package():
    ctx = fake_context(config_env("prod"))
    ctx.decision_links = _links
    canary.run_start(ctx, FakeArtifact("code-v2"), extra=PIPELINE, plan_hash="ab" * 32)
    (before,) = _notices(ctx)
    pkg = before.data["decision"]
    assert pkg["tests"] == {"lint": "passed: ruff: clean", "unit": "passed: 41 passed, coverage 92%"}
    assert pkg["security"] == "passed (bandit passed, trivy passed)"
    assert pkg["plan"] == "passed: terraform: 1 to change" and pkg["plan_sha256"] == "ab" * 32
    assert pkg["canary"] == {} and "canary: no traffic yet" in before.text
    assert pkg["report_url"].endswith(before.deployment_id) and pkg["dashboard_url"] == "https://dash"
    assert pkg["deadline"] and pkg["at_deadline"] == "rejected"
    for who in ("alice", "carol"):
        canary.run_cont(ctx, answer=canary.Answer("approve", who))
    step = _notices(ctx)[-1]
    numbers = step.data["decision"]["canary"][""]
    assert numbers and any("p95" in line or "error" in line for line in numbers)  # the gates' own lines
    assert "report: https://reports.example/" in step.text and "then rolled back" in step.text


def test_a_canary_outside_the_pipeline_says_what_was_not_run():
    ctx = fake_context(config_env("prod"))
    canary.run_start(ctx, FakeArtifact("code-v2"))
    pkg = _notices(ctx)[0].data["decision"]
    assert "not run in this deployment" in pkg["tests"]["tests"] and "not run" in pkg["plan"]
    assert pkg["report_url"] is None  # no links wired: none invented


def test_several_functions_have_their_numbers_each():
    from dataclasses import replace

    env = config_env("dev")
    env = replace(env, approvals=replace(env.approvals, between_steps=True))
    env = replace(
        env, canary=replace(env.canary, steps=tuple(replace(s, approval=True) for s in env.canary.steps))
    )
    ctx = release_context(env)
    ctx.publishers["worker"].latest_code = "x"  # both functions get a new version
    canary.run_start(ctx, FakeArtifact("code-v2"))
    numbers = _notices(ctx)[-1].data["decision"]["canary"]
    assert {"api", "worker"} <= set(numbers)


class FakeS3:
    def __init__(self, fail: bool = False):
        self.objects: dict = {}
        self.fail = fail
        self.expires: list[int] = []

    def put_object(self, Bucket, Key, Body, ContentType):  # noqa: N803 - boto3's names
        if self.fail:
            raise RuntimeError("AccessDenied")
        self.objects[(Bucket, Key)] = Body

    def generate_presigned_url(self, op, Params, ExpiresIn):  # noqa: N803
        self.expires.append(ExpiresIn)
        return f"https://{Params['Bucket']}.s3/{Params['Key']}?X-Amz-Expires={ExpiresIn}"


def _factory(s3):
    aws = SimpleNamespace(target=SimpleNamespace(region="eu-west-1"), client=lambda name: s3)
    return SimpleNamespace(aws=aws, config=SimpleNamespace(service=SimpleNamespace(name="svc")))


def test_the_report_is_uploaded_and_presigned_until_the_deadline(monkeypatch):
    monkeypatch.setenv("STAGEFLOW_REPORT_BUCKET", "svc-reports")
    s3 = FakeS3()
    ctx = fake_context(config_env("prod"))
    ctx.decision_links = decision_links(_factory(s3), "prod", ctx)
    canary.run_start(ctx, FakeArtifact("code-v2"))
    pkg = _notices(ctx)[0].data["decision"]
    ((bucket, key),) = s3.objects
    assert (
        bucket == "svc-reports"
        and key.endswith("/before_canary.html")
        and b"<html" in s3.objects[(bucket, key)]
    )
    assert s3.expires == [24 * 3600]  # prod's pause before the canary: its deadline, 24 h away
    assert parse_qs(urlsplit(pkg["report_url"]).query)["X-Amz-Expires"] == [str(24 * 3600)]
    assert pkg["dashboard_url"].endswith("#dashboards:name=svc-prod") and "eu-west-1" in pkg["dashboard_url"]


def test_a_report_that_cannot_be_stored_leaves_a_problem_line_and_the_notice_goes_out(monkeypatch):
    monkeypatch.setenv("STAGEFLOW_REPORT_BUCKET", "svc-reports")
    ctx = fake_context(config_env("prod"))
    ctx.decision_links = decision_links(_factory(FakeS3(fail=True)), "prod", ctx)
    canary.run_start(ctx, FakeArtifact("code-v2"))
    (notice,) = _notices(ctx)
    assert notice.data["decision"]["report_url"] is None
    assert (
        "AccessDenied" in notice.data["decision"]["links_problem"]
        and "links: report not stored" in notice.text
    )
