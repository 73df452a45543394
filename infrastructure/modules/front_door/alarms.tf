# The front door's alarms (the design's figures): API 4xx > 5 in 5 minutes, API 5xx > 3 in 5 minutes
# (immediate rollback), p95 latency > 5 s for 10 minutes. They notify the alerts topic (whose subscriber
# rolls the alias back) and the root adds them to `alarm_names`, so they veto a canary too.
locals {
  api_dimensions = { ApiName = local.api_name, Stage = var.stage_name }
}

resource "aws_cloudwatch_metric_alarm" "client_errors" {
  alarm_name          = "${var.service_name}-api-4xx-${var.environment}"
  alarm_description   = "API 4xx > ${var.client_errors_threshold} in 5 minutes"
  namespace           = "AWS/ApiGateway"
  metric_name         = "4XXError"
  dimensions          = local.api_dimensions
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.client_errors_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [var.topic_arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "server_errors" {
  alarm_name          = "${var.service_name}-api-5xx-${var.environment}"
  alarm_description   = "CRITICAL: API 5xx > ${var.server_errors_threshold} in 5 minutes - immediate rollback"
  namespace           = "AWS/ApiGateway"
  metric_name         = "5XXError"
  dimensions          = local.api_dimensions
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.server_errors_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [var.topic_arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "latency_p95" {
  alarm_name          = "${var.service_name}-api-p95-latency-${var.environment}"
  alarm_description   = "API p95 latency > ${var.latency_p95_threshold_ms} ms for 10 minutes"
  namespace           = "AWS/ApiGateway"
  metric_name         = "Latency"
  dimensions          = local.api_dimensions
  extended_statistic  = "p95"
  period              = 300
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = var.latency_p95_threshold_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [var.topic_arn]
  tags                = var.tags
}

# The front door's dashboard: requests, 4xx / 5xx, latency p50/p95/p99, cache hits and misses, alarms.
resource "aws_cloudwatch_dashboard" "front_door" {
  dashboard_name = "${var.service_name}-api-${var.environment}"
  dashboard_body = templatefile("${path.module}/dashboards/front_door.json.tftpl", {
    region = data.aws_region.current.name
    api    = local.api_name
    stage  = var.stage_name
    alarms = [
      aws_cloudwatch_metric_alarm.client_errors.arn,
      aws_cloudwatch_metric_alarm.server_errors.arn,
      aws_cloudwatch_metric_alarm.latency_p95.arn,
    ]
  })
}
