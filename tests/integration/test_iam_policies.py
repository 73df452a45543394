"""Least privilege, proven two ways (issue 24 item 3, docs/security.md).

1. Every IAM policy Terraform would create: real Terraform plans every root (dev, staging, prod, the
   pipeline root, the state root) on the emulator; ``terraform show -json`` of each is walked
   (tests/helpers/iam_policies.py) and any escalation path fails the test.
2. IAM enforced on the emulator (moto's access control, with stageflow.local.iam_enforcement): the
   rollback function's zip runs with credentials of its own Terraform-created role and rolls back, and
   fails with AccessDenied once one permission it needs is removed; the deploy path (publish, shift,
   history) runs with the deployer role's credentials (its policies taken from the pipeline root's
   plan); the deployer's attempt to rewrite its own policy is denied.

Enforcement is switched on (``POST /moto-api/reset-auth 0``) only inside these tests, on the session's
Terraform-built dev environment, and always switched off again.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import REPO, make_project, require
from tests.helpers.iam_policies import (
    UNKNOWN,
    auth,
    boundary_documents,
    enforcing,
    escalations,
    roles_of_plan,
)

pytestmark = [pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1800)]

ROOTS = {  # name -> (environment whose settings plan it, root override)
    "dev": ("dev", None),
    "staging": ("staging", None),
    "prod": ("prod", None),
    "pipeline": ("dev", "infrastructure/pipeline"),
    "state": ("dev", "infrastructure/bootstrap"),
}
SECRET_NAMES = ["sample-api/prod/database", "sample-api/prod/api-token"]
PARAMETER_NAMES = ["/sample-api/prod/api/host"]
ACCOUNT = "123456789012"
DEPLOYER = "sample-api-codebuild-deployer"


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict[str, dict]:
    """``terraform show -json`` of a plan of every root, made by real Terraform on an emulator of the
    module's own (nothing is applied: plans only)."""
    from stageflow import pipeline
    from stageflow.factory import Factory
    from stageflow.local.emulator import Emulator
    from stageflow.report import Reporter

    # Developers iterating on these tests may keep the plans across runs: STAGEFLOW_TEST_KEEP_IAM_PLANS=DIR
    # (CI never sets it; delete DIR after changing any .tf file).
    keep = os.environ.get("STAGEFLOW_TEST_KEEP_IAM_PLANS")
    if keep and all((Path(keep) / f"{name}.json").is_file() for name in ROOTS):
        yield {name: json.loads((Path(keep) / f"{name}.json").read_text()) for name in ROOTS}
        return
    mirror = REPO / ".tools" / "terraform" / "mirror" / "registry.terraform.io" / "hashicorp" / "aws"
    require(any(mirror.glob("*/*/terraform-provider-aws_*")), "hashicorp/aws provider is not in the mirror")
    project = make_project(tmp_path_factory.mktemp("iam") / "project")
    # the pipeline as a service with secrets configures it (docs/secrets.md's example references)
    (project / "infrastructure" / "pipeline" / "secrets.auto.tfvars").write_text(
        f"deploy_secret_names = {json.dumps(SECRET_NAMES)}\n"
        f"deploy_parameter_names = {json.dumps(PARAMETER_NAMES)}\n"
    )
    state = tmp_path_factory.mktemp("iam-state")
    emu = Emulator(state)
    emu.up()
    try:
        f = Factory(
            config_path=project / "stageflow.toml",
            local=True,
            state_dir=state,
            reporter=Reporter(quiet=True),
            command="plan",
        )
        pipeline.stage_build(f.package)  # the packages the environment roots read
        tfs = f.terraform
        shown = {}
        for name, (env, root) in ROOTS.items():
            root_path = project / root if root else None
            result = tfs.plan(env, root=root_path)
            target = tfs.resolve_target(env, root=root_path)
            with tfs.provider_override(target):
                shown[name] = tfs.open(target).show_plan(str(result.plan_file))
            result.plan_file.unlink(missing_ok=True)
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                (Path(keep) / f"{name}.json").write_text(json.dumps(shown[name]))
        yield shown
    finally:
        emu.down()


def _all_roles(plans):
    roles, problems, boundaries = [], [], {}
    for name, plan in plans.items():
        r, p = roles_of_plan(plan, name)
        roles += r
        problems += p
        boundaries.update(boundary_documents(plan))
    return roles, problems, boundaries


def test_no_role_of_any_root_can_escalate(plans):
    """Fails on main before issue 24 (the deployer's iam:PutRolePolicy, UpdateAssumeRolePolicy,
    AttachRolePolicy and PassRole on role/sample-api-*, a pattern its own name matches)."""
    roles, problems, boundaries = _all_roles(plans)
    names = {r.name for r in roles}
    # the walk saw every role (a vacuous pass is impossible)
    assert names >= {
        DEPLOYER,
        "sample-api-codebuild-builder",
        "sample-api-codebuild-pull-request",
        "sample-api-pipeline",
        "sample-api-pipeline-events",
        *(f"sample-api-{k}-{e}" for k in ("function", "rollback") for e in ("dev", "staging", "prod")),
    }, names
    assert all(r.statements for r in roles), [r.name for r in roles if not r.statements]
    assert "sample-api-function-boundary" in boundaries
    assert problems == []
    assert escalations(roles, boundaries) == []


def _role(plans, name):
    roles, _, _ = _all_roles(plans)
    return next(r for r in roles if r.name == name)


def _allowed_on(role, action: str, arn: str) -> bool:
    import fnmatch

    allowed = any(
        st.allows(action) and any(r == UNKNOWN or fnmatch.fnmatchcase(arn, r) for r in st.resources)
        for st in role.statements
    )
    denied = any(
        st.effect == "Deny"
        and any(fnmatch.fnmatchcase(action, a) for a in st.actions)
        and any(fnmatch.fnmatchcase(arn, r) for r in st.resources)
        for st in role.statements
    )
    return allowed and not denied


def test_the_pull_request_role_writes_nothing_the_deployer_reads_or_runs(plans):
    bucket = f"arn:aws:s3:::sample-api-pipeline-artifacts-{ACCOUNT}-us-east-1"
    pr, builder, deployer = (
        _role(plans, n)
        for n in ("sample-api-codebuild-pull-request", "sample-api-codebuild-builder", DEPLOYER)
    )
    for key in ("cache/deploy/x.tgz", "cache/rollback/x.tgz", "sample-api-pipeline/source/abc.zip", "x"):
        assert not _allowed_on(pr, "s3:PutObject", f"{bucket}/{key}"), key
        assert not _allowed_on(pr, "s3:GetObject", f"{bucket}/{key}"), key
    assert _allowed_on(pr, "s3:PutObject", f"{bucket}/cache/pull-request/x.tgz")
    for key in ("cache/deploy/x.tgz", "cache/rollback/x.tgz"):
        assert not _allowed_on(builder, "s3:PutObject", f"{bucket}/{key}"), key
        assert _allowed_on(deployer, "s3:PutObject", f"{bucket}/{key}"), key


def test_function_configuration_is_readable_only_by_the_roles_that_need_it(plans):
    roles, _, _ = _all_roles(plans)
    prod = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:sample-api-prod"
    readers = {r.name for r in roles if _allowed_on(r, "lambda:GetFunctionConfiguration", prod)}
    assert readers == {DEPLOYER, "sample-api-rollback-prod"}, readers
    dev = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:sample-api-dev"
    assert not _allowed_on(
        _role(plans, "sample-api-codebuild-builder"), "lambda:GetFunctionConfiguration", dev
    )
    builder = _role(plans, "sample-api-codebuild-builder")
    assert _allowed_on(builder, "lambda:InvokeFunction", f"{dev}:live")
    # a service of several functions (<service>-<function>-<env>): its tested functions, never prod's
    fn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:sample-api"
    assert _allowed_on(builder, "lambda:InvokeFunction", f"{fn}-worker-staging:live")
    assert not _allowed_on(builder, "lambda:InvokeFunction", f"{fn}-worker-prod:live")
    assert not _allowed_on(builder, "lambda:InvokeFunction", f"{fn}-prod:live")


def test_the_deployer_reads_exactly_the_referenced_secrets(plans):
    deployer = _role(plans, DEPLOYER)
    secret_resources = sorted(
        r for st in deployer.statements if st.allows("secretsmanager:GetSecretValue") for r in st.resources
    )
    assert secret_resources == sorted(
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{n}-??????" for n in SECRET_NAMES
    )
    param = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/sample-api/prod/api/host"
    assert _allowed_on(deployer, "ssm:GetParameter", param)
    assert not _allowed_on(deployer, "ssm:GetParameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/other/x")
    real = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:sample-api/prod/database-AbCdEf"
    assert _allowed_on(deployer, "secretsmanager:GetSecretValue", real)
    other = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:sample-api/prod/databaseX-AbCdEf"
    assert not _allowed_on(deployer, "secretsmanager:GetSecretValue", other)
    assert not _allowed_on(
        _role(plans, "sample-api-codebuild-builder"), "secretsmanager:GetSecretValue", real
    )


# -- IAM enforced on the emulator ---------------------------------------------------------------------
def _document(statements) -> str:
    out = []
    for st in statements:
        resources = [r for r in st.resources if r != UNKNOWN]
        if not resources:
            continue  # a pipeline resource the emulator does not have (bucket, key, connection)
        cond: dict = {}
        for key, values in st.conditions.items():
            test, variable = key.split(" ", 1)
            cond.setdefault(test, {})[variable] = values
        item = {"Effect": st.effect, "Action": st.actions, "Resource": resources}
        if st.sid:
            item["Sid"] = st.sid
        if cond:
            item["Condition"] = cond
        out.append(item)
    return json.dumps({"Version": "2012-10-17", "Statement": out})


class Principals:
    def __init__(self, deployed, plans):
        self.endpoint = deployed.endpoint
        self.admin = deployed.aws
        iam = self.admin.client("iam")
        deployer = _role(plans, DEPLOYER)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "codebuild.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        with contextlib.suppress(iam.exceptions.NoSuchEntityException):
            self._delete_deployer()  # left by an interrupted run on a kept environment
        iam.create_role(RoleName=DEPLOYER, AssumeRolePolicyDocument=json.dumps(trust))
        by_source: dict[str, list] = {}
        for st in deployer.statements:
            by_source.setdefault(st.source, []).append(st)
        for i, sts in enumerate(by_source.values()):
            doc = _document(sts)
            if json.loads(doc)["Statement"]:  # (a policy only on pipeline resources: nothing here)
                iam.put_role_policy(RoleName=DEPLOYER, PolicyName=f"from-plan-{i}", PolicyDocument=doc)
        self.rollback_role = deployed.raw_outputs.get("rollback_role_name") or "sample-api-rollback-dev"
        self.rollback_policy = iam.get_role_policy(RoleName=self.rollback_role, PolicyName=self.rollback_role)

    def credentials(self, role: str) -> dict[str, str]:
        """sts:AssumeRole of ``role`` (before enforcement: moto cannot check a service principal's trust)."""
        sts = self.admin.client("sts")
        c = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName="iam-test")
        c = c["Credentials"]
        return {
            "aws_access_key_id": c["AccessKeyId"],
            "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"],
        }

    def client(self, service: str, creds: dict[str, str]):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}),
            **creds,
        )

    def restore_rollback_policy(self) -> None:
        self.admin.client("iam").put_role_policy(
            RoleName=self.rollback_role,
            PolicyName=self.rollback_role,
            PolicyDocument=json.dumps(self.rollback_policy["PolicyDocument"]),
        )

    def _delete_deployer(self) -> None:
        iam = self.admin.client("iam")
        for name in iam.list_role_policies(RoleName=DEPLOYER)["PolicyNames"]:
            iam.delete_role_policy(RoleName=DEPLOYER, PolicyName=name)
        iam.delete_role(RoleName=DEPLOYER)

    def close(self) -> None:
        self._delete_deployer()
        self.restore_rollback_policy()


@pytest.fixture(scope="module")
def principals(deployed_env, plans):
    p = Principals(deployed_env, plans)
    try:
        yield p
    finally:
        auth(deployed_env.endpoint, "inf")
        p.close()


def _rollback_zip_run(deployed, creds: dict[str, str], tmp_path: Path, event: dict):
    """How to run the rollback zip Terraform deployed as the Lambda runtime would, with ``creds`` (read
    before enforcement: the test's admin calls use the emulator's dummy credentials)."""
    from tests.e2e.test_rollback_function import BOTO3_DEPS, DRIVER, extract

    site = Path(boto3.__file__).resolve().parents[1]
    only = tmp_path / "boto3-only"
    only.mkdir()
    for name in BOTO3_DEPS:
        if (site / name).exists():
            (only / name).symlink_to(site / name)
    cfg = deployed.aws.client("lambda").get_function_configuration(
        FunctionName=deployed.raw_outputs["rollback_function_name"]
    )
    code = extract(deployed.project / "build" / "lambda" / "stageflow-rollback.zip", tmp_path / "task")
    (tmp_path / "driver.py").write_text(DRIVER)
    (tmp_path / "event.json").write_text(json.dumps(event))
    env = dict(cfg["Environment"]["Variables"])
    env.update(
        AWS_ENDPOINT_URL=deployed.endpoint,
        AWS_ACCESS_KEY_ID=creds["aws_access_key_id"],
        AWS_SECRET_ACCESS_KEY=creds["aws_secret_access_key"],
        AWS_SESSION_TOKEN=creds["aws_session_token"],
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent/config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials",
        AWS_MAX_ATTEMPTS="1",
    )
    argv = [sys.executable, "-I", "-S", str(tmp_path / "driver.py"), str(code), str(only), cfg["Handler"]]
    argv.append(str(tmp_path / "event.json"))

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    return run


def _canary_in_flight(deployed) -> tuple[str, str]:
    """A bad version at 10 % beside a good one, recorded in flight with the lock held (as admin)."""
    from tests.e2e.test_rollback_function import history_of, record, ship_versions

    deployed.clear_history()
    out = deployed.raw_outputs
    good, bad = ship_versions(deployed, deployed.aws)
    deployed.lam().update_alias(
        FunctionName=out["function_name"],
        Name=out["alias_name"],
        FunctionVersion=good,
        RoutingConfig={"AdditionalVersionWeights": {bad: 0.1}},
    )
    history = history_of(deployed, deployed.aws)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    record(history, f"{stamp}Z-aaaaaa", good, "succeeded", deployed.base)
    flight = record(history, f"{stamp}Z-bbbbbb", bad, "in_progress", good)
    history.acquire_lock(flight.deployment_id, "tests", datetime.now(UTC))
    return good, bad


def test_the_rollback_function_rolls_back_under_its_own_role(deployed, principals, tmp_path):
    from tests.e2e.test_rollback_function import alarm_in, alarm_sns_event

    out = deployed.raw_outputs
    good, _ = _canary_in_flight(deployed)
    event = alarm_sns_event(deployed.aws, out["alarm_names"][0], out["topic_arn"])
    run = _rollback_zip_run(deployed, principals.credentials(principals.rollback_role), tmp_path, event)
    with alarm_in(deployed.aws, out["alarm_names"][0]), enforcing(deployed.endpoint):  # a real alarm
        r = run()
    assert r.returncode == 0, r.stderr[-3000:]
    alias = deployed.lam().get_alias(FunctionName=out["function_name"], Name=out["alias_name"])
    assert alias["FunctionVersion"] == good
    assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")


def test_without_update_alias_the_rollback_function_fails_with_access_denied(deployed, principals, tmp_path):
    from tests.e2e.test_rollback_function import alarm_in, alarm_sns_event

    out = deployed.raw_outputs
    good, bad = _canary_in_flight(deployed)
    event = alarm_sns_event(deployed.aws, out["alarm_names"][0], out["topic_arn"])
    doc = json.loads(json.dumps(principals.rollback_policy["PolicyDocument"]))
    for st in doc["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        st["Action"] = [a for a in actions if a != "lambda:UpdateAlias"]
    doc["Statement"] = [st for st in doc["Statement"] if st["Action"]]
    run = _rollback_zip_run(deployed, principals.credentials(principals.rollback_role), tmp_path, event)
    principals.admin.client("iam").put_role_policy(
        RoleName=principals.rollback_role, PolicyName=principals.rollback_role, PolicyDocument=json.dumps(doc)
    )
    try:
        with alarm_in(deployed.aws, out["alarm_names"][0]), enforcing(deployed.endpoint):
            r = run()
    finally:
        principals.restore_rollback_policy()
    assert r.returncode != 0
    assert "not authorized to perform: lambda:UpdateAlias" in r.stdout + r.stderr, (r.stdout + r.stderr)[
        -3000:
    ]
    alias = deployed.lam().get_alias(FunctionName=out["function_name"], Name=out["alias_name"])
    assert alias["FunctionVersion"] == good  # nothing moved
    assert (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") == {bad: 0.1}


def test_the_deployer_role_publishes_shifts_and_records(deployed, principals):
    from stageflow.deploy.publish import LambdaPublisher
    from stageflow.deploy.traffic import AliasTraffic
    from stageflow.packaging.lambda_zip import LambdaZip, with_files
    from tests.e2e.test_rollback_function import history_of, record

    out = deployed.raw_outputs
    creds = principals.credentials(DEPLOYER)
    lam = principals.client("lambda", creds)
    ddb = principals.client("dynamodb", creds)
    cw = principals.client("cloudwatch", creds)
    base = (deployed.project / "build" / "lambda" / "sample-api.zip").read_bytes()
    artifact = with_files(
        LambdaZip(base, "", "", 0), {"deployer.txt": datetime.now(UTC).isoformat().encode()}
    )
    deployed.clear_history()
    from stageflow.history import DynamoHistory

    with enforcing(deployed.endpoint):
        stable = lam.get_alias(FunctionName=out["function_name"], Name=out["alias_name"])["FunctionVersion"]
        published = LambdaPublisher(lam, out["function_name"], out["alias_name"]).publish(artifact)
        traffic = AliasTraffic(lam, out["function_name"], out["alias_name"])
        traffic.set_canary(stable, published.version, 10)
        history = DynamoHistory(ddb, out["history_table"], "sample-api", "dev")
        record(history, "20261201T000000Z-dddddd", published.version, "in_progress", stable)
        cw.describe_alarms(AlarmNames=[out["alarm_names"][0]])
        traffic.restore(published.version)
        history.update(history.get("20261201T000000Z-dddddd"), status="succeeded", phase="succeeded")
    alias = deployed.lam().get_alias(FunctionName=out["function_name"], Name=out["alias_name"])
    assert alias["FunctionVersion"] == published.version
    assert history_of(deployed, deployed.aws).get("20261201T000000Z-dddddd").status == "succeeded"


def test_the_deployer_cannot_rewrite_its_own_policy(deployed, principals):
    """Fails on main before issue 24: role/sample-api-* matched the deployer's own name."""
    creds = principals.credentials(DEPLOYER)
    iam = principals.client("iam", creds)
    admin_doc = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    )
    with enforcing(deployed.endpoint):
        with pytest.raises(ClientError) as denied:
            iam.put_role_policy(RoleName=DEPLOYER, PolicyName="escalate", PolicyDocument=admin_doc)
        anyone = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
        with pytest.raises(ClientError) as trust:
            iam.update_assume_role_policy(
                RoleName=DEPLOYER, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [anyone]})
            )
        # the credentials do work for what it may do
        assert (
            iam.get_role(RoleName="sample-api-function-dev")["Role"]["RoleName"] == "sample-api-function-dev"
        )
    for err in (denied, trust):
        assert err.value.response["Error"]["Code"] == "AccessDenied", err.value.response
    policies = principals.admin.client("iam").list_role_policies(RoleName=DEPLOYER)["PolicyNames"]
    assert "escalate" not in policies
