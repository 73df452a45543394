# The environment roots pass this on as their `service_resources` output.
output "outputs" {
  description = "What the service's resources expose (names, ARNs, URLs), as a map."
  value       = {}
}
