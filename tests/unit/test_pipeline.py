"""The pipeline's composition with fakes of the services it is given (Terraform, outputs store,
secret store, packager, security gate, image builder, service checks): no module internals patched."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from stageflow import pipeline
from stageflow.config import load
from stageflow.errors import ExitCode, StageflowError, UnknownEnvironmentError
from stageflow.redact import Secret
from tests.helpers.deploy_fakes import (
    OUTPUTS,
    REPO,
    FakeApplied,
    FakeOutputsStore,
    FakePlan,
    FakeSecretStore,
    FakeTerraform,
    RecordingReporter,
    services,
)


class RecordedPolicy:
    """The plan's policy decision: records that it was checked (between plan and apply)."""

    def __init__(self, calls: list, allowed: bool = True, reason: str = "ok"):
        self.calls, self._allowed, self.reason = calls, allowed, reason

    @property
    def allowed(self) -> bool:
        self.calls.append(("policy",))
        return self._allowed


def test_terraform_stage_applies_the_reviewed_plan_and_terraform_gets_no_secret(tmp_path):
    plan_file = tmp_path / "p.tfplan"
    plan_file.write_bytes(b"holds secrets")
    calls: list = []
    terraform = FakeTerraform(calls, FakePlan(plan_file, policy=RecordedPolicy(calls)))
    secrets = FakeSecretStore({"DB_PASSWORD": Secret("s3cr3t-value")})
    outputs = FakeOutputsStore()
    cfg = tmp_path / "stageflow.toml"
    cfg.write_text(
        '[service]\nname = "svc"\n[environments.staging.secrets]\n'
        'DB_PASSWORD = "secretsmanager:svc/staging/db#password"\n'
    )
    env = load(cfg).env("staging")
    res = pipeline.stage_infrastructure(env, terraform, outputs, secrets)
    assert [c[0] for c in calls] == ["plan", "policy", "apply", "outputs"]
    assert not calls[0][2] and not calls[2][2]  # no TF_VAR_* (issue 24 finding 1: never a value)
    assert not plan_file.exists()  # plan files are deleted after use
    assert res.plan_sha256 == "abc123" and res.outputs is OUTPUTS
    assert outputs.remembered == {"staging": OUTPUTS}  # later commands read these
    assert "2 to create" in res.summary and res.to_json()["applied"] is True
    # the secrets were read once; only their pinned references travel on to the secrets stage
    assert secrets.resolved == ["staging"]
    assert res.secrets == {
        "DB_PASSWORD": "secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:DB_PASSWORD-x?versionId=v1"
    }
    assert "s3cr3t-value" not in repr(res)
    # what restores the release besides commit and plan hash: the inputs' digest, the pinned references
    assert res.release == {
        "infra_digest": "inputs-of-staging",
        "secrets": [
            {
                "name": "DB_PASSWORD",
                "ref": "secretsmanager:svc/staging/db#password",
                "pinned": res.secrets["DB_PASSWORD"],
            }
        ],
    }


def test_terraform_stage_without_changes_reads_outputs_from_the_plan(tmp_path):
    plan_file = tmp_path / "p.tfplan"
    plan_file.write_bytes(b"x")
    raw = {
        "function_name": {"value": "fn", "type": "string"},
        "alias_name": {"value": "live", "type": "string"},
        "alarm_names": {"value": ["a"], "type": ["tuple", ["string"]]},
        "topic_arn": {"value": "arn:aws:sns:us-east-1:1:t", "type": "string"},
        "history_table": {"value": "tbl", "type": "string"},
    }
    # outputs=None: `terraform output` fails the test if it is asked
    terraform = FakeTerraform([], FakePlan(plan_file, planned_outputs=raw), FakeApplied(False), outputs=None)
    env = load(REPO / "stageflow.toml").env("staging")
    res = pipeline.stage_infrastructure(env, terraform, FakeOutputsStore(), FakeSecretStore())
    assert res.outputs.function_name == "fn" and res.to_json()["applied"] is False
    assert res.summary == "terraform: no changes; fn:live"


def test_plan_file_is_deleted_even_when_the_policy_refuses(tmp_path):
    from stageflow.errors import UsageError

    plan_file = tmp_path / "p.tfplan"
    plan_file.write_bytes(b"x")
    calls: list = []
    refused = RecordedPolicy(calls, allowed=False, reason="prod: 1 delete needs --allow-destroy")
    terraform = FakeTerraform(calls, FakePlan(plan_file, env_name="prod", policy=refused))
    env = load(REPO / "stageflow.toml").env("prod")
    with pytest.raises(UsageError):
        pipeline.stage_infrastructure(env, terraform, FakeOutputsStore(), FakeSecretStore())
    assert not plan_file.exists()
    assert [c[0] for c in calls] == ["plan", "policy"]  # nothing applied


def test_unknown_environment_fails_before_any_stage():
    ran: list[str] = []
    with pytest.raises(UnknownEnvironmentError) as exc:
        pipeline.deploy(services(order=ran), "qa")
    assert exc.value.exit_code == ExitCode.USAGE and "dev, staging, prod" in exc.value.one_line()
    assert ran == []


def test_a_failing_stage_is_named_and_keeps_its_exit_code():
    from stageflow.errors import EnvironmentFailure

    ran: list[str] = []
    with pytest.raises(StageflowError) as exc:
        pipeline.deploy(services(order=ran, fail={"image": EnvironmentFailure("engine gone")}), "dev")
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert exc.value.one_line().startswith("stage image failed: engine gone")
    assert ran == ["lint", "unit", "build", "security", "image"]


def test_a_deploy_runs_every_stage_in_order_and_prints_one_line_each(tmp_path):
    plan_file = tmp_path / "p.tfplan"
    plan_file.write_bytes(b"x")
    calls: list = []
    rep = RecordingReporter()
    run = pipeline.deploy(
        services(terraform=FakeTerraform(calls, FakePlan(plan_file, env_name="dev")), reporter=rep), "dev"
    )
    names = ["lint", "unit", "build", "security", "image", "infrastructure", "secrets", "canary"]
    names += ["smoke", "integration", "load"]
    assert [s.name for s in run.stages] == names == rep.stages
    assert [c[0] for c in calls] == ["plan", "apply", "outputs"]
    human, data = rep.results[-1]
    assert human.startswith("deployed sample-api to dev\n") and data["environment"] == "dev"
    assert "nothing to deploy: same code" in human


def test_no_docker_engine_skips_the_image_stage_and_says_so():
    from stageflow.packaging.docker_engine import DockerEngineUnavailable
    from stageflow.services import ImageBuilder

    def no_engine():
        raise DockerEngineUnavailable("cannot reach unix:///x.sock: gone")

    res = pipeline.stage_image("dev", ImageBuilder(engine=no_engine, build=lambda *a: 1 / 0))
    assert res.build is None and res.summary.startswith("skipped: no Docker engine (")
    assert "cannot reach unix:///x.sock: gone; start one: scripts/docker-engine.sh up" in res.summary


def test_ensure_environment_builds_what_is_not_deployed_yet(tmp_path):
    from stageflow.errors import NotDeployed

    plan_file = tmp_path / "p.tfplan"
    plan_file.write_bytes(b"x")
    calls: list = []
    rep = RecordingReporter()
    base = services(terraform=FakeTerraform(calls, FakePlan(plan_file, env_name="dev")), reporter=rep)
    asked: list = []

    def environment(env_name, outputs=None):
        asked.append(outputs)
        if outputs is None:
            raise NotDeployed("dev has not been deployed")
        return SimpleNamespace(env=env_name, outputs=outputs)

    from dataclasses import replace

    ctx = pipeline.ensure_environment(replace(base, environment=environment), "dev")
    assert ctx.outputs is OUTPUTS and asked == [None, OUTPUTS]
    assert rep.stages == ["dev", "build", "infrastructure", "secrets"]  # "dev: not built ... yet" first


def test_deploy_services_are_plain_records_of_the_parts():
    s = services()
    assert isinstance(s.config.root, Path) and callable(s.package) and callable(s.checks.smoke)
