# Least privilege: every statement names its resources; no action is a wildcard. Both roles carry the
# functions' permissions boundary when one is named (the pipeline module creates it; the deployer may
# create and change these roles only with it): docs/security.md.
locals {
  # every function's, known at plan time (not aws_lambda_function.service[*].arn), so the policy walk
  # sees them before an apply
  service_function_arns    = [for n in values(local.function_names) : "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${n}"]
  permissions_boundary_arn = var.permissions_boundary_name == "" ? null : "arn:${local.partition}:iam::${local.account_id}:policy/${var.permissions_boundary_name}"
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- the service function --------------------------------------------------------------------------
resource "aws_iam_role" "service" {
  name                 = "${local.prefix}-function-${local.suffix}"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  permissions_boundary = local.permissions_boundary_arn
  tags                 = local.tags
}

data "aws_iam_policy_document" "service" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for g in aws_cloudwatch_log_group.service : "${g.arn}:*"]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  statement {
    sid       = "ReadOwnParameters"
    actions   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]
    resources = [local.parameter_arn_prefix, "${local.parameter_arn_prefix}/*"]
  }

  statement {
    sid       = "DecryptWithTheEnvironmentKey"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "service" {
  name   = "${local.prefix}-function-${local.suffix}"
  role   = aws_iam_role.service.id
  policy = data.aws_iam_policy_document.service.json
}

# X-Ray's write actions take no resource ARNs; AWS's managed write-only policy grants exactly those.
resource "aws_iam_role_policy_attachment" "service_xray" {
  count      = var.xray_enabled ? 1 : 0
  role       = aws_iam_role.service.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

# --- the rollback handler --------------------------------------------------------------------------
resource "aws_iam_role" "rollback" {
  name                 = "${local.prefix}-rollback-${local.suffix}"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  permissions_boundary = local.permissions_boundary_arn
  tags                 = local.tags
}

data "aws_iam_policy_document" "rollback" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.rollback.arn}:*"]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  statement {
    sid = "MoveTheLiveAlias"
    actions = [
      "lambda:GetAlias",
      "lambda:UpdateAlias",
      "lambda:GetFunctionConfiguration",
      "lambda:ListVersionsByFunction",
    ]
    resources = flatten([for arn in local.service_function_arns : [arn, "${arn}:*"]])
  }

  statement {
    sid = "RecordTheRollback"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
    ]
    resources = [aws_dynamodb_table.history.arn, "${aws_dynamodb_table.history.arn}/index/*"]
  }

  statement {
    sid       = "Notify"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }

  statement {
    sid       = "ReadAlarmStates"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = ["arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${local.prefix}-*-${local.suffix}"]
  }

  statement {
    sid       = "UseTheEnvironmentKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "rollback" {
  name   = "${local.prefix}-rollback-${local.suffix}"
  role   = aws_iam_role.rollback.id
  policy = data.aws_iam_policy_document.rollback.json
}

resource "aws_iam_role_policy_attachment" "rollback_xray" {
  count      = var.xray_enabled ? 1 : 0
  role       = aws_iam_role.rollback.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}
