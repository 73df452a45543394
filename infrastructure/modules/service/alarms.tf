# CloudWatch alarms that veto a canary when in ALARM (output alarm_names) and notify the alerts topic,
# whose subscriber rolls the alias back. Thresholds are the design's (docs/infrastructure.md).
# One set per function (for_each over var.functions): errors, error rate, p95, critical p95, duration
# near the timeout, throttles; the per-version alarms watch the first function's alias.
locals {
  alias_resource = "${local.function_name}:${local.alias_name}"
}

# Lambda errors > 5 in 5 minutes.
resource "aws_cloudwatch_metric_alarm" "errors" {
  for_each = var.functions

  alarm_name          = "${local.prefix}-${local.alarm_infix[each.key]}errors-${local.suffix}"
  alarm_description   = "${local.alarm_subject[each.key]}Lambda errors > ${var.errors_threshold} in 5 minutes"
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = local.function_names[each.key] }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.errors_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = local.tags
}

# Error rate > 1 % for 10 minutes (metric math over Errors and Invocations, per minute).
resource "aws_cloudwatch_metric_alarm" "error_rate" {
  for_each = var.functions

  alarm_name          = "${local.prefix}-${local.alarm_infix[each.key]}error-rate-${local.suffix}"
  alarm_description   = "${local.alarm_subject[each.key]}Error rate > ${var.error_rate_threshold_percent} % for 10 minutes"
  evaluation_periods  = 10
  datapoints_to_alarm = 10
  threshold           = var.error_rate_threshold_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = local.tags

  metric_query {
    id          = "rate"
    expression  = "IF(invocations > 0, 100 * errors / invocations, 0)"
    label       = "Error rate (%)"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Errors"
      dimensions  = { FunctionName = local.function_names[each.key] }
      stat        = "Sum"
      period      = 60
    }
  }

  metric_query {
    id = "invocations"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Invocations"
      dimensions  = { FunctionName = local.function_names[each.key] }
      stat        = "Sum"
      period      = 60
    }
  }
}

# p95 duration > 5 s for 10 minutes (two 5-minute periods).
resource "aws_cloudwatch_metric_alarm" "p95_duration" {
  for_each = var.functions

  alarm_name          = "${local.prefix}-${local.alarm_infix[each.key]}p95-duration-${local.suffix}"
  alarm_description   = "${local.alarm_subject[each.key]}p95 duration > ${var.p95_threshold_ms} ms for 10 minutes"
  namespace           = "AWS/Lambda"
  metric_name         = "Duration"
  dimensions          = { FunctionName = local.function_names[each.key] }
  extended_statistic  = "p95"
  period              = 300
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = var.p95_threshold_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = local.tags
}

# p95 duration > 10 s for 5 minutes: immediate rollback.
resource "aws_cloudwatch_metric_alarm" "p95_critical" {
  for_each = var.functions

  alarm_name          = "${local.prefix}-${local.alarm_infix[each.key]}p95-critical-${local.suffix}"
  alarm_description   = "${local.alarm_subject[each.key]}CRITICAL: p95 duration > ${var.p95_critical_threshold_ms} ms for 5 minutes"
  namespace           = "AWS/Lambda"
  metric_name         = "Duration"
  dimensions          = { FunctionName = local.function_names[each.key] }
  extended_statistic  = "p95"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.p95_critical_threshold_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = local.tags
}

# Duration > 80 % of the timeout.
resource "aws_cloudwatch_metric_alarm" "duration_near_timeout" {
  for_each = var.functions

  alarm_name          = "${local.prefix}-${local.alarm_infix[each.key]}duration-near-timeout-${local.suffix}"
  alarm_description   = "${local.alarm_subject[each.key]}Maximum duration > 80 % of the ${each.value.timeout_seconds} s timeout"
  namespace           = "AWS/Lambda"
  metric_name         = "Duration"
  dimensions          = { FunctionName = local.function_names[each.key] }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = each.value.timeout_seconds * 1000 * 0.8
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = local.tags
}

# Any throttling.
resource "aws_cloudwatch_metric_alarm" "throttles" {
  for_each = var.functions

  alarm_name          = "${local.prefix}-${local.alarm_infix[each.key]}throttles-${local.suffix}"
  alarm_description   = "${local.alarm_subject[each.key]}Any Lambda throttling"
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = local.function_names[each.key] }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = local.tags
}

# Per executed version under the live alias (the canary and the stable version each get their own):
# error rate > 1 % and p95 > 5 s, with the dimensions Lambda publishes for alias traffic.
resource "aws_cloudwatch_metric_alarm" "version_error_rate" {
  for_each = toset(var.tracked_versions)

  alarm_name          = "${local.prefix}-v${each.value}-error-rate-${local.suffix}"
  alarm_description   = "Version ${each.value} under ${local.alias_name}: error rate > ${var.error_rate_threshold_percent} % for 10 minutes"
  evaluation_periods  = 10
  datapoints_to_alarm = 10
  threshold           = var.error_rate_threshold_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = local.tags

  metric_query {
    id          = "rate"
    expression  = "IF(invocations > 0, 100 * errors / invocations, 0)"
    label       = "Error rate of version ${each.value} (%)"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Errors"
      dimensions = {
        FunctionName    = local.function_name
        Resource        = local.alias_resource
        ExecutedVersion = each.value
      }
      stat   = "Sum"
      period = 60
    }
  }

  metric_query {
    id = "invocations"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Invocations"
      dimensions = {
        FunctionName    = local.function_name
        Resource        = local.alias_resource
        ExecutedVersion = each.value
      }
      stat   = "Sum"
      period = 60
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "version_p95_duration" {
  for_each = toset(var.tracked_versions)

  alarm_name         = "${local.prefix}-v${each.value}-p95-duration-${local.suffix}"
  alarm_description  = "Version ${each.value} under ${local.alias_name}: p95 duration > ${var.p95_threshold_ms} ms for 10 minutes"
  namespace          = "AWS/Lambda"
  metric_name        = "Duration"
  extended_statistic = "p95"
  dimensions = {
    FunctionName    = local.function_name
    Resource        = local.alias_resource
    ExecutedVersion = each.value
  }
  period              = 300
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = var.p95_threshold_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = local.tags
}

# DynamoDB throttled requests > 5 in 5 minutes, for each of the service's own tables.
resource "aws_cloudwatch_metric_alarm" "dynamodb_throttles" {
  for_each = toset(var.data_table_names)

  alarm_name          = "${local.prefix}-${each.value}-throttled-requests-${local.suffix}"
  alarm_description   = "DynamoDB ${each.value}: throttled requests > ${var.dynamodb_throttle_threshold} in 5 minutes"
  evaluation_periods  = 1
  threshold           = var.dynamodb_throttle_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = local.tags

  metric_query {
    id          = "throttled"
    expression  = "reads + writes"
    label       = "Throttled requests"
    return_data = true
  }

  metric_query {
    id = "reads"
    metric {
      namespace   = "AWS/DynamoDB"
      metric_name = "ReadThrottleEvents"
      dimensions  = { TableName = each.value }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "writes"
    metric {
      namespace   = "AWS/DynamoDB"
      metric_name = "WriteThrottleEvents"
      dimensions  = { TableName = each.value }
      stat        = "Sum"
      period      = 300
    }
  }
}

# The rollback function's own errors (an automatic rollback that failed): notifies the topic for people
# (e-mail, pager); the rollback subscription's filter excludes it, and it does not gate canaries.
resource "aws_cloudwatch_metric_alarm" "rollback_errors" {
  alarm_name          = local.rollback_alarm_name
  alarm_description   = "CRITICAL: the automatic rollback function failed - page a person (runbook: automatic rollback failed)"
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = local.rollback_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = local.tags
}

locals {
  # per function: the six alarms of each function, function by function (sorted keys)
  function_alarms = flatten([
    for k in sort(keys(var.functions)) : [
      aws_cloudwatch_metric_alarm.errors[k],
      aws_cloudwatch_metric_alarm.error_rate[k],
      aws_cloudwatch_metric_alarm.p95_duration[k],
      aws_cloudwatch_metric_alarm.p95_critical[k],
      aws_cloudwatch_metric_alarm.duration_near_timeout[k],
      aws_cloudwatch_metric_alarm.throttles[k],
    ]
  ])
  alarm_names = concat(
    [for a in local.function_alarms : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.version_error_rate : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.version_p95_duration : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.dynamodb_throttles : a.alarm_name],
  )
}
