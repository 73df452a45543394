# The prod environment's parameter file (design: security level enterprise).
environment              = "prod"
service_name             = "sample-api"
region                   = "us-east-1"
api_version_stage        = "v1"
lambda_memory_size       = 512
log_retention_days       = 90
enable_xray_tracing      = true
enable_advanced_security = true
daily_quota_limit        = 200
alert_email              = "platform-alerts@example.com"
reserved_concurrency     = 200

# The Lambda packages for the first create; later code is published by the deploy step.
package_path          = "../../../build/lambda/sample-api.zip"
rollback_package_path = "../../../build/lambda/stageflow-rollback.zip"

# Prod only: the first canary step's share of traffic, and the pager for critical alarms.
canary_traffic_percent = 10
pager_https_endpoint   = ""
