output "url" {
  description = "The stage's invoke URL: the service's HTTP base URL (smoke, integration, load)."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "api_id" {
  description = "The REST API's id."
  value       = aws_api_gateway_rest_api.this.id
}

output "stage_name" {
  description = "The stage (ApiVersionStage)."
  value       = aws_api_gateway_stage.this.stage_name
}

output "alarm_names" {
  description = "The front door's 4xx / 5xx / latency alarms: they veto a canary when in ALARM."
  value = [
    aws_cloudwatch_metric_alarm.client_errors.alarm_name,
    aws_cloudwatch_metric_alarm.server_errors.alarm_name,
    aws_cloudwatch_metric_alarm.latency_p95.alarm_name,
  ]
}
