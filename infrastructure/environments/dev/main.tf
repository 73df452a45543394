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
