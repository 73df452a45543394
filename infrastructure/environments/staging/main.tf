provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Service     = var.service_name
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}

module "service" {
  source = "../../modules/service"

  service_name           = var.service_name
  environment            = var.environment
  package_path           = var.package_path
  rollback_package_path  = var.rollback_package_path
  runtime                = var.runtime
  architectures          = var.architectures
  functions              = var.functions
  log_retention_days     = var.log_retention_days
  xray_enabled           = var.enable_xray_tracing
  advanced_security      = var.enable_advanced_security
  api_version_stage      = var.api_version_stage
  daily_quota_limit      = var.daily_quota_limit
  alert_email            = var.alert_email
  pager_https_endpoint   = var.pager_https_endpoint
  canary_traffic_percent = var.canary_traffic_percent
  reserved_concurrency   = var.reserved_concurrency
  tracked_versions       = var.tracked_versions
  data_table_names       = module.resources.table_names
  # the chaos stage's FIS extension on every function (below; staging only)
  layers            = local.fis_extension_layers
  extra_environment = module.chaos.extension_environment
  # the pipeline's boundary on the function roles (docs/security.md)
  permissions_boundary_name = "${var.service_name}-function-boundary"
}

# The service's own resources (tables, queues, extra policies on the function's role): one module that
# every environment root calls (infrastructure/service, docs/infrastructure.md).
module "resources" {
  source = "../../service"

  service_name       = var.service_name
  environment        = var.environment
  function_name      = module.service.function_name
  function_names     = module.service.function_names
  function_role_name = module.service.function_role_name
}

# The HTTP front door (modules/front_door): API Gateway in front of the live alias, the environment's
# throttling and caching from stageflow.toml ([environments.NAME.api]).
module "front_door" {
  source = "../../modules/front_door"

  service_name         = var.service_name
  environment          = var.environment
  stage_name           = var.api_version_stage
  function_name        = var.http_function == "" ? module.service.function_name : module.service.function_names[var.http_function]
  function_arn         = var.http_function == "" ? module.service.function_arn : module.service.function_arns[var.http_function]
  alias_name           = module.service.alias_name
  throttle_rate_limit  = var.api_throttle_rate_limit
  throttle_burst_limit = var.api_throttle_burst_limit
  cache_ttl_seconds    = var.api_cache_ttl_seconds
  xray_enabled         = var.enable_xray_tracing
  log_retention_days   = var.log_retention_days
  kms_key_arn          = module.service.kms_key_arn
  topic_arn            = module.service.topic_arn
}

# The chaos stage (docs/testing.md): staging runs both suites, the basic one (FullTestSuite) and the full
# one before production (PreProductionChaos runs it against staging). Only this root calls
# modules/chaos: dev has no canary gates worth testing and production never gets faults injected.
# FIS's Lambda actions need the AWS FIS extension on the functions: its layer (AWS publishes its ARN per
# region and architecture in a public SSM parameter; var.fis_extension_layer_arn overrides it) and the
# two variables of module.chaos.extension_environment, which the deploy step writes into every
# function's environment (output function_environment) as it does stageflow.toml's plain ones.
data "aws_ssm_parameter" "fis_extension" {
  count = var.fis_extension_layer && var.fis_extension_layer_arn == "" ? 1 : 0
  name  = "/aws/service/fis/lambda-extension/AWS-FIS-extension-${var.architectures[0]}/1.x.x"
}

locals {
  fis_extension_layers = !var.fis_extension_layer ? [] : [
    var.fis_extension_layer_arn != "" ? var.fis_extension_layer_arn : data.aws_ssm_parameter.fis_extension[0].insecure_value
  ]
}

module "chaos" {
  source = "../../modules/chaos"

  service_name       = var.service_name
  environment        = var.environment
  function_arns      = values(module.service.function_arns)
  function_role_name = module.service.function_role_name
  stop_alarm_names   = concat(module.service.alarm_names, module.front_door.alarm_names)
  # a timeout fault outlasts the longest timeout of the service's functions
  timeout_seconds = max([for f in values(var.functions) : f.timeout_seconds]...)
  # the pipeline's boundary on FIS's role (docs/security.md)
  permissions_boundary_name = "${var.service_name}-fis-boundary"
}
