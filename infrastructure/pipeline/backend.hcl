# S3 backend of the release pipeline (one pipeline releases dev, staging and prod).
bucket         = "sample-api-terraform-state"
key            = "sample-api/pipeline/terraform.tfstate"
region         = "us-east-1"
dynamodb_table = "sample-api-terraform-locks"
encrypt        = true
