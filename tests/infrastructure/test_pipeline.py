"""The pipeline module as the design requires it (REQUIREMENTS: pipeline validation)."""

from __future__ import annotations

import re

import pytest

from tests.infrastructure.hcl import MODULES, as_list, attr, block, blocks, jsonencoded, load_dir, statements

PIPELINE = MODULES / "pipeline"
STAGES = [
    "Source",
    "Build",
    "DeployDev",
    "IntegrationTest",
    "DeployStaging",
    "ApprovalForProduction",
    "DeployProduction",
]
# Read actions AWS does not let a policy scope to a resource; only these may stand with Resource "*"
# unless the statement carries a condition.
UNSCOPABLE_READS = {
    "sts:GetCallerIdentity",
    "cloudwatch:GetMetricData",
    "cloudwatch:GetMetricStatistics",
    "ssm:DescribeParameters",
    "kms:ListAliases",
    "fis:ListExperimentTemplates",  # the chaos stage finds its templates by tag (no resource-level scope)
    "ecr:GetAuthorizationToken",  # ECR's login token: AWS knows no resource for it
}
ADMIN_POLICIES = re.compile(r"AdministratorAccess|PowerUserAccess|IAMFullAccess|FullAccess")


@pytest.fixture(scope="module")
def cfg():
    return load_dir(PIPELINE)


@pytest.fixture(scope="module")
def stages(cfg):
    return blocks(cfg.resource("aws_codepipeline", "this"), "stage")


def _actions(stage):
    return sorted(blocks(stage, "action"), key=lambda a: int(attr(a, "run_order", 1)))


def _env(action):
    """STAGEFLOW_* variables a CodeBuild action passes (resolving ``local.env_vars``)."""
    raw = attr(attr(action, "configuration"), "EnvironmentVariables", None)
    if raw is None:
        return {}
    m = re.fullmatch(r"\$\{local\.env_vars\.(\w+)\}", raw)
    if m:
        raw = load_dir(PIPELINE).locals["env_vars"][m.group(1)]
    return {v["name"]: v["value"] for v in jsonencoded(raw)}


def test_stages_in_the_designs_order(stages):
    assert [attr(s, "name") for s in stages] == STAGES


def test_manual_approval_precedes_production(stages):
    names = [attr(s, "name") for s in stages]
    approval = stages[names.index("ApprovalForProduction")]
    (action,) = blocks(approval, "action")
    assert (attr(action, "category"), attr(action, "provider")) == ("Approval", "Manual")
    assert attr(action, "timeout_in_minutes") == "${var.production_approval_timeout_minutes}"
    assert names.index("ApprovalForProduction") == names.index("DeployProduction") - 1
    # nothing reaches prod before the approval
    for stage in stages[: names.index("ApprovalForProduction")]:
        assert all(_env(a).get("STAGEFLOW_ENV") != "prod" for a in blocks(stage, "action"))


def test_production_is_a_canary_with_approvals_between_steps(stages):
    prod = stages[STAGES.index("DeployProduction")]
    actions = _actions(prod)
    kinds = [(attr(a, "name"), attr(a, "category")) for a in actions]
    assert [n for n, _ in kinds] == [
        "PreProductionChaos",
        "Canary10",
        "CanaryApproval",
        "Canary50",
        "FinalApproval",
        "Promote",
    ]
    steps = [_env(a).get("STAGEFLOW_CANARY_STEP") for a in actions if attr(a, "category") == "Build"]
    assert steps == ["1", "2", "3"]
    for a in actions:
        if attr(a, "category") == "Approval":
            assert attr(a, "provider") == "Manual"
            assert attr(a, "timeout_in_minutes") == "${local.canary_approval_window_minutes}"
        if attr(a, "category") == "Build":
            assert _env(a)["STAGEFLOW_ENV"] == "prod"
    run_orders = [int(attr(a, "run_order")) for a in actions]
    assert run_orders == sorted(set(run_orders)), "each production action runs after the previous one"


def test_stageflows_deadline_and_codepipelines_window_come_from_one_setting(cfg, stages):
    """Issue 26: every production canary run records var.canary_approval_timeout_minutes as stageflow's
    deadline (STAGEFLOW_APPROVAL_TIMEOUT_MINUTES, read by config/approvals.py), and CodePipeline's
    approval window is the same variable plus a fixed margin: stageflow's deadline acts first."""
    setting = "var.canary_approval_timeout_minutes"
    window = cfg.locals["canary_approval_window_minutes"]
    assert re.fullmatch(
        r"\$\{var\.canary_approval_timeout_minutes \+ local\.approval_margin_minutes\}", window
    )
    assert int(cfg.locals["approval_margin_minutes"]) > 0
    prod = _actions(stages[STAGES.index("DeployProduction")])
    for a in prod:
        if attr(a, "category") == "Approval":
            assert attr(a, "timeout_in_minutes") == "${local.canary_approval_window_minutes}"
        if attr(a, "category") == "Build":
            assert _env(a)["STAGEFLOW_APPROVAL_TIMEOUT_MINUTES"] == "${tostring(" + setting + ")}"
    # the bound CodePipeline allows (7 days) holds for the window, not only for the deadline
    (rule,) = blocks(cfg.variables["canary_approval_timeout_minutes"], "validation")
    assert "+ 15 <= 10080" in attr(rule, "condition")


def test_the_deadline_setting_reaches_stageflows_approvals(monkeypatch, tmp_path):
    from stageflow.config import load

    toml = tmp_path / "stageflow.toml"
    toml.write_text('[service]\nname = "svc"\n')
    monkeypatch.setenv("STAGEFLOW_APPROVAL_TIMEOUT_MINUTES", "45")
    assert load(toml).env("prod").approvals.timeout_minutes == 45
    assert load(toml).env("prod").approvals.deadline_minutes("step:0") == 45
    monkeypatch.setenv("STAGEFLOW_APPROVAL_TIMEOUT_MINUTES", "nan")
    with pytest.raises(Exception, match="STAGEFLOW_APPROVAL_TIMEOUT_MINUTES"):
        load(toml)


def test_approval_timeouts_are_the_designs(cfg):
    assert attr(cfg.variables["production_approval_timeout_minutes"], "default") == 24 * 60
    assert attr(cfg.variables["canary_approval_timeout_minutes"], "default") == 2 * 60


def test_an_abandoned_canary_approval_starts_the_rollback(cfg):
    rule = cfg.resource("aws_cloudwatch_event_rule", "canary_abandoned")
    pattern = jsonencoded(attr(rule, "event_pattern"))
    assert pattern["detail"]["action"] == ["CanaryApproval", "FinalApproval"]
    assert pattern["detail"]["state"] == ["FAILED"]
    target = cfg.resource("aws_cloudwatch_event_target", "rollback")
    assert attr(target, "arn") == "${aws_codebuild_project.rollback.arn}"


def test_deploys_go_dev_then_staging_then_prod(stages):
    envs = []
    for stage in stages:
        for a in _actions(stage):
            env = _env(a)
            if attr(a, "category") == "Build" and "STAGEFLOW_ENV" in env:
                envs.append(env["STAGEFLOW_ENV"])
    assert envs == ["dev", "staging", "prod", "prod", "prod"]


def test_artifact_store_is_the_encrypted_bucket(cfg):
    store = block(cfg.resource("aws_codepipeline", "this"), "artifact_store")
    assert attr(store, "location") == "${aws_s3_bucket.artifacts.bucket}"
    key = block(store, "encryption_key")
    assert attr(key, "type") == "KMS"
    assert attr(key, "id") == "${aws_kms_key.pipeline.arn}"


def test_artifact_bucket_encrypted_versioned_private_with_30_day_lifecycle(cfg):
    bucket = "${aws_s3_bucket.artifacts.id}"
    sse = cfg.resource("aws_s3_bucket_server_side_encryption_configuration", "artifacts")
    assert attr(sse, "bucket") == bucket
    default = block(block(sse, "rule"), "apply_server_side_encryption_by_default")
    assert attr(default, "sse_algorithm") == "aws:kms"
    assert attr(default, "kms_master_key_id") == "${aws_kms_key.pipeline.arn}"

    versioning = cfg.resource("aws_s3_bucket_versioning", "artifacts")
    assert attr(versioning, "bucket") == bucket
    assert attr(block(versioning, "versioning_configuration"), "status") == "Enabled"

    pab = cfg.resource("aws_s3_bucket_public_access_block", "artifacts")
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert attr(pab, flag) is True, flag

    lifecycle = cfg.resource("aws_s3_bucket_lifecycle_configuration", "artifacts")
    rule = block(lifecycle, "rule")
    assert attr(rule, "status") == "Enabled"
    assert attr(block(rule, "expiration"), "days") == "${var.artifact_retention_days}"
    assert attr(cfg.variables["artifact_retention_days"], "default") == 30


def _role_policies(cfg, role: str) -> list[dict]:
    """Statements of every inline policy on an IAM role of the module."""
    out = []
    for body in cfg.of_type("aws_iam_role_policy").values():
        if not re.fullmatch(rf"\$\{{aws_iam_role\.{role}(\[0\])?\.id\}}", attr(body, "role")):
            continue  # (a role made with count is referenced as aws_iam_role.NAME[0].id)
        policy = attr(body, "policy")
        m = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)(?:\[0\])?\.json\}", policy)
        if m:
            out.extend(statements(cfg.policy_document(m.group(1))))
        else:
            doc = jsonencoded(policy)
            for st in doc["Statement"]:
                out.append(
                    {
                        "Sid": st.get("Sid", ""),
                        "Effect": st["Effect"],
                        "Action": as_list(st["Action"]),
                        "Resource": as_list(st["Resource"]),
                        "Condition": st.get("Condition", []),
                    }
                )
    return out


def _pipeline_and_codebuild_roles(cfg) -> list[str]:
    roles = []
    for name, body in cfg.of_type("aws_iam_role").items():
        trust = attr(body, "assume_role_policy")
        m = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", trust)
        principals = [
            p for st in blocks(cfg.policy_document(m.group(1)), "statement") for p in blocks(st, "principals")
        ]
        services = {i for p in principals for i in as_list(attr(p, "identifiers"))}
        if services & {"codepipeline.amazonaws.com", "codebuild.amazonaws.com"}:
            roles.append(name)
    return roles


def test_pipeline_and_codebuild_roles_are_found(cfg):
    assert sorted(_pipeline_and_codebuild_roles(cfg)) == [
        "builder",
        "deployer",
        "image",
        "pipeline",
        "pull_request",
    ]


def test_no_administrator_or_wildcard_policies_on_pipeline_and_codebuild_roles(cfg):
    roles = _pipeline_and_codebuild_roles(cfg)
    for attachment in cfg.of_type("aws_iam_role_policy_attachment").values():
        assert not ADMIN_POLICIES.search(attr(attachment, "policy_arn")), attachment
    for role in roles:
        found = _role_policies(cfg, role)
        assert found, f"role {role} has no inline policy"
        for st in found:
            if st["Effect"] != "Allow":
                continue
            for action in st["Action"]:
                assert action != "*" and not action.endswith(":*"), f"{role}: wildcard action {action}"
            if "*" in st["Resource"]:
                unscoped = set(st["Action"]) - UNSCOPABLE_READS
                assert not unscoped or st["Condition"], f"{role} {st['Sid']}: {sorted(unscoped)} on *"


def test_deployer_passes_roles_only_to_lambda_and_attaches_only_xray(cfg):
    by_sid = {st["Sid"]: st for st in _role_policies(cfg, "deployer")}
    passrole = [st for st in by_sid.values() if "iam:PassRole" in st["Action"]]
    # the function roles to Lambda; the chaos environments' FIS roles to FIS (modules/pipeline/chaos.tf)
    assert sorted(st["Sid"] for st in passrole) == ["PassFisRolesToFisOnly", "PassServiceRolesToLambdaOnly"]
    for st in passrole:
        cond = st["Condition"][0]
        assert attr(cond, "variable") == "iam:PassedToService"
        service = "fis" if st["Sid"] == "PassFisRolesToFisOnly" else "lambda"
        assert as_list(attr(cond, "values")) == [f"{service}.amazonaws.com"]
    attach = [st for st in by_sid.values() if "iam:AttachRolePolicy" in st["Action"]]
    assert len(attach) == 1
    assert any("AWSXRayDaemonWriteAccess" in v for v in as_list(attr(attach[0]["Condition"][0], "values")))


def test_five_codebuild_projects_run_their_buildspecs(cfg):
    roles = cfg.locals["pipeline_projects"]
    assert sorted(roles) == ["build", "deploy", "integration"]
    image = block(cfg.resource("aws_codebuild_project", "image"), "source")
    assert attr(image, "buildspec") == "buildspecs/image.yml"
    source = block(cfg.resource("aws_codebuild_project", "pipeline"), "source")
    assert attr(source, "buildspec") == "buildspecs/${each.key}.yml"
    rollback = block(cfg.resource("aws_codebuild_project", "rollback"), "source")
    assert attr(rollback, "buildspec") == "buildspecs/rollback.yml"


@pytest.mark.parametrize("project", ["pipeline", "rollback", "pull_request", "image"])
def test_codebuild_logs_to_cloudwatch_caches_and_runs_unprivileged_on_a_current_image(cfg, project):
    body = cfg.resource("aws_codebuild_project", project)
    logs = block(block(body, "logs_config"), "cloudwatch_logs")
    assert attr(logs, "status") == "ENABLED"
    assert attr(logs, "group_name") == "${aws_cloudwatch_log_group.codebuild.name}"
    cache = block(body, "cache")
    assert attr(cache, "type") in ("S3", "LOCAL")
    assert attr(cache, "location").startswith("${aws_s3_bucket.artifacts.bucket}/cache/")
    env = block(body, "environment")
    # privileged only for the image project (its Docker daemon), never another
    assert attr(env, "privileged_mode") is (project == "image")
    assert attr(env, "image") == "${var.build_image}"
    assert attr(body, "encryption_key") == "${aws_kms_key.pipeline.arn}"


def test_build_image_is_a_current_managed_image(cfg):
    image = attr(cfg.variables["build_image"], "default")
    m = re.fullmatch(r"aws/codebuild/standard:(\d+)\.0", image)
    assert m and int(m.group(1)) >= 7, image  # standard:7.0 carries Python 3.11+


def test_build_log_group_is_encrypted(cfg):
    group = cfg.resource("aws_cloudwatch_log_group", "codebuild")
    assert attr(group, "kms_key_id") == "${aws_kms_key.pipeline.arn}"
    assert attr(group, "retention_in_days") == "${var.log_retention_days}"


def test_notifications_cover_failures_and_approvals(cfg):
    rule = cfg.resource("aws_codestarnotifications_notification_rule", "pipeline")
    events = set(as_list(attr(rule, "event_type_ids")))
    assert "codepipeline-pipeline-pipeline-execution-failed" in events
    assert "codepipeline-pipeline-manual-approval-needed" in events
    topic = cfg.resource("aws_sns_topic", "notifications")
    assert attr(topic, "kms_master_key_id") == "${aws_kms_key.pipeline.arn}"


def test_pull_requests_run_the_build_checks_through_a_webhook(cfg):
    """For teams that stay on AWS: every pull request opened, updated or reopened runs buildspecs/build.yml
    (lint, the service's unit tests, stageflow's own tests, the security gate) and reports back."""
    project = cfg.resource("aws_codebuild_project", "pull_request")
    source = block(project, "source")
    assert attr(source, "type") == "GITHUB" and attr(source, "location") == "${var.repository_url}"
    assert attr(source, "buildspec") == "buildspecs/build.yml"
    assert attr(source, "report_build_status") is True
    assert attr(block(source, "auth"), "resource") == "${aws_codestarconnections_connection.source.arn}"
    assert attr(block(project, "artifacts"), "type") == "NO_ARTIFACTS"
    hook = cfg.resource("aws_codebuild_webhook", "pull_request")
    assert attr(hook, "project_name") == "${aws_codebuild_project.pull_request[0].name}"
    events = {
        e
        for group in blocks(hook, "filter_group")
        for f in blocks(group, "filter")
        if attr(f, "type") == "EVENT"
        for e in attr(f, "pattern").split(",")
    }
    assert events == {"PULL_REQUEST_CREATED", "PULL_REQUEST_UPDATED", "PULL_REQUEST_REOPENED"}
    assert attr(cfg.variables["pull_request_builds"], "default") is True


def test_pull_request_role_cannot_deploy(cfg):
    """The pull-request project runs code from any branch: it gets the base build policy and the source
    connection, nothing that reaches a deployed environment."""
    assert attr(cfg.resource("aws_codebuild_project", "pull_request"), "service_role") == (
        "${aws_iam_role.pull_request[0].arn}"
    )
    actions = {a for st in _role_policies(cfg, "pull_request") for a in st["Action"]}
    base = {a for st in _role_policies(cfg, "builder") for a in st["Action"]}
    assert actions and not {a for a in actions if a.split(":")[0] in ("lambda", "iam", "dynamodb", "ssm")}
    assert actions - base <= {
        "codestar-connections:UseConnection",
        "codeconnections:UseConnection",
        "codestar-connections:GetConnectionToken",
        "codeconnections:GetConnectionToken",
    }


# -- build once, deploy many; images; notifications (issue 25 items 3, 4, 6) ---------------------------
def test_the_build_stage_builds_the_image_then_the_artifact(stages):
    build = next(s for s in stages if attr(s, "name") == "Build")
    image, checks = _actions(build)
    assert attr(image, "name") == "BuildImage" and as_list(attr(image, "output_artifacts")) == ["image"]
    assert attr(attr(image, "configuration"), "ProjectName") == "${aws_codebuild_project.image.name}"
    assert attr(checks, "name") == "BuildAndUnitTest"
    assert as_list(attr(checks, "input_artifacts")) == ["source", "image"]
    assert as_list(attr(checks, "output_artifacts")) == ["build"]


def test_every_deploy_action_gets_the_build_artifact(stages):
    deploys = [
        a for s in stages for a in blocks(s, "action") if "STAGEFLOW_CANARY_STEP" in _env(a)
    ]  # fmt: skip
    assert len(deploys) == 5
    for a in deploys:
        assert "build" in as_list(attr(a, "input_artifacts")), attr(a, "name")


def test_ecr_repository_is_immutable_scanned_encrypted_and_expires_old_images(cfg):
    repo = cfg.resource("aws_ecr_repository", "service")
    assert attr(repo, "name") == "${var.service_name}"
    assert attr(repo, "image_tag_mutability") == "IMMUTABLE"
    assert attr(block(repo, "image_scanning_configuration"), "scan_on_push") is True
    enc = block(repo, "encryption_configuration")
    assert (attr(enc, "encryption_type"), attr(enc, "kms_key")) == ("KMS", "${aws_kms_key.pipeline.arn}")
    rules = jsonencoded(attr(cfg.resource("aws_ecr_lifecycle_policy", "service"), "policy"))["rules"]
    by_status = {r["selection"]["tagStatus"]: r for r in rules}
    assert by_status["untagged"]["selection"]["countType"] == "sinceImagePushed"
    assert by_status["any"]["selection"]["countNumber"] == "${var.image_retention_count}"
    assert attr(cfg.variables["image_retention_count"], "default") == 30


def test_ecr_repository_policy_lets_only_this_accounts_lambda_pull(cfg):
    policy = cfg.resource("aws_ecr_repository_policy", "service")
    assert attr(policy, "policy") == "${data.aws_iam_policy_document.ecr.json}"
    (st,) = blocks(cfg.policy_document("ecr"), "statement")
    assert attr(st, "effect", "Allow") == "Allow"
    assert set(as_list(attr(st, "actions"))) == {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}
    (principal,) = blocks(st, "principals")
    assert as_list(attr(principal, "identifiers")) == ["lambda.amazonaws.com"]  # never "*"
    conditions = {attr(c, "variable"): as_list(attr(c, "values")) for c in blocks(st, "condition")}
    assert conditions["aws:SourceAccount"] == ["${local.account_id}"]
    assert conditions["aws:SourceArn"][0].endswith(":function:${var.service_name}-*")


def test_only_the_image_role_pushes_and_only_to_its_repository(cfg):
    pushes = {
        role
        for role in _pipeline_and_codebuild_roles(cfg)
        for st in _role_policies(cfg, role)
        if "ecr:PutImage" in st["Action"]
    }
    assert pushes == {"image"}
    st = next(st for st in _role_policies(cfg, "image") if "ecr:PutImage" in st["Action"])
    assert st["Resource"] == ["${aws_ecr_repository.service.arn}"]


def _dynamic_env(project: dict) -> dict[str, dict]:
    env = block(project, "environment")
    out = {}
    for d in env.get("dynamic", []):
        for c in blocks(d.get("environment_variable", {}), "content"):
            out[attr(c, "name")] = {"type": attr(c, "type", "PLAINTEXT"), **d["environment_variable"]}
    return out


def test_the_slack_webhook_comes_from_secrets_manager_in_the_notifying_projects(cfg):
    for name in ("pipeline", "rollback"):
        hook = _dynamic_env(cfg.resource("aws_codebuild_project", name))["STAGEFLOW_SLACK_WEBHOOK"]
        assert hook["type"] == "SECRETS_MANAGER"
        assert "var.slack_webhook_secret_arn" in str(attr(hook, "for_each"))
    assert cfg.locals["notifying_projects"] == ["deploy"]  # of the pipeline projects, only the deploys
    assert attr(cfg.variables["slack_webhook_secret_arn"], "default") == ""
    reads = [s for s in _role_policies(cfg, "deployer") if "secretsmanager:GetSecretValue" in s["Action"]]
    assert ["${var.slack_webhook_secret_arn}"] in [s["Resource"] for s in reads]


def test_the_deploy_project_stores_approval_reports_in_the_artifact_bucket(cfg):
    """Issue 26: the approval notice's HTML report goes to the pipeline's artifact bucket."""
    env = block(cfg.resource("aws_codebuild_project", "pipeline"), "environment")
    found = {}
    for dyn in blocks(env, "dynamic"):
        for body in blocks(dyn, "environment_variable"):
            content = block(body, "content")
            found[attr(content, "name")] = attr(body, "for_each")
    assert "aws_s3_bucket.artifacts.bucket" in found["STAGEFLOW_REPORT_BUCKET"]
