# One CloudWatch dashboard per environment: alias traffic per version, errors and error rate, p95/p99,
# throttles, the alarms' states and the deployments stageflow published (Stageflow/Delivery).
# The body is a templatefile() JSON template (dashboards/service.json.tftpl); the tests render it with
# Terraform and check that every widget's metric is one the module's alarms use or one the tool
# publishes (stageflow.dora.PUBLISHED_METRICS).
resource "aws_cloudwatch_dashboard" "service" {
  dashboard_name = "${local.prefix}-${local.suffix}"
  dashboard_body = templatefile("${path.module}/dashboards/service.json.tftpl", {
    region         = local.region
    service        = var.service_name
    environment    = var.environment
    function_name  = local.function_name
    alias_resource = local.alias_resource
    alarms = [
      aws_cloudwatch_metric_alarm.errors.arn,
      aws_cloudwatch_metric_alarm.error_rate.arn,
      aws_cloudwatch_metric_alarm.p95_duration.arn,
      aws_cloudwatch_metric_alarm.p95_critical.arn,
      aws_cloudwatch_metric_alarm.duration_near_timeout.arn,
      aws_cloudwatch_metric_alarm.throttles.arn,
    ]
  })
}
