# The environment roots pass this on as their `service_resources` output.
output "outputs" {
  description = "What the service's resources expose (names, ARNs, URLs), as a map."
  value       = {}
}

# The root gives each of these DynamoDB tables a throttled-requests alarm (modules/service alarms.tf):
# list your tables' names here, e.g. [aws_dynamodb_table.orders.name].
output "table_names" {
  description = "The service's own DynamoDB tables (each gets a throttling alarm that gates canaries)."
  value       = []
}
