# The staging environment's parameter file (design: security level full).
environment              = "staging"
service_name             = "sample-api"
region                   = "us-east-1"
api_version_stage        = "v1-staging"
lambda_memory_size       = 512
log_retention_days       = 30
enable_xray_tracing      = true
enable_advanced_security = true
daily_quota_limit        = 100
alert_email              = "platform-alerts@example.com"
reserved_concurrency     = 50

# The Lambda packages for the first create; later code is published by the deploy step.
package_path          = "../../../build/lambda/sample-api.zip"
rollback_package_path = "../../../build/lambda/stageflow-rollback.zip"
