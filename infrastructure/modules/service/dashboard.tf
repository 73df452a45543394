# One CloudWatch dashboard per environment (every function's lines in each widget): alias traffic per version, errors and error rate, p95/p99,
# throttles, the alarms' states and the deployments stageflow published (Stageflow/Delivery).
# The body is a templatefile() JSON template (dashboards/service.json.tftpl); the tests render it with
# Terraform and check that every widget's metric is one the module's alarms use or one the tool
# publishes (stageflow.dora.PUBLISHED_METRICS).
resource "aws_cloudwatch_dashboard" "service" {
  dashboard_name = "${local.prefix}-${local.suffix}"
  dashboard_body = templatefile("${path.module}/dashboards/service.json.tftpl", {
    region      = local.region
    service     = var.service_name
    environment = var.environment
    alias       = local.alias_name
    functions   = [for k in sort(keys(var.functions)) : local.function_names[k]]
    # one function: the ids and labels it always had; several: numbered ids, labels with the name
    ids    = [for i, k in sort(keys(var.functions)) : length(var.functions) > 1 ? tostring(i) : ""]
    labels = [for k in sort(keys(var.functions)) : length(var.functions) > 1 ? "${local.function_names[k]} " : ""]
    alarms = [for a in local.function_alarms : a.arn]
  })
}
