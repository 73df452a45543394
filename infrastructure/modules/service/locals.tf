data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  # Resource names follow {service}-{component}-{environment}; the function itself is the stack name.
  prefix        = var.service_name
  suffix        = var.environment
  function_name = "${var.service_name}-${var.environment}"
  rollback_name = "${var.service_name}-rollback-${var.environment}"
  # the alarm on the rollback function's own errors (alarms.tf): pages, never invokes the function
  rollback_alarm_name = "${var.service_name}-rollback-errors-${var.environment}"
  history_name        = "${var.service_name}-deployments-${var.environment}"
  topic_name          = "${var.service_name}-alerts-${var.environment}"
  dlq_name            = "${var.service_name}-dlq-${var.environment}"
  alias_name          = "live"
  parameter_prefix    = "/${var.service_name}/${var.environment}"

  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  log_group_arn_prefix = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda"
  parameter_arn_prefix = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.parameter_prefix}"
  tracing_mode         = var.xray_enabled ? "Active" : "PassThrough"

  tags = merge(var.tags, {
    Service     = var.service_name
    Environment = var.environment
    ManagedBy   = "terraform"
  })
}
