# The prod environment's parameter file: infrastructure only (design: security level enterprise).
# The service's own settings (name, region, packages, runtime, architecture, memory, timeout, log
# retention, X-Ray, environment variables) come from stageflow.toml (docs/infrastructure.md).
environment              = "prod"
api_version_stage        = "v1"
enable_advanced_security = true
daily_quota_limit        = 200
alert_email              = "platform-alerts@example.com"
reserved_concurrency     = 200

# Prod only: the first canary step's share of traffic, and the pager for critical alarms.
canary_traffic_percent = 10
pager_https_endpoint   = ""
