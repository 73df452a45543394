terraform {
  required_version = ">= 1.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }

  # Partial configuration: `terraform init -backend-config=backend.hcl` (stageflow does this, and
  # writes its own backend for the local emulator).
  backend "s3" {}
}
