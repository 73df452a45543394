"""stageflow: a Terraform-driving build and deploy tool with canary releases on AWS Lambda."""

__version__ = "0.1.0"
