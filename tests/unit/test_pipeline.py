"""The pipeline's composition with fakes at the seams (Terraform API, secrets)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from stageflow import pipeline
from stageflow.errors import ExitCode, StageflowError, UnknownEnvironmentError
from stageflow.factory import Factory
from stageflow.outputs import DeployOutputs
from stageflow.report import Reporter

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FakeSummary:
    def headline(self):
        return "2 to create"


@dataclass
class FakePlan:
    plan_file: Path
    plan_sha256: str = "abc123"
    summary: FakeSummary = FakeSummary()
    env_name: str = "staging"
    root: Path | None = None
    planned_outputs: dict | None = None  # a plan with changes: outputs come from `terraform output`


@dataclass
class FakeApplied:
    applied: bool = True


def test_terraform_stage_applies_the_reviewed_plan_with_secrets_in_env_only(tmp_path, monkeypatch):
    from stageflow.redact import Secret
    from stageflow.secrets import stores
    from stageflow.terraform import api

    plan_file = tmp_path / "p.tfplan"
    plan_file.write_bytes(b"holds secrets")
    calls = []
    monkeypatch.setattr(
        stores, "resolve", lambda env, table, **clients: {"DB_PASSWORD": Secret("s3cr3t-value")}
    )
    monkeypatch.setattr(
        api,
        "plan",
        lambda f, env, extra_env, allow_destroy=False: (
            calls.append(("plan", env, extra_env)) or FakePlan(plan_file)
        ),
    )
    monkeypatch.setattr(api, "enforce_policy", lambda p: calls.append(("policy",)))
    monkeypatch.setattr(
        api, "apply", lambda f, p, extra_env: calls.append(("apply", p.plan_file, extra_env)) or FakeApplied()
    )
    out = DeployOutputs("fn", "live", ("a",), "arn:aws:sns:us-east-1:1:t", "tbl")
    monkeypatch.setattr(api, "outputs", lambda f, env, **kw: out)
    cfg = tmp_path / "stageflow.toml"
    cfg.write_text(
        '[service]\nname = "svc"\n[environments.staging.secrets]\n'
        'DB_PASSWORD = "secretsmanager:svc/staging/db#password"\n'
    )
    f = Factory(config_path=cfg, local=False, reporter=Reporter(quiet=True), state_dir=tmp_path / "state")
    res = pipeline.stage_infrastructure(f, "staging")
    assert [c[0] for c in calls] == ["plan", "policy", "apply"]
    assert calls[0][2] == {"TF_VAR_db_password": "s3cr3t-value"} and calls[2][2] == calls[0][2]
    assert not plan_file.exists()  # the plan file held the secret: gone after the apply
    assert res.plan_sha256 == "abc123" and res.outputs is out
    assert "2 to create" in res.summary and res.to_json()["applied"] is True
    # the secrets were resolved once and travel on to the secrets stage in the result (redacted)
    assert set(res.secrets) == {"DB_PASSWORD"} and "s3cr3t-value" not in repr(res)


def test_terraform_stage_without_changes_reads_outputs_from_the_plan(tmp_path, monkeypatch):
    from stageflow.terraform import api

    plan_file = tmp_path / "p.tfplan"
    plan_file.write_bytes(b"x")
    raw = {
        "function_name": {"value": "fn", "type": "string"},
        "alias_name": {"value": "live", "type": "string"},
        "alarm_names": {"value": ["a"], "type": ["tuple", ["string"]]},
        "topic_arn": {"value": "arn:aws:sns:us-east-1:1:t", "type": "string"},
        "history_table": {"value": "tbl", "type": "string"},
    }
    planned = FakePlan(plan_file, planned_outputs=raw)
    monkeypatch.setattr(api, "plan", lambda f, env, extra_env, allow_destroy=False: planned)
    monkeypatch.setattr(api, "enforce_policy", lambda p: None)
    monkeypatch.setattr(api, "apply", lambda f, p, extra_env: FakeApplied(applied=False))

    def no_output_call(*a, **k):
        raise AssertionError("terraform output must not run after a plan without changes")

    monkeypatch.setattr(api, "outputs", no_output_call)
    f = Factory(
        config_path=REPO / "stageflow.toml", local=False, reporter=Reporter(quiet=True), state_dir=tmp_path
    )
    res = pipeline.stage_infrastructure(f, "staging")
    assert res.outputs.function_name == "fn" and res.to_json()["applied"] is False
    assert res.summary == "terraform: no changes; fn:live"


def test_plan_file_is_deleted_even_when_the_policy_refuses(tmp_path, monkeypatch):
    from stageflow.errors import UsageError
    from stageflow.terraform import api

    plan_file = tmp_path / "p.tfplan"
    plan_file.write_bytes(b"x")
    monkeypatch.setattr(api, "plan", lambda f, env, extra_env, allow_destroy=False: FakePlan(plan_file))

    def refuse(p):
        raise UsageError("prod: 1 delete needs --allow-destroy")

    monkeypatch.setattr(api, "enforce_policy", refuse)
    f = Factory(config_path=REPO / "stageflow.toml", local=False, reporter=Reporter(quiet=True))
    with pytest.raises(UsageError):
        pipeline.stage_infrastructure(f, "prod")
    assert not plan_file.exists()


def test_unknown_environment_fails_before_any_stage(monkeypatch):
    ran = []
    monkeypatch.setattr(pipeline, "stage_build", lambda f: ran.append("build"))
    f = Factory(config_path=REPO / "stageflow.toml", local=True, reporter=Reporter(quiet=True))
    with pytest.raises(UnknownEnvironmentError) as exc:
        pipeline.deploy(f, "qa")
    assert exc.value.exit_code == ExitCode.USAGE and "dev, staging, prod" in exc.value.one_line()
    assert ran == []


def test_a_failing_stage_is_named_and_keeps_its_exit_code(monkeypatch):
    from stageflow.errors import EnvironmentFailure

    def boom(f, env):
        raise EnvironmentFailure("engine gone")

    monkeypatch.setattr(pipeline, "stage_image", boom)
    # the stages before the image (the service's lint and unit tests, build, security) are not the point
    from types import SimpleNamespace

    from stageflow.checks import stages

    done = SimpleNamespace(summary="ok", to_json=dict, artifact=None)
    for mod, name in (
        (stages, "stage_service_lint"),
        (stages, "stage_service_unit"),
        (pipeline, "stage_build"),
        (pipeline, "stage_security"),
    ):
        monkeypatch.setattr(mod, name, lambda *a, **k: done)
    f = Factory(config_path=REPO / "stageflow.toml", local=True, reporter=Reporter(quiet=True))
    with pytest.raises(StageflowError) as exc:
        pipeline.deploy(f, "dev")
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert exc.value.one_line().startswith("stage image failed: engine gone")
