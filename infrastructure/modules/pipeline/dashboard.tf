# The pipeline dashboard: failed builds and build durations per CodeBuild project (the metrics of the
# alarms below), and the delivery metrics stageflow publishes for every environment
# (Stageflow/Delivery: deployments, lead time, time to restore). The body is a templatefile() JSON
# template; tests/infrastructure/test_dashboards.py renders it with Terraform and checks every metric.
locals {
  dashboard_projects     = concat([for p in aws_codebuild_project.pipeline : p.name], [aws_codebuild_project.rollback.name])
  dashboard_environments = ["dev", "staging", "prod"]
}

resource "aws_cloudwatch_metric_alarm" "build_failures" {
  for_each = toset(concat(keys(local.pipeline_projects), ["rollback"]))

  alarm_name          = "${var.service_name}-${each.value}-failed-builds"
  alarm_description   = "CodeBuild ${var.service_name}-${each.value}: a build failed"
  namespace           = "AWS/CodeBuild"
  metric_name         = "FailedBuilds"
  dimensions          = { ProjectName = "${var.service_name}-${each.value}" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "build_duration" {
  for_each = local.pipeline_projects

  alarm_name          = "${var.service_name}-${each.key}-build-duration"
  alarm_description   = "CodeBuild ${var.service_name}-${each.key}: a build took over 80 % of its ${each.value.timeout} min timeout"
  namespace           = "AWS/CodeBuild"
  metric_name         = "Duration"
  dimensions          = { ProjectName = "${var.service_name}-${each.key}" }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = each.value.timeout * 60 * 0.8
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_dashboard" "pipeline" {
  dashboard_name = "${var.service_name}-pipeline"
  dashboard_body = templatefile("${path.module}/dashboards/pipeline.json.tftpl", {
    region       = local.region
    service      = var.service_name
    projects     = local.dashboard_projects
    environments = local.dashboard_environments
    alarms       = [for a in aws_cloudwatch_metric_alarm.build_failures : a.arn]
  })
}

# What the deploy project needs for the dashboards and delivery metrics: manage the service's
# dashboards (`{service}-*`, the service module's per environment) and put metrics in
# Stageflow/Delivery only (PutMetricData cannot be scoped to a resource: the namespace condition does).
data "aws_iam_policy_document" "deployer_delivery" {
  statement {
    sid       = "ServiceDashboards"
    actions   = ["cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards"]
    resources = ["arn:${local.partition}:cloudwatch::${local.account_id}:dashboard/${var.service_name}-*"]
  }

  statement {
    sid       = "DeliveryMetricsOnly"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["Stageflow/Delivery"]
    }
  }
}

resource "aws_iam_role_policy" "deployer_delivery" {
  name   = "${var.service_name}-codebuild-deployer-delivery"
  role   = aws_iam_role.deployer.id
  policy = data.aws_iam_policy_document.deployer_delivery.json
}
