# One customer-managed key per environment encrypts the logs, the alerts topic, the dead-letter queue,
# the deployment history, the SSM parameters and the functions' environment variables.
resource "aws_kms_key" "this" {
  description             = "${local.prefix}-key-${local.suffix}: logs, alerts, DLQ, history, parameters"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${local.prefix}-${local.suffix}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:Key policy, not an IAM policy: Resource * means this key; the account-root statement is AWS's default key policy
  #checkov:skip=CKV_AWS_111:Key policy, not an IAM policy: Resource * means this key; service statements are limited by conditions
  #checkov:skip=CKV_AWS_356:Key policy, not an IAM policy: Resource * means this key and cannot be narrowed
  # Key administration and IAM-based use stay with the account (the standard key policy root statement).
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogsEncryptsThisServicesLogGroups"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:DescribeKey",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      # the functions' log groups, and the front door's access log group (modules/front_door)
      values = [
        "${local.log_group_arn_prefix}/${var.service_name}-*",
        "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/apigateway/${var.service_name}-*",
      ]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}
