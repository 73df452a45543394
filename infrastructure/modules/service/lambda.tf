# The service's functions (one per entry of var.functions) and each one's `live` alias. Terraform creates them; from then on the deploy step owns
# the code (it publishes versions), the function's environment (the secrets stage merges secret values
# into it) and the alias's routing (the canary), so Terraform ignores those (docs/infrastructure.md).
resource "aws_lambda_function" "service" {
  for_each = var.functions

  #checkov:skip=CKV_AWS_117:The function reaches only AWS APIs and no private network resources; a VPC would add NAT cost and cold-start latency without isolating anything
  #checkov:skip=CKV_AWS_272:The deploy step publishes the zip built and digested in this pipeline (digest recorded in the history); AWS Signer code signing is not adopted yet
  function_name                  = local.function_names[each.key]
  description                    = each.key == var.service_name ? "${var.service_name} (${var.environment})" : "${var.service_name} ${each.key} (${var.environment})"
  role                           = aws_iam_role.service.arn
  runtime                        = var.runtime
  handler                        = each.value.handler
  architectures                  = var.architectures
  filename                       = var.package_path
  publish                        = true
  memory_size                    = each.value.memory_size
  timeout                        = each.value.timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = aws_kms_key.this.arn
  # where the environment runs chaos experiments: the AWS FIS extension (the root decides; none elsewhere)
  layers = var.layers

  # X-Ray is off in dev by the design (PassThrough); staging and prod set xray_enabled (Active).
  #trivy:ignore:AVD-AWS-0066
  tracing_config {
    mode = local.tracing_mode
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dlq.arn
  }

  # The first version carries the plain variables of stageflow.toml; from then on the deploy step's
  # secrets stage writes them (with the secrets) and publishes a version when they change.
  environment {
    variables = merge(each.value.environment, var.extra_environment, {
      SERVICE_NAME     = var.service_name
      ENVIRONMENT      = var.environment
      PARAMETER_PREFIX = local.parameter_prefix
    })
  }

  tags = local.tags

  depends_on = [
    aws_cloudwatch_log_group.service,
    aws_iam_role_policy.service,
  ]

  lifecycle {
    # environment: Terraform sets the first variables (the service module's three and stageflow.toml's
    # plain ones); the secrets stage then writes the plain and secret values of every deploy. Managing
    # it here would strip the secrets on every apply.
    ignore_changes = [filename, source_code_hash, s3_bucket, s3_key, s3_object_version, environment]
  }
}

resource "aws_lambda_alias" "live" {
  for_each = aws_lambda_function.service

  name             = local.alias_name
  description      = "Takes the traffic; the deploy step shifts it between versions (canary)"
  function_name    = each.value.function_name
  function_version = each.value.version

  lifecycle {
    ignore_changes = [function_version, routing_config]
  }
}

resource "aws_cloudwatch_log_group" "service" {
  #checkov:skip=CKV_AWS_338:Retention is the design's per-environment figure (dev 14, staging 30, prod 90 days)
  for_each = local.function_names

  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

# The rollback function: alarm -> SNS (filtered, sns.tf) -> this function -> alias back on the last good
# version, recorded in the history table, notified on the topic. Its code is stageflow's self-contained
# rollback zip (src/stageflow/rollback/handler.py); it reads only these environment variables
# (STAGEFLOW_FUNCTIONS: every function by key, as JSON; STAGEFLOW_FUNCTION_NAME: the first).
resource "aws_lambda_function" "rollback" {
  #checkov:skip=CKV_AWS_117:The function reaches only AWS APIs and no private network resources; a VPC would add NAT cost and cold-start latency without isolating anything
  #checkov:skip=CKV_AWS_272:The deploy step publishes the zip built and digested in this pipeline (digest recorded in the history); AWS Signer code signing is not adopted yet
  function_name                  = local.rollback_name
  description                    = length(local.function_names) == 1 ? "Rolls ${local.function_name}:${local.alias_name} back when an alarm fires" : "Rolls ${join(", ", values(local.function_names))} (alias ${local.alias_name}) back when an alarm fires"
  role                           = aws_iam_role.rollback.arn
  runtime                        = var.runtime
  handler                        = var.rollback_handler
  filename                       = var.rollback_package_path
  source_code_hash               = filebase64sha256(var.rollback_package_path)
  memory_size                    = 256
  timeout                        = 60
  reserved_concurrent_executions = 2
  kms_key_arn                    = aws_kms_key.this.arn

  # X-Ray is off in dev by the design (PassThrough); staging and prod set xray_enabled (Active).
  #trivy:ignore:AVD-AWS-0066
  tracing_config {
    mode = local.tracing_mode
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dlq.arn
  }

  environment {
    variables = {
      STAGEFLOW_SERVICE        = var.service_name
      STAGEFLOW_ENVIRONMENT    = var.environment
      STAGEFLOW_FUNCTION_NAME  = local.function_name
      STAGEFLOW_FUNCTIONS      = jsonencode(local.function_names)
      STAGEFLOW_ALIAS_NAME     = local.alias_name
      STAGEFLOW_HISTORY_TABLE  = local.history_name
      STAGEFLOW_TOPIC_ARN      = aws_sns_topic.alerts.arn
      STAGEFLOW_ROLLBACK_ALARM = local.rollback_alarm_name
      # the environment's alarm set: only these, in ALARM now (DescribeAlarms), roll back (issue 24)
      STAGEFLOW_ALARM_NAMES = jsonencode(local.alarm_names)
    }
  }

  tags = local.tags

  depends_on = [
    aws_cloudwatch_log_group.rollback,
    aws_iam_role_policy.rollback,
  ]

  # Unlike the service, Terraform owns this function's code (no ignore_changes): the reproducible
  # rollback zip's digest changes only when the rollback code does, and then Terraform updates it.
}

resource "aws_cloudwatch_log_group" "rollback" {
  #checkov:skip=CKV_AWS_338:Retention is the design's per-environment figure (dev 14, staging 30, prod 90 days)
  name              = "/aws/lambda/${local.rollback_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

# Failed asynchronous invocations (SNS -> rollback handler, and the service's own) land here.
resource "aws_sqs_queue" "dlq" {
  name                              = local.dlq_name
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = local.tags
}

data "aws_iam_policy_document" "dlq" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.dlq.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  policy    = data.aws_iam_policy_document.dlq.json
}
