# S3 backend of the staging environment (infrastructure/bootstrap creates the bucket and the table).
bucket         = "sample-api-terraform-state"
key            = "sample-api/staging/terraform.tfstate"
region         = "us-east-1"
dynamodb_table = "sample-api-terraform-locks"
encrypt        = true
