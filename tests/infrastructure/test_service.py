"""The service module: function, alias, alarms with the design's thresholds, rollback path, history."""

from __future__ import annotations

import re

import pytest

from tests.infrastructure.hcl import (
    MODULES,
    REPO,
    as_list,
    attr,
    block,
    blocks,
    jsonencoded,
    load_dir,
    statements,
)

SERVICE = MODULES / "service"


@pytest.fixture(scope="module")
def cfg():
    return load_dir(SERVICE)


def _default(cfg, name):
    return attr(cfg.variables[name], "default")


def test_function_runs_python311_with_per_environment_memory_timeout_and_tracing(cfg):
    fn = cfg.resource("aws_lambda_function", "service")
    assert _default(cfg, "runtime") == "python3.11"
    assert attr(fn, "for_each") == "${var.functions}"  # one per function, each with its own values
    assert attr(fn, "runtime") == "${var.runtime}"
    assert attr(fn, "handler") == "${each.value.handler}"
    assert attr(fn, "memory_size") == "${each.value.memory_size}"
    assert attr(fn, "timeout") == "${each.value.timeout_seconds}"
    assert attr(fn, "function_name") == "${local.function_names[each.key]}"
    assert attr(block(fn, "tracing_config"), "mode") == "${local.tracing_mode}"
    assert cfg.locals["tracing_mode"] == '${var.xray_enabled ? "Active" : "PassThrough"}'
    assert attr(fn, "publish") is True
    assert attr(block(fn, "dead_letter_config"), "target_arn") == "${aws_sqs_queue.dlq.arn}"
    assert attr(fn, "kms_key_arn") == "${aws_kms_key.this.arn}"


def test_function_takes_architectures_and_plain_variables_from_its_inputs(cfg):
    fn = cfg.resource("aws_lambda_function", "service")
    assert attr(fn, "architectures") == "${var.architectures}"
    assert _default(cfg, "architectures") == ["x86_64"]
    assert "functions" in cfg.variables and "default" not in cfg.variables["functions"]
    variables = attr(block(fn, "environment"), "variables")
    assert variables.startswith("${merge(each.value.environment,") and "SERVICE_NAME" in variables
    # the deploy step's secrets stage writes the environment after create (secrets and plain values)
    assert "${environment}" in as_list(attr(block(fn, "lifecycle"), "ignore_changes"))
    assert attr(cfg.outputs["function_role_name"], "value") == "${aws_iam_role.service.name}"


def test_live_alias_routing_belongs_to_the_deploy_step(cfg):
    alias = cfg.resource("aws_lambda_alias", "live")
    assert attr(alias, "for_each") == "${aws_lambda_function.service}"  # one per function
    assert attr(alias, "function_name") == "${each.value.function_name}"
    assert cfg.locals["alias_name"] == "live"
    assert attr(alias, "name") == "${local.alias_name}"
    ignored = as_list(attr(block(alias, "lifecycle"), "ignore_changes"))
    assert {i.strip("${}") for i in ignored} == {"function_version", "routing_config"}


def test_log_groups_keep_the_environments_retention_encrypted(cfg):
    for name in ("service", "rollback"):
        group = cfg.resource("aws_cloudwatch_log_group", name)
        assert attr(group, "retention_in_days") == "${var.log_retention_days}"
        assert attr(group, "kms_key_id") == "${aws_kms_key.this.arn}"


def _alarm(cfg, name):
    return cfg.resource("aws_cloudwatch_metric_alarm", name)


def test_errors_alarm_more_than_5_in_5_minutes(cfg):
    a = _alarm(cfg, "errors")
    assert (attr(a, "metric_name"), attr(a, "statistic")) == ("Errors", "Sum")
    assert int(attr(a, "period")) * int(attr(a, "evaluation_periods")) == 300
    assert attr(a, "threshold") == "${var.errors_threshold}" and _default(cfg, "errors_threshold") == 5
    assert attr(a, "comparison_operator") == "GreaterThanThreshold"


def test_error_rate_alarm_is_metric_math_over_1_percent_for_10_minutes(cfg):
    a = _alarm(cfg, "error_rate")
    queries = {attr(q, "id"): q for q in blocks(a, "metric_query")}
    assert "errors / invocations" in attr(queries["rate"], "expression")
    assert attr(queries["rate"], "return_data") is True
    metrics = {qid: block(q, "metric") for qid, q in queries.items() if qid != "rate"}
    assert {attr(m, "metric_name") for m in metrics.values()} == {"Errors", "Invocations"}
    period = int(attr(next(iter(metrics.values())), "period"))
    assert period * int(attr(a, "evaluation_periods")) == 600
    assert attr(a, "datapoints_to_alarm") == attr(a, "evaluation_periods")
    assert _default(cfg, "error_rate_threshold_percent") == 1


def test_latency_alarms_p95_over_5s_for_10_min_and_over_10s_for_5_min(cfg):
    slow = _alarm(cfg, "p95_duration")
    assert attr(slow, "extended_statistic") == "p95" and attr(slow, "metric_name") == "Duration"
    assert int(attr(slow, "period")) * int(attr(slow, "evaluation_periods")) == 600
    assert _default(cfg, "p95_threshold_ms") == 5000
    critical = _alarm(cfg, "p95_critical")
    assert attr(critical, "extended_statistic") == "p95"
    assert int(attr(critical, "period")) * int(attr(critical, "evaluation_periods")) == 300
    assert _default(cfg, "p95_critical_threshold_ms") == 10000


def test_duration_alarm_at_80_percent_of_timeout_and_any_throttling(cfg):
    near = _alarm(cfg, "duration_near_timeout")
    assert attr(near, "threshold") == "${each.value.timeout_seconds * 1000 * 0.8}"  # each function's
    throttles = _alarm(cfg, "throttles")
    assert attr(throttles, "metric_name") == "Throttles"
    assert attr(throttles, "threshold") == 0
    assert attr(throttles, "comparison_operator") == "GreaterThanThreshold"


def test_per_executed_version_alarms_for_canaries(cfg):
    for name in ("version_error_rate", "version_p95_duration"):
        a = _alarm(cfg, name)
        assert attr(a, "for_each") == "${toset(var.tracked_versions)}"
        dims = [attr(m, "dimensions") for q in blocks(a, "metric_query") for m in blocks(q, "metric")]
        dims = dims or [attr(a, "dimensions")]
        for d in dims:
            assert d["ExecutedVersion"] == "${each.value}"
            assert d["Resource"] == "${local.alias_resource}"


def test_dynamodb_throttle_alarm_over_5(cfg):
    a = _alarm(cfg, "dynamodb_throttles")
    assert attr(a, "threshold") == "${var.dynamodb_throttle_threshold}"
    assert _default(cfg, "dynamodb_throttle_threshold") == 5


def test_every_alarm_notifies_the_topic_and_is_in_alarm_names(cfg):
    alarms = cfg.of_type("aws_cloudwatch_metric_alarm")
    listed = attr(cfg.outputs["alarm_names"], "value")
    assert listed == "${local.alarm_names}"
    names = "".join(str(v) for v in as_list(cfg.locals["alarm_names"]))
    names += "".join(str(v) for v in as_list(cfg.locals["function_alarms"]))
    for name, body in alarms.items():
        assert as_list(attr(body, "alarm_actions")) == ["${aws_sns_topic.alerts.arn}"], name
        assert attr(body, "actions_enabled") is True
        if name == "rollback_errors":  # pages people; does not gate canaries
            assert f"aws_cloudwatch_metric_alarm.{name}" not in names
            continue
        assert f"aws_cloudwatch_metric_alarm.{name}" in names, f"{name} missing from alarm_names"


def test_topic_encrypted_and_rollback_handler_subscribed(cfg):
    topic = cfg.resource("aws_sns_topic", "alerts")
    assert attr(topic, "kms_master_key_id") == "${aws_kms_key.this.arn}"
    sub = cfg.resource("aws_sns_topic_subscription", "rollback")
    assert attr(sub, "protocol") == "lambda"
    assert attr(sub, "endpoint") == "${aws_lambda_function.rollback.arn}"
    perm = cfg.resource("aws_lambda_permission", "rollback_from_sns")
    assert attr(perm, "source_arn") == "${aws_sns_topic.alerts.arn}"
    handler = cfg.resource("aws_lambda_function", "rollback")
    assert attr(handler, "handler") == "${var.rollback_handler}"
    assert _default(cfg, "rollback_handler") == "stageflow.rollback.handler.handler"
    assert attr(handler, "filename") == "${var.rollback_package_path}"
    assert attr(handler, "source_code_hash") == "${filebase64sha256(var.rollback_package_path)}"
    env = attr(block(handler, "environment"), "variables")
    assert set(env) >= {
        "STAGEFLOW_SERVICE",
        "STAGEFLOW_ENVIRONMENT",
        "STAGEFLOW_FUNCTION_NAME",
        "STAGEFLOW_ALIAS_NAME",
        "STAGEFLOW_HISTORY_TABLE",
        "STAGEFLOW_TOPIC_ARN",
        "STAGEFLOW_ROLLBACK_ALARM",
    }
    assert env["STAGEFLOW_ROLLBACK_ALARM"] == "${local.rollback_alarm_name}"
    # every function by key (the rollback handler restores all of them); the first one as before
    assert env["STAGEFLOW_FUNCTIONS"] == "${jsonencode(local.function_names)}"
    assert env["STAGEFLOW_FUNCTION_NAME"] == "${local.function_name}"


def test_rollback_subscription_takes_only_alarm_messages_and_not_its_own_errors_alarm(cfg):
    sub = cfg.resource("aws_sns_topic_subscription", "rollback")
    assert attr(sub, "filter_policy_scope") == "MessageBody"
    policy = attr(sub, "filter_policy")
    assert "NewStateValue" in str(policy) and "anything-but" in str(policy)
    assert "local.rollback_alarm_name" in str(policy)
    own = _alarm(cfg, "rollback_errors")
    assert attr(own, "alarm_name") == "${local.rollback_alarm_name}"
    assert attr(own, "dimensions") == {"FunctionName": "${local.rollback_name}"}
    assert cfg.locals["rollback_alarm_name"] == "${var.service_name}-rollback-errors-${var.environment}"


def test_history_table_key_schema_matches_the_documented_contract(cfg):
    table = cfg.resource("aws_dynamodb_table", "history")
    assert (attr(table, "hash_key"), attr(table, "range_key")) == ("pk", "sk")
    types = {attr(a, "name"): attr(a, "type") for a in blocks(table, "attribute")}
    assert types == {"pk": "S", "sk": "S", "pk_status": "S", "started_at": "S"}
    (gsi,) = blocks(table, "global_secondary_index")
    assert (attr(gsi, "name"), attr(gsi, "hash_key"), attr(gsi, "range_key")) == (
        "by_status",
        "pk_status",
        "started_at",
    )
    assert attr(gsi, "projection_type") == "ALL"
    assert attr(block(table, "point_in_time_recovery"), "enabled") is True
    sse = block(table, "server_side_encryption")
    assert attr(sse, "enabled") is True and attr(sse, "kms_key_arn") == "${aws_kms_key.this.arn}"
    doc = (REPO / "docs" / "infrastructure.md").read_text(encoding="utf-8")
    needles = ("`pk`", "`sk`", "`pk_status`", "`started_at`", "`by_status`", '"LOCK"')
    needles += ("<service>#<environment>",)
    for needle in needles:
        assert needle in doc, f"docs/infrastructure.md does not document {needle}"


def test_dead_letter_queue_and_parameters_encrypted(cfg):
    assert attr(cfg.resource("aws_sqs_queue", "dlq"), "kms_master_key_id") == "${aws_kms_key.this.arn}"
    ssm = cfg.resource("aws_ssm_parameter", "settings")
    assert attr(ssm, "type") == "SecureString"
    assert attr(ssm, "name") == "${local.parameter_prefix}/${each.key}"
    assert cfg.locals["parameter_prefix"] == "/${var.service_name}/${var.environment}"
    assert attr(cfg.resource("aws_kms_key", "this"), "enable_key_rotation") is True


@pytest.mark.parametrize("document", ["service", "rollback"])
def test_function_roles_are_least_privilege(cfg, document):
    for st in statements(cfg.policy_document(document)):
        for action in st["Action"]:
            assert action != "*" and not action.endswith(":*"), action
        assert "*" not in st["Resource"], st["Sid"]
    for attachment in cfg.of_type("aws_iam_role_policy_attachment").values():
        assert re.search(r"AWSXRayDaemonWriteAccess", attr(attachment, "policy_arn"))


PER_FUNCTION_ALARMS = (
    "errors",
    "error_rate",
    "p95_duration",
    "p95_critical",
    "duration_near_timeout",
    "throttles",
)


def test_every_function_has_its_own_alarms_log_group_and_names(cfg):
    for name in PER_FUNCTION_ALARMS:
        a = _alarm(cfg, name)
        assert attr(a, "for_each") == "${var.functions}", name
        assert "${local.alarm_infix[each.key]}" in attr(a, "alarm_name"), name
        dims = [attr(m, "dimensions") for q in blocks(a, "metric_query") for m in blocks(q, "metric")]
        for d in dims or [attr(a, "dimensions")]:
            assert d["FunctionName"] == "${local.function_names[each.key]}", name
    group = cfg.resource("aws_cloudwatch_log_group", "service")
    assert attr(group, "for_each") == "${local.function_names}"
    assert attr(group, "name") == "/aws/lambda/${each.value}"
    names = cfg.locals["function_names"]
    # {service}-{key}-{env}; the service-named key (a one-function service) keeps {service}-{env}
    assert "${var.service_name}-${k}-${var.environment}" in names and "k == var.service_name" in names
    assert "sort(keys(var.functions))[0]" in cfg.locals["primary_key"]


def test_function_role_and_rollback_cover_every_function(cfg):
    service = {st["Sid"]: st for st in statements(cfg.policy_document("service"))}
    assert service["WriteOwnLogs"]["Resource"] == [
        '${[for g in aws_cloudwatch_log_group.service : "${g.arn}:*"]}'
    ]
    rollback = {st["Sid"]: st for st in statements(cfg.policy_document("rollback"))}
    assert "for arn in local.service_function_arns" in str(rollback["MoveTheLiveAlias"]["Resource"])
    assert "for n in values(local.function_names)" in str(cfg.locals["service_function_arns"])


def test_functions_output_maps_each_key_to_its_function_and_alias(cfg):
    value = str(attr(cfg.outputs["functions"], "value"))
    assert "'function_name': '${f.function_name}'" in value and "aws_lambda_alias.live[k].name" in value
    assert attr(cfg.outputs["function_name"], "value") == (
        "${aws_lambda_function.service[local.primary_key].function_name}"
    )


def test_only_this_environments_alarms_may_publish_and_trigger_rollback(cfg):
    """Issue 24 item 4: the topic admits CloudWatch publishes only from this environment's alarms
    (aws:SourceArn), and the rollback function is told the alarm set it may act on."""
    (cw,) = [s for s in statements(cfg.policy_document("alerts")) if s["Effect"] == "Allow"]
    conds = {attr(c, "variable"): c for c in cw["Condition"]}
    assert attr(conds["aws:SourceArn"], "test") == "ArnEquals"
    assert attr(conds["aws:SourceArn"], "values") == "${local.alert_alarm_arns}"
    arns = str(cfg.locals["alert_alarm_arns"])
    assert "local.alarm_names" in arns and "local.rollback_alarm_name" in arns and ":alarm:" in arns
    env = attr(block(cfg.resource("aws_lambda_function", "rollback"), "environment"), "variables")
    assert env["STAGEFLOW_ALARM_NAMES"] == "${jsonencode(local.alarm_names)}"


def _sns_matches(policy: dict, body: dict) -> bool:
    """SNS's MessageBody filter semantics for the shapes used here: exact values, "$or" of alternatives."""
    if "$or" in policy:
        return any(_sns_matches(alt, body) for alt in policy["$or"])
    return all(body.get(key) in allowed for key, allowed in policy.items())


def test_the_pager_gets_only_critical_events(cfg):
    """Alarms entering ALARM and failed rollbacks page; deploy progress and recoveries do not."""
    sub = cfg.resource("aws_sns_topic_subscription", "pager")
    assert attr(sub, "filter_policy_scope") == "MessageBody" and attr(sub, "protocol") == "https"
    policy = jsonencoded(attr(sub, "filter_policy"))
    kinds = cfg.locals["pager_kinds"]
    policy["$or"] = [
        {k: (kinds if v == "${local.pager_kinds}" else v) for k, v in alt.items()} for alt in policy["$or"]
    ]
    alarm = {"AlarmName": "sample-api-errors-prod", "NewStateValue": "ALARM", "OldStateValue": "OK"}
    assert _sns_matches(policy, alarm)
    assert not _sns_matches(policy, {**alarm, "NewStateValue": "OK", "OldStateValue": "ALARM"})
    assert not _sns_matches(policy, {**alarm, "NewStateValue": "INSUFFICIENT_DATA"})
    assert _sns_matches(policy, {"kind": "rollback_failed", "environment": "prod"})
    from stageflow.rollback.core import FAILED_KIND

    assert FAILED_KIND in kinds  # the kind stageflow sends when a rollback fails
    for kind in ("started", "approval_needed", "promoted", "succeeded", "rolled_back"):
        assert not _sns_matches(policy, {"kind": kind, "environment": "prod"}), kind
    email = cfg.resource("aws_sns_topic_subscription", "email")
    assert attr(email, "filter_policy", None) is None  # e-mail keeps every message


def test_a_schedule_runs_the_deadline_check_in_the_rollback_function(cfg):
    """Issue 26: approval deadlines act with nobody running anything: EventBridge invokes the rollback
    function (its zip has stageflow.rollback.tick) with {"stageflow": "tick"}, allowed only from that rule."""
    rule = cfg.resource("aws_cloudwatch_event_rule", "approval_deadlines")
    assert attr(rule, "schedule_expression").startswith("rate(${var.deadline_check_minutes}")
    target = cfg.resource("aws_cloudwatch_event_target", "approval_deadlines")
    assert attr(target, "arn") == "${aws_lambda_function.rollback.arn}"
    assert jsonencoded(attr(target, "input")) == {"stageflow": "tick"}
    perm = cfg.resource("aws_lambda_permission", "rollback_from_schedule")
    assert attr(perm, "principal") == "events.amazonaws.com"
    assert attr(perm, "source_arn") == "${aws_cloudwatch_event_rule.approval_deadlines.arn}"
    assert _default(cfg, "deadline_check_minutes") == 5
