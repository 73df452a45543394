# Alerts: every alarm notifies this encrypted topic; the rollback handler is subscribed to it, and so
# are the e-mail address (staging, prod) and the pager (prod, critical events only) when set.
resource "aws_sns_topic" "alerts" {
  name              = local.topic_name
  kms_master_key_id = aws_kms_key.this.arn
  tags              = local.tags
}

data "aws_iam_policy_document" "alerts" {
  statement {
    sid       = "CloudWatchAlarmsOfThisEnvironmentPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    # only this environment's alarms: another alarm of the account cannot publish an ALARM here
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = local.alert_alarm_arns
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

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

locals {
  alert_alarm_arns = [
    for name in concat(local.alarm_names, [local.rollback_alarm_name]) :
    "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${name}"
  ]
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts.json
}

# Only CloudWatch alarm notifications in ALARM invoke the rollback function: deploy notifications on the
# same topic (JSON without NewStateValue), OK/INSUFFICIENT_DATA transitions and the alarm on the rollback
# function's own errors (which would otherwise feed back into it) do not match.
resource "aws_sns_topic_subscription" "rollback" {
  topic_arn           = aws_sns_topic.alerts.arn
  protocol            = "lambda"
  endpoint            = aws_lambda_function.rollback.arn
  filter_policy_scope = "MessageBody"
  filter_policy = jsonencode({
    NewStateValue = ["ALARM"]
    AlarmName     = [{ "anything-but" = [local.rollback_alarm_name] }]
  })
}

resource "aws_lambda_permission" "rollback_from_sns" {
  statement_id   = "AllowAlertsTopic"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.rollback.function_name
  principal      = "sns.amazonaws.com"
  source_arn     = aws_sns_topic.alerts.arn
  source_account = local.account_id
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alert_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.alert_email
}

# The pager gets only critical events: an alarm entering ALARM (CloudWatch's JSON carries NewStateValue)
# and a failed rollback (stageflow's notification of kind rollback_failed: page a person). Deploy
# progress (started, promoted, rolled back, approvals), OK and INSUFFICIENT_DATA transitions go to
# e-mail and Slack only.
locals {
  pager_kinds = ["rollback_failed"]
}

resource "aws_sns_topic_subscription" "pager" {
  count                  = var.pager_https_endpoint == "" ? 0 : 1
  topic_arn              = aws_sns_topic.alerts.arn
  protocol               = "https"
  endpoint               = var.pager_https_endpoint
  endpoint_auto_confirms = true
  filter_policy_scope    = "MessageBody"
  filter_policy = jsonencode({
    "$or" = [
      { NewStateValue = ["ALARM"] },
      { kind = local.pager_kinds },
    ]
  })
}
