# The dev environment's parameter file: infrastructure only (design: security level basic).
# The service's own settings (name, region, packages, runtime, architecture, memory, timeout, log
# retention, X-Ray, environment variables) come from stageflow.toml (docs/infrastructure.md).
environment              = "dev"
api_version_stage        = "v1-dev"
enable_advanced_security = false
daily_quota_limit        = 50
alert_email              = ""
reserved_concurrency     = 20
