# The service's HTTP front door: a REST API (not an HTTP API: only REST stages have a response cache,
# and per-stage/per-method throttling with method settings; docs/infrastructure.md) proxying every
# request to the function's `live` alias, so the canary's alias weights decide which version answers,
# exactly as for direct invokes. One stage per environment (the design's ApiVersionStage) with the
# design's throttling and caching, access logs, X-Ray, and 4xx / 5xx / latency alarms (alarms.tf) that
# the environment root adds to `alarm_names` (the canary's alarm gate).
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  api_name   = "${var.service_name}-api-${var.environment}"
  alias_arn  = "${var.function_arn}:${var.alias_name}"
  invoke_uri = "arn:${data.aws_partition.current.partition}:apigateway:${data.aws_region.current.name}:lambda:path/2015-03-31/functions/${local.alias_arn}/invocations"
  caching    = var.cache_ttl_seconds > 0
  access_format = jsonencode({
    requestId      = "$context.requestId"
    ip             = "$context.identity.sourceIp"
    requestTime    = "$context.requestTime"
    httpMethod     = "$context.httpMethod"
    resourcePath   = "$context.resourcePath"
    status         = "$context.status"
    protocol       = "$context.protocol"
    responseLength = "$context.responseLength"
    latency        = "$context.responseLatency"
    integration    = "$context.integration.latency"
    cacheHit       = "$context.integration.status"
  })
  # Every path and method reaches the alias. GET has methods of its own so that only GET answers are
  # cached (the stage cache must never replay a POST); ANY takes everything else.
  methods = {
    root_get  = { resource = "root", method = "GET" }
    root_any  = { resource = "root", method = "ANY" }
    proxy_get = { resource = "proxy", method = "GET" }
    proxy_any = { resource = "proxy", method = "ANY" }
  }
  resource_ids = {
    root  = aws_api_gateway_rest_api.this.root_resource_id
    proxy = aws_api_gateway_resource.proxy.id
  }
}

resource "aws_api_gateway_rest_api" "this" {
  name        = local.api_name
  description = "${var.service_name} (${var.environment}): every request invokes ${var.function_name}:${var.alias_name}"

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "proxy" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "{proxy+}"
}

resource "aws_api_gateway_method" "this" {
  #checkov:skip=CKV_AWS_59:A public HTTP service: the function authenticates its callers itself (the sample has none); an authorizer is the service's choice, not the pipeline's
  #checkov:skip=CKV2_AWS_53:The proxy passes the request unchanged to the function, which validates it
  for_each = local.methods

  rest_api_id        = aws_api_gateway_rest_api.this.id
  resource_id        = local.resource_ids[each.value.resource]
  http_method        = each.value.method
  authorization      = "NONE"
  request_parameters = each.value.resource == "proxy" ? { "method.request.path.proxy" = true } : {}
}

resource "aws_api_gateway_integration" "this" {
  for_each = local.methods

  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = local.resource_ids[each.value.resource]
  http_method             = aws_api_gateway_method.this[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = local.invoke_uri
  # the cache is keyed by the path (with the query string, which API Gateway adds for proxy methods)
  cache_key_parameters = each.value.resource == "proxy" ? ["method.request.path.proxy"] : []
}

# API Gateway may invoke the alias (and only the alias), from this API's stages.
resource "aws_lambda_permission" "api" {
  statement_id  = "AllowFrontDoor-${var.environment}"
  action        = "lambda:InvokeFunction"
  function_name = var.function_name
  qualifier     = var.alias_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.this.execution_arn}/*/*"
}

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id

  # An empty cache_key_parameters is null in the state after a create and [] when the plan proposes the
  # configuration's value (seen when an environment's service resources were moved): hashed raw, that
  # difference alone redeployed an unchanged API. Empty is hashed as null either way.
  triggers = {
    redeployment = sha1(jsonencode([
      aws_api_gateway_resource.proxy.id,
      [for k, m in aws_api_gateway_method.this : m.id],
      [for k, i in aws_api_gateway_integration.this : [
        i.id, i.uri, try(length(i.cache_key_parameters) > 0, false) ? i.cache_key_parameters : null
      ]],
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_338:Retention is the design's per-environment figure (dev 14, staging 30, prod 90 days)
  name              = "/aws/apigateway/${local.api_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV2_AWS_29:WAF is an account-level choice with its own cost; stage throttling bounds abuse here
  #checkov:skip=CKV2_AWS_51:The backend is Lambda through the AWS_PROXY integration, not an HTTP backend that could check a client certificate
  #checkov:skip=CKV_AWS_120:Caching is the design's per-environment figure: off in dev, 5 min in staging, 15 min in prod
  rest_api_id           = aws_api_gateway_rest_api.this.id
  deployment_id         = aws_api_gateway_deployment.this.id
  stage_name            = var.stage_name
  xray_tracing_enabled  = var.xray_enabled
  cache_cluster_enabled = local.caching
  cache_cluster_size    = local.caching ? var.cache_size_gb : null

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format          = local.access_format
  }

  tags = var.tags
}

# Every method: the stage's throttling, metrics, error logs; no cache (GET below).
resource "aws_api_gateway_method_settings" "all" {
  #checkov:skip=CKV_AWS_225:Caching here would also cache POST/PUT answers; GET has its own cached settings below, for the environment's TTL (off in dev)
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    throttling_rate_limit  = var.throttle_rate_limit
    throttling_burst_limit = var.throttle_burst_limit
    metrics_enabled        = true
    logging_level          = "ERROR"
    caching_enabled        = false
  }
}

# GET answers are cached for the environment's TTL (when it has a cache).
resource "aws_api_gateway_method_settings" "get" {
  for_each = local.caching ? { root = "~1/GET", proxy = "~1{proxy+}/GET" } : {}

  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = each.value

  settings {
    throttling_rate_limit  = var.throttle_rate_limit
    throttling_burst_limit = var.throttle_burst_limit
    metrics_enabled        = true
    logging_level          = "ERROR"
    caching_enabled        = true
    cache_ttl_in_seconds   = var.cache_ttl_seconds
    cache_data_encrypted   = true
  }

  depends_on = [aws_api_gateway_method_settings.all]
}
