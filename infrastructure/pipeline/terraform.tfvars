service_name       = "sample-api"
region             = "us-east-1"
repository_id      = "example-org/sample-api"
repository_url     = "https://github.com/example-org/sample-api.git"
branch             = "main"
notification_email = "platform-releases@example.com"

state_bucket      = "sample-api-terraform-state"
state_lock_table  = "sample-api-terraform-locks"
state_kms_key_arn = "arn:aws:kms:us-east-1:111111111111:key/00000000-0000-0000-0000-000000000000"

# The names the environments' secrets reference (docs/secrets.md, [environments.*.secrets]): the deployer
# reads exactly these. The sample service has none; with docs/secrets.md's example they would be:
# deploy_secret_names    = ["sample-api/prod/database", "sample-api/prod/api-token"]
# deploy_parameter_names = ["/sample-api/prod/api/host"]
