# The service's own resources: tables, queues, buckets, and extra policies for the function's role.
# Every environment root calls this module (module "resources" in infrastructure/environments/*/main.tf)
# with the service's name, the environment and the function's name and role. It is empty here: add
# your resources in this directory (more .tf files are fine) and they are planned, reviewed and applied
# with the rest of each environment by `stageflow deploy` / `stageflow apply`.
#
# Name resources "${var.service_name}-<component>-${var.environment}" like the service module does,
# so every environment gets its own. The function reads their names from its environment: put them in
# stageflow.toml ([environments.NAME.environment], e.g. ORDERS_TABLE = "sample-api-orders-dev"), or
# derive them in the code from SERVICE_NAME and ENVIRONMENT, which the function always has.
#
# Example (a table and the function's access to it):
#
#   resource "aws_dynamodb_table" "orders" {
#     name         = "${var.service_name}-orders-${var.environment}"
#     billing_mode = "PAY_PER_REQUEST"
#     hash_key     = "id"
#     attribute {
#       name = "id"
#       type = "S"
#     }
#     point_in_time_recovery {
#       enabled = true
#     }
#     server_side_encryption {
#       enabled = true
#     }
#   }
#
#   data "aws_iam_policy_document" "orders" {
#     statement {
#       actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
#       resources = [aws_dynamodb_table.orders.arn]
#     }
#   }
#
#   resource "aws_iam_role_policy" "orders" {
#     name   = "orders-table"
#     role   = var.function_role_name
#     policy = data.aws_iam_policy_document.orders.json
#   }
#
# and in outputs.tf: outputs = { orders_table = aws_dynamodb_table.orders.name }
# and table_names = [aws_dynamodb_table.orders.name] (the root gives it a throttling alarm that gates canaries)
