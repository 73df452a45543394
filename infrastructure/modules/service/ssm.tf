# The environment's settings from its parameter file, readable by the function under
# /<service>/<environment>/. SecureString with the environment's key.
locals {
  parameters = {
    "environment"            = var.environment
    "api-version-stage"      = var.api_version_stage
    "memory-size"            = tostring(var.functions[local.primary_key].memory_size)
    "xray-tracing"           = tostring(var.xray_enabled)
    "advanced-security"      = tostring(var.advanced_security)
    "daily-quota-limit"      = tostring(var.daily_quota_limit)
    "canary-traffic-percent" = tostring(var.canary_traffic_percent)
    "alias-name"             = local.alias_name
    "history-table"          = local.history_name
  }
}

resource "aws_ssm_parameter" "settings" {
  for_each = local.parameters

  name        = "${local.parameter_prefix}/${each.key}"
  description = "${var.service_name} ${var.environment}: ${each.key}"
  type        = "SecureString"
  key_id      = aws_kms_key.this.arn
  value       = each.value
  tags        = local.tags
}
