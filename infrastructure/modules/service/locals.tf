data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  # Resource names follow {service}-{component}-{environment}; the function itself is the stack name.
  prefix = var.service_name
  suffix = var.environment
  # Every function by key: {service}-{key}-{environment}; the key equal to the service's name (a
  # one-function service) keeps {service}-{environment} (stageflow.config.functions.lambda_function_name).
  function_names = {
    for k in keys(var.functions) :
    k => k == var.service_name ? "${var.service_name}-${var.environment}" : "${var.service_name}-${k}-${var.environment}"
  }
  # Alarm names: {service}-{key}-<alarm>-{environment}; the service-named function keeps {service}-<alarm>-{environment}.
  alarm_infix = { for k in keys(var.functions) : k => k == var.service_name ? "" : "${k}-" }
  # ... and their descriptions start with the function's name (the service-named one's: as before)
  alarm_subject = { for k in keys(var.functions) : k => k == var.service_name ? "" : "${local.function_names[k]}: " }
  # The first function (the service-named one, else the first key): function_name/alias_name outputs,
  # the per-version alarms, the rollback function's STAGEFLOW_FUNCTION_NAME.
  primary_key   = contains(keys(var.functions), var.service_name) ? var.service_name : sort(keys(var.functions))[0]
  function_name = local.function_names[local.primary_key]
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
