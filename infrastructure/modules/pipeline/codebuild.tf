# CodeBuild projects run buildspecs/<name>.yml, which install stageflow and run its nox sessions.
# All of them log to CloudWatch (KMS-encrypted log group), cache in the artifact bucket, run
# unprivileged on a current AWS-managed image, and encrypt their output with the pipeline key. The one
# privileged project, {service}-image (its Docker daemon needs it), is a resource of its own (images.tf).
locals {
  # name => role and timeout. The deploy project's timeout covers a full production canary
  # (10 % and 50 % for 15 min each, 30 min post-deploy monitoring) with room to spare.
  pipeline_projects = {
    build       = { role = "builder", timeout = 30 }
    deploy      = { role = "deployer", timeout = 120 }
    integration = { role = "builder", timeout = 60 }
  }
  project_roles = {
    builder  = aws_iam_role.builder.arn
    deployer = aws_iam_role.deployer.arn
  }
  # projects that notify (deploys and rollbacks): they get the Slack webhook from Secrets Manager
  notifying_projects = ["deploy"]
}

resource "aws_cloudwatch_log_group" "codebuild" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.pipeline.arn
  tags              = local.tags
}

resource "aws_codebuild_project" "pipeline" {
  for_each = local.pipeline_projects

  name           = "${var.service_name}-${each.key}"
  description    = "${var.service_name}: buildspecs/${each.key}.yml"
  service_role   = local.project_roles[each.value.role]
  build_timeout  = each.value.timeout
  queued_timeout = 60
  encryption_key = aws_kms_key.pipeline.arn

  artifacts {
    type = "CODEPIPELINE"
  }

  source {
    type      = "CODEPIPELINE"
    buildspec = "buildspecs/${each.key}.yml"
  }

  environment {
    type                        = "LINUX_CONTAINER"
    compute_type                = var.compute_type
    image                       = var.build_image
    image_pull_credentials_type = "CODEBUILD"
    privileged_mode             = false

    environment_variable {
      name  = "STAGEFLOW_SERVICE"
      value = var.service_name
    }

    # approval notices carry the deployment's HTML report, stored here behind a presigned URL (issue 26)
    dynamic "environment_variable" {
      for_each = contains(local.notifying_projects, each.key) ? [aws_s3_bucket.artifacts.bucket] : []
      content {
        name  = "STAGEFLOW_REPORT_BUCKET"
        value = environment_variable.value
      }
    }

    # the Slack webhook: read from Secrets Manager when the build starts, never stored in Terraform
    dynamic "environment_variable" {
      for_each = contains(local.notifying_projects, each.key) && var.slack_webhook_secret_arn != "" ? [var.slack_webhook_secret_arn] : []
      content {
        name  = "STAGEFLOW_SLACK_WEBHOOK"
        type  = "SECRETS_MANAGER"
        value = environment_variable.value
      }
    }
  }

  cache {
    type     = "S3"
    location = "${aws_s3_bucket.artifacts.bucket}/cache/${each.key}"
  }

  logs_config {
    cloudwatch_logs {
      status      = "ENABLED"
      group_name  = aws_cloudwatch_log_group.codebuild.name
      stream_name = each.key
    }

    s3_logs {
      status = "DISABLED"
    }
  }

  tags = local.tags
}

# The rollback project runs outside the pipeline (an approval rejected or timed out in
# DeployProduction, or on-call starting it by hand), so it checks the repository out itself.
resource "aws_codebuild_project" "rollback" {
  name           = "${var.service_name}-rollback"
  description    = "${var.service_name}: buildspecs/rollback.yml (restore the last good version)"
  service_role   = aws_iam_role.deployer.arn
  build_timeout  = 30
  queued_timeout = 30
  encryption_key = aws_kms_key.pipeline.arn
  source_version = var.branch

  artifacts {
    type = "NO_ARTIFACTS"
  }

  source {
    type            = "GITHUB"
    location        = var.repository_url
    git_clone_depth = 1
    buildspec       = "buildspecs/rollback.yml"

    auth {
      type     = "CODECONNECTIONS"
      resource = aws_codestarconnections_connection.source.arn
    }
  }

  environment {
    type                        = "LINUX_CONTAINER"
    compute_type                = var.compute_type
    image                       = var.build_image
    image_pull_credentials_type = "CODEBUILD"
    privileged_mode             = false

    environment_variable {
      name  = "STAGEFLOW_SERVICE"
      value = var.service_name
    }

    environment_variable {
      name  = "STAGEFLOW_ENV"
      value = "prod"
    }

    dynamic "environment_variable" {
      for_each = var.slack_webhook_secret_arn != "" ? [var.slack_webhook_secret_arn] : []
      content {
        name  = "STAGEFLOW_SLACK_WEBHOOK"
        type  = "SECRETS_MANAGER"
        value = environment_variable.value
      }
    }
  }

  cache {
    type     = "S3"
    location = "${aws_s3_bucket.artifacts.bucket}/cache/rollback"
  }

  logs_config {
    cloudwatch_logs {
      status      = "ENABLED"
      group_name  = aws_cloudwatch_log_group.codebuild.name
      stream_name = "rollback"
    }

    s3_logs {
      status = "DISABLED"
    }
  }

  tags = local.tags
}
