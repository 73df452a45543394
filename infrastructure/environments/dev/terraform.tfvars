# The dev environment's parameter file (design: security level basic).
environment              = "dev"
service_name             = "sample-api"
region                   = "us-east-1"
api_version_stage        = "v1-dev"
lambda_memory_size       = 256
log_retention_days       = 14
enable_xray_tracing      = false
enable_advanced_security = false
daily_quota_limit        = 50
alert_email              = ""
reserved_concurrency     = 20

# The Lambda packages for the first create; later code is published by the deploy step.
package_path          = "../../../build/lambda/sample-api.zip"
rollback_package_path = "../../../build/lambda/stageflow-rollback.zip"
