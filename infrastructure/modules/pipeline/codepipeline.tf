# Source -> Build (image, then checks and zips) -> DeployDev -> IntegrationTest -> DeployStaging -> ApprovalForProduction ->
# DeployProduction (pre-production chaos, canary 10 %, canary approval, 50 %, final approval, 100 %).
# Deploy actions tell buildspecs/deploy.yml what to do through environment variables:
#   STAGEFLOW_ENV         dev | staging | prod
#   STAGEFLOW_CANARY_STEP all (the whole canary in one run) | 1 | 2 | 3 (one step of prod's canary)
#   STAGEFLOW_SUITE       integration | full | chaos (buildspecs/integration.yml)
#   STAGEFLOW_CHAOS_SUITE basic | full: the chaos suite (chaos: stageflow chaos ENV --suite SUITE)
locals {
  # One value sets both windows of a canary approval (issue 26): stageflow's deadline is
  # var.canary_approval_timeout_minutes (STAGEFLOW_APPROVAL_TIMEOUT_MINUTES on the production runs, which
  # record it when the canary pauses), and CodePipeline's manual approval stays open a little longer, so
  # stageflow's deadline always acts first (the scheduled check rolls back) and an approval given after
  # it is refused by `stageflow approve` (exit 2) instead of racing it.
  approval_margin_minutes        = 15
  canary_approval_window_minutes = var.canary_approval_timeout_minutes + local.approval_margin_minutes
  env_vars = {
    deploy_dev      = jsonencode([{ name = "STAGEFLOW_ENV", value = "dev", type = "PLAINTEXT" }, { name = "STAGEFLOW_CANARY_STEP", value = "all", type = "PLAINTEXT" }])
    integration_dev = jsonencode([{ name = "STAGEFLOW_ENV", value = "dev", type = "PLAINTEXT" }, { name = "STAGEFLOW_SUITE", value = "integration", type = "PLAINTEXT" }])
    deploy_staging  = jsonencode([{ name = "STAGEFLOW_ENV", value = "staging", type = "PLAINTEXT" }, { name = "STAGEFLOW_CANARY_STEP", value = "all", type = "PLAINTEXT" }])
    full_staging    = jsonencode([{ name = "STAGEFLOW_ENV", value = "staging", type = "PLAINTEXT" }, { name = "STAGEFLOW_SUITE", value = "full", type = "PLAINTEXT" }])
    chaos_staging   = jsonencode([{ name = "STAGEFLOW_ENV", value = "staging", type = "PLAINTEXT" }, { name = "STAGEFLOW_SUITE", value = "chaos", type = "PLAINTEXT" }, { name = "STAGEFLOW_CHAOS_SUITE", value = "full", type = "PLAINTEXT" }])
    prod_step_1     = jsonencode([{ name = "STAGEFLOW_ENV", value = "prod", type = "PLAINTEXT" }, { name = "STAGEFLOW_CANARY_STEP", value = "1", type = "PLAINTEXT" }, { name = "STAGEFLOW_APPROVAL_TIMEOUT_MINUTES", value = tostring(var.canary_approval_timeout_minutes), type = "PLAINTEXT" }])
    prod_step_2     = jsonencode([{ name = "STAGEFLOW_ENV", value = "prod", type = "PLAINTEXT" }, { name = "STAGEFLOW_CANARY_STEP", value = "2", type = "PLAINTEXT" }, { name = "STAGEFLOW_APPROVAL_TIMEOUT_MINUTES", value = tostring(var.canary_approval_timeout_minutes), type = "PLAINTEXT" }])
    prod_step_3     = jsonencode([{ name = "STAGEFLOW_ENV", value = "prod", type = "PLAINTEXT" }, { name = "STAGEFLOW_CANARY_STEP", value = "3", type = "PLAINTEXT" }, { name = "STAGEFLOW_APPROVAL_TIMEOUT_MINUTES", value = tostring(var.canary_approval_timeout_minutes), type = "PLAINTEXT" }])
  }
}

resource "aws_codepipeline" "this" {
  name          = local.pipeline_name
  role_arn      = aws_iam_role.pipeline.arn
  pipeline_type = "V2"

  artifact_store {
    type     = "S3"
    location = aws_s3_bucket.artifacts.bucket

    encryption_key {
      id   = aws_kms_key.pipeline.arn
      type = "KMS"
    }
  }

  stage {
    name = "Source"

    action {
      name             = "Source"
      category         = "Source"
      owner            = "AWS"
      provider         = "CodeStarSourceConnection"
      version          = "1"
      output_artifacts = ["source"]

      configuration = {
        ConnectionArn    = aws_codestarconnections_connection.source.arn
        FullRepositoryId = var.repository_id
        BranchName       = var.branch
      }
    }
  }

  # Build once: the image (privileged project: build, scan, push; image.json with its digest), then
  # the checks and the Lambda zips with the manifest of digests (artifacts/ of the "build" artifact).
  # Every deploy action below deploys exactly that artifact (STAGEFLOW_ARTIFACTS) and never rebuilds.
  stage {
    name = "Build"

    action {
      name             = "BuildImage"
      category         = "Build"
      owner            = "AWS"
      provider         = "CodeBuild"
      version          = "1"
      input_artifacts  = ["source"]
      output_artifacts = ["image"]
      run_order        = 1

      configuration = {
        ProjectName = aws_codebuild_project.image.name
      }
    }

    action {
      name             = "BuildAndUnitTest"
      category         = "Build"
      owner            = "AWS"
      provider         = "CodeBuild"
      version          = "1"
      input_artifacts  = ["source", "image"]
      output_artifacts = ["build"]
      run_order        = 2

      configuration = {
        ProjectName   = aws_codebuild_project.pipeline["build"].name
        PrimarySource = "source"
      }
    }
  }

  stage {
    name = "DeployDev"

    action {
      name            = "Deploy"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source", "build"]

      configuration = {
        ProjectName          = aws_codebuild_project.pipeline["deploy"].name
        PrimarySource        = "source"
        EnvironmentVariables = local.env_vars.deploy_dev
      }
    }
  }

  stage {
    name = "IntegrationTest"

    action {
      name            = "IntegrationTestDev"
      category        = "Test"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source"]

      configuration = {
        ProjectName          = aws_codebuild_project.pipeline["integration"].name
        EnvironmentVariables = local.env_vars.integration_dev
      }
    }
  }

  stage {
    name = "DeployStaging"

    action {
      name            = "Deploy"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source", "build"]
      run_order       = 1

      configuration = {
        ProjectName          = aws_codebuild_project.pipeline["deploy"].name
        PrimarySource        = "source"
        EnvironmentVariables = local.env_vars.deploy_staging
      }
    }

    action {
      name            = "FullTestSuite"
      category        = "Test"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source"]
      run_order       = 2

      configuration = {
        ProjectName          = aws_codebuild_project.pipeline["integration"].name
        EnvironmentVariables = local.env_vars.full_staging
      }
    }
  }

  stage {
    name = "ApprovalForProduction"

    action {
      name               = "ApproveProduction"
      category           = "Approval"
      owner              = "AWS"
      provider           = "Manual"
      version            = "1"
      timeout_in_minutes = var.production_approval_timeout_minutes

      configuration = {
        NotificationArn = aws_sns_topic.notifications.arn
        CustomData      = "DevOps and the product owner approve ${var.service_name} for production (auto-rejected after ${var.production_approval_timeout_minutes} min)."
      }
    }
  }

  stage {
    name = "DeployProduction"

    action {
      name            = "PreProductionChaos"
      category        = "Test"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source"]
      run_order       = 1

      configuration = {
        ProjectName          = aws_codebuild_project.pipeline["integration"].name
        EnvironmentVariables = local.env_vars.chaos_staging
      }
    }

    action {
      name            = "Canary10"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source", "build"]
      run_order       = 2

      configuration = {
        ProjectName          = aws_codebuild_project.pipeline["deploy"].name
        PrimarySource        = "source"
        EnvironmentVariables = local.env_vars.prod_step_1
      }
    }

    action {
      name               = "CanaryApproval"
      category           = "Approval"
      owner              = "AWS"
      provider           = "Manual"
      version            = "1"
      run_order          = 3
      timeout_in_minutes = local.canary_approval_window_minutes

      configuration = {
        NotificationArn = aws_sns_topic.notifications.arn
        CustomData      = "Canary at 10 %: approve to raise to 50 %, reject to roll back (rolled back after ${var.canary_approval_timeout_minutes} min; approvals later than that are refused)."
      }
    }

    action {
      name            = "Canary50"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source", "build"]
      run_order       = 4

      configuration = {
        ProjectName          = aws_codebuild_project.pipeline["deploy"].name
        PrimarySource        = "source"
        EnvironmentVariables = local.env_vars.prod_step_2
      }
    }

    action {
      name               = "FinalApproval"
      category           = "Approval"
      owner              = "AWS"
      provider           = "Manual"
      version            = "1"
      run_order          = 5
      timeout_in_minutes = local.canary_approval_window_minutes

      configuration = {
        NotificationArn = aws_sns_topic.notifications.arn
        CustomData      = "Canary at 50 %: approve to promote to 100 %, reject to roll back (rolled back after ${var.canary_approval_timeout_minutes} min; approvals later than that are refused)."
      }
    }

    action {
      name            = "Promote"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source", "build"]
      run_order       = 6

      configuration = {
        ProjectName          = aws_codebuild_project.pipeline["deploy"].name
        PrimarySource        = "source"
        EnvironmentVariables = local.env_vars.prod_step_3
      }
    }
  }

  tags = local.tags
}

# A rejected or timed-out canary approval fails the action; this rule then starts the rollback
# project, which puts the live alias back on the last good version (the 2 h auto-rollback).
resource "aws_cloudwatch_event_rule" "canary_abandoned" {
  name        = "${var.service_name}-canary-abandoned"
  description = "A canary approval in DeployProduction was rejected or timed out"

  event_pattern = jsonencode({
    source        = ["aws.codepipeline"]
    "detail-type" = ["CodePipeline Action Execution State Change"]
    detail = {
      pipeline = [local.pipeline_name]
      stage    = ["DeployProduction"]
      action   = ["CanaryApproval", "FinalApproval"]
      state    = ["FAILED"]
    }
  })

  tags = local.tags
}

resource "aws_cloudwatch_event_target" "rollback" {
  rule     = aws_cloudwatch_event_rule.canary_abandoned.name
  arn      = aws_codebuild_project.rollback.arn
  role_arn = aws_iam_role.events.arn
}
