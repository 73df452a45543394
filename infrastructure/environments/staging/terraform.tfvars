# The staging environment's parameter file: infrastructure only (design: security level full).
# The service's own settings (name, region, packages, runtime, architecture, memory, timeout, log
# retention, X-Ray, environment variables) come from stageflow.toml (docs/infrastructure.md).
environment              = "staging"
api_version_stage        = "v1-staging"
enable_advanced_security = true
daily_quota_limit        = 100
alert_email              = "platform-alerts@example.com"
reserved_concurrency     = 50
