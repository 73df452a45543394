output "pipeline_name" {
  description = "The CodePipeline."
  value       = aws_codepipeline.this.name
}

output "artifact_bucket" {
  description = "The encrypted, versioned artifact bucket."
  value       = aws_s3_bucket.artifacts.bucket
}

output "project_names" {
  description = "CodeBuild projects by role: build, deploy, integration, rollback."
  value       = merge({ for k, p in aws_codebuild_project.pipeline : k => p.name }, { rollback = aws_codebuild_project.rollback.name })
}

output "notification_topic_arn" {
  description = "Pipeline notifications and approval requests."
  value       = aws_sns_topic.notifications.arn
}

output "source_connection_arn" {
  description = "The source connection (authorize it once in the console)."
  value       = aws_codestarconnections_connection.source.arn
}
