# What every environment root passes in.
variable "service_name" {
  description = "The service's name (stageflow.toml service.name)."
  type        = string
}

variable "environment" {
  description = "The environment: dev, staging or prod."
  type        = string
}

variable "function_name" {
  description = "The service function's name (the first function's, for a service of several)."
  type        = string
}

variable "function_names" {
  description = "Every function's name by key (stageflow.toml [functions.KEY]; a one-function service: its name)."
  type        = map(string)
}

variable "function_role_name" {
  description = "The service function's IAM role: attach the policies the function needs to it."
  type        = string
}
