# The deployment history (docs/infrastructure.md, "Deployment history table", is the contract that
# stageflow.history follows):
#   pk        S  "<service>#<environment>"                    partition key
#   sk        S  deployment id, or "LOCK" for the deploy lock  sort key
#   pk_status S  "<service>#<environment>#<STATUS>"           GSI by_status partition key
#   started_at S ISO-8601 UTC start time                      GSI by_status sort key
resource "aws_dynamodb_table" "history" {
  name                        = local.history_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = true

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "pk_status"
    type = "S"
  }

  attribute {
    name = "started_at"
    type = "S"
  }

  global_secondary_index {
    name            = "by_status"
    hash_key        = "pk_status"
    range_key       = "started_at"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = local.tags
}
