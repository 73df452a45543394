# S3 backend of the dev environment (infrastructure/bootstrap creates the bucket and the table).
bucket         = "sample-api-terraform-state"
key            = "sample-api/dev/terraform.tfstate"
region         = "us-east-1"
dynamodb_table = "sample-api-terraform-locks"
encrypt        = true
