# Roles of the pipeline, the CodeBuild projects and the rollback trigger. No managed administrator
# policy, no wildcard action; Resource "*" only for the few read actions AWS cannot scope and for
# kms:CreateKey under a tag condition.
locals {
  arn_prefix = {
    lambda     = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.service_name}-*"
    iam_role   = "arn:${local.partition}:iam::${local.account_id}:role/${var.service_name}-*"
    log_group  = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${var.service_name}-*"
    alarm      = "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${var.service_name}-*"
    sns        = "arn:${local.partition}:sns:${local.region}:${local.account_id}:${var.service_name}-*"
    sqs        = "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${var.service_name}-*"
    table      = "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${var.service_name}-*"
    parameter  = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${var.service_name}/*"
    kms_key    = "arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"
    kms_alias  = "arn:${local.partition}:kms:${local.region}:${local.account_id}:alias/${var.service_name}-*"
    build_logs = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_name}:*"
    reports    = "arn:${local.partition}:codebuild:${local.region}:${local.account_id}:report-group/${var.service_name}-*"
  }
  lock_table_arn = "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${var.state_lock_table}"
}

# --- CodePipeline ----------------------------------------------------------------------------------
data "aws_iam_policy_document" "pipeline_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["codepipeline.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "pipeline" {
  name               = "${var.service_name}-pipeline"
  assume_role_policy = data.aws_iam_policy_document.pipeline_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "pipeline" {
  statement {
    sid       = "Artifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:GetBucketVersioning", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.artifacts.arn, "${aws_s3_bucket.artifacts.arn}/*"]
  }

  statement {
    sid       = "ArtifactEncryption"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.pipeline.arn]
  }

  statement {
    sid       = "RunTheProjects"
    actions   = ["codebuild:StartBuild", "codebuild:BatchGetBuilds", "codebuild:StopBuild"]
    resources = concat([for p in aws_codebuild_project.pipeline : p.arn], [aws_codebuild_project.image.arn])
  }

  statement {
    sid       = "Source"
    actions   = ["codestar-connections:UseConnection", "codeconnections:UseConnection"]
    resources = [aws_codestarconnections_connection.source.arn]
  }

  statement {
    sid       = "ApprovalRequests"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.notifications.arn]
  }
}

resource "aws_iam_role_policy" "pipeline" {
  name   = "${var.service_name}-pipeline"
  role   = aws_iam_role.pipeline.id
  policy = data.aws_iam_policy_document.pipeline.json
}

# --- CodeBuild: shared trust and base permissions --------------------------------------------------
data "aws_iam_policy_document" "codebuild_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["codebuild.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# What every project needs: its logs, the artifacts and cache, its test reports, the pipeline key.
data "aws_iam_policy_document" "codebuild_base" {
  statement {
    sid       = "BuildLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [local.arn_prefix.build_logs]
  }

  statement {
    sid       = "ArtifactsAndCache"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:GetBucketAcl", "s3:GetBucketLocation", "s3:ListBucket"]
    resources = [aws_s3_bucket.artifacts.arn, "${aws_s3_bucket.artifacts.arn}/*"]
  }

  statement {
    sid       = "PipelineKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.pipeline.arn]
  }

  statement {
    sid = "TestReports"
    actions = [
      "codebuild:CreateReportGroup",
      "codebuild:CreateReport",
      "codebuild:UpdateReport",
      "codebuild:BatchPutTestCases",
      "codebuild:BatchPutCodeCoverages",
    ]
    resources = [local.arn_prefix.reports]
  }
}

# --- the build and integration projects ------------------------------------------------------------
resource "aws_iam_role" "builder" {
  name               = "${var.service_name}-codebuild-builder"
  assume_role_policy = data.aws_iam_policy_document.codebuild_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "builder" {
  name   = "${var.service_name}-codebuild-builder"
  role   = aws_iam_role.builder.id
  policy = data.aws_iam_policy_document.codebuild_base.json
}

# Integration tests call the deployed service and read its metrics, alarms and history.
data "aws_iam_policy_document" "integration" {
  statement {
    sid       = "InvokeTheService"
    actions   = ["lambda:InvokeFunction", "lambda:GetFunctionConfiguration", "lambda:GetAlias"]
    resources = [local.arn_prefix.lambda]
  }

  statement {
    sid       = "ReadAlarms"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = [local.arn_prefix.alarm]
  }

  statement {
    sid       = "ReadHistory"
    actions   = ["dynamodb:GetItem", "dynamodb:Query"]
    resources = [local.arn_prefix.table, "${local.arn_prefix.table}/index/*"]
  }

  # The chaos stage (PreProductionChaos: stageflow chaos staging --suite full) runs the environment's
  # FIS experiment templates (infrastructure/modules/chaos) and watches them.
  statement {
    sid       = "RunChaosExperiments"
    actions   = ["fis:StartExperiment", "fis:GetExperiment", "fis:StopExperiment", "fis:TagResource"]
    resources = ["arn:${local.partition}:fis:${local.region}:${local.account_id}:experiment-template/*", "arn:${local.partition}:fis:${local.region}:${local.account_id}:experiment/*"]
  }

  statement {
    sid       = "FindChaosTemplatesNotScopableByAws"
    actions   = ["fis:ListExperimentTemplates"]
    resources = ["*"]
  }

  statement {
    sid       = "ReadMetricsNotScopableByAws"
    actions   = ["cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics", "sts:GetCallerIdentity"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "builder_integration" {
  name   = "${var.service_name}-codebuild-integration"
  role   = aws_iam_role.builder.id
  policy = data.aws_iam_policy_document.integration.json
}

# --- the deploy and rollback projects: Terraform apply of the service module, the canary -----------
resource "aws_iam_role" "deployer" {
  name               = "${var.service_name}-codebuild-deployer"
  assume_role_policy = data.aws_iam_policy_document.codebuild_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "deployer_base" {
  name   = "${var.service_name}-codebuild-deployer-base"
  role   = aws_iam_role.deployer.id
  policy = data.aws_iam_policy_document.codebuild_base.json
}

data "aws_iam_policy_document" "deployer" {
  statement {
    sid       = "TerraformState"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.state_bucket}", "arn:${local.partition}:s3:::${var.state_bucket}/${var.service_name}/*"]
  }

  statement {
    sid       = "TerraformLock"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:DescribeTable"]
    resources = [local.lock_table_arn]
  }

  statement {
    sid       = "TerraformStateKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [var.state_kms_key_arn]
  }

  statement {
    sid = "ServiceFunctions"
    actions = [
      "lambda:CreateFunction",
      "lambda:DeleteFunction",
      "lambda:GetFunction",
      "lambda:GetFunctionConfiguration",
      "lambda:GetFunctionCodeSigningConfig",
      "lambda:GetFunctionConcurrency",
      "lambda:GetFunctionRecursionConfig",
      "lambda:GetRuntimeManagementConfig",
      "lambda:UpdateFunctionCode",
      "lambda:UpdateFunctionConfiguration",
      "lambda:PutFunctionConcurrency",
      "lambda:DeleteFunctionConcurrency",
      "lambda:PublishVersion",
      "lambda:ListVersionsByFunction",
      "lambda:CreateAlias",
      "lambda:GetAlias",
      "lambda:UpdateAlias",
      "lambda:DeleteAlias",
      "lambda:ListAliases",
      "lambda:AddPermission",
      "lambda:RemovePermission",
      "lambda:GetPolicy",
      "lambda:InvokeFunction",
      "lambda:TagResource",
      "lambda:UntagResource",
      "lambda:ListTags",
    ]
    resources = [local.arn_prefix.lambda]
  }

  statement {
    sid = "ServiceRoles"
    actions = [
      "iam:CreateRole",
      "iam:DeleteRole",
      "iam:GetRole",
      "iam:UpdateAssumeRolePolicy",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:PutRolePolicy",
      "iam:GetRolePolicy",
      "iam:DeleteRolePolicy",
      "iam:ListRolePolicies",
      "iam:ListAttachedRolePolicies",
      "iam:ListInstanceProfilesForRole",
    ]
    resources = [local.arn_prefix.iam_role]
  }

  statement {
    sid       = "PassServiceRolesToLambdaOnly"
    actions   = ["iam:PassRole"]
    resources = [local.arn_prefix.iam_role]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["lambda.amazonaws.com"]
    }
  }

  statement {
    sid       = "AttachOnlyTheXRayWritePolicy"
    actions   = ["iam:AttachRolePolicy", "iam:DetachRolePolicy"]
    resources = [local.arn_prefix.iam_role]

    condition {
      test     = "ArnEquals"
      variable = "iam:PolicyARN"
      values   = ["arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"]
    }
  }

  statement {
    sid = "ServiceLogGroups"
    actions = [
      "logs:CreateLogGroup",
      "logs:DeleteLogGroup",
      "logs:PutRetentionPolicy",
      "logs:AssociateKmsKey",
      "logs:DisassociateKmsKey",
      "logs:TagResource",
      "logs:UntagResource",
      "logs:ListTagsForResource",
      "logs:TagLogGroup",
      "logs:ListTagsLogGroup",
      "logs:DescribeLogGroups",
    ]
    resources = [local.arn_prefix.log_group, "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group::log-stream:"]
  }

  statement {
    sid = "ServiceAlarms"
    actions = [
      "cloudwatch:PutMetricAlarm",
      "cloudwatch:DeleteAlarms",
      "cloudwatch:DescribeAlarms",
      "cloudwatch:TagResource",
      "cloudwatch:UntagResource",
      "cloudwatch:ListTagsForResource",
    ]
    resources = [local.arn_prefix.alarm]
  }

  statement {
    sid = "ServiceTopics"
    actions = [
      "sns:CreateTopic",
      "sns:DeleteTopic",
      "sns:GetTopicAttributes",
      "sns:SetTopicAttributes",
      "sns:Subscribe",
      "sns:Unsubscribe",
      "sns:GetSubscriptionAttributes",
      "sns:SetSubscriptionAttributes",
      "sns:Publish",
      "sns:TagResource",
      "sns:UntagResource",
      "sns:ListTagsForResource",
    ]
    resources = [local.arn_prefix.sns]
  }

  statement {
    sid = "ServiceQueues"
    actions = [
      "sqs:CreateQueue",
      "sqs:DeleteQueue",
      "sqs:GetQueueAttributes",
      "sqs:SetQueueAttributes",
      "sqs:TagQueue",
      "sqs:UntagQueue",
      "sqs:ListQueueTags",
    ]
    resources = [local.arn_prefix.sqs]
  }

  statement {
    sid = "ServiceTables"
    actions = [
      "dynamodb:CreateTable",
      "dynamodb:DeleteTable",
      "dynamodb:DescribeTable",
      "dynamodb:UpdateTable",
      "dynamodb:DescribeContinuousBackups",
      "dynamodb:UpdateContinuousBackups",
      "dynamodb:DescribeTimeToLive",
      "dynamodb:TagResource",
      "dynamodb:UntagResource",
      "dynamodb:ListTagsOfResource",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
    ]
    resources = [local.arn_prefix.table, "${local.arn_prefix.table}/index/*"]
  }

  statement {
    sid = "ServiceParameters"
    actions = [
      "ssm:PutParameter",
      "ssm:GetParameter",
      "ssm:GetParameters",
      "ssm:GetParametersByPath",
      "ssm:DeleteParameter",
      "ssm:AddTagsToResource",
      "ssm:RemoveTagsFromResource",
      "ssm:ListTagsForResource",
    ]
    resources = [local.arn_prefix.parameter]
  }

  statement {
    sid       = "CreateOnlyServiceTaggedKeys"
    actions   = ["kms:CreateKey", "kms:TagResource"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/Service"
      values   = [var.service_name]
    }
  }

  statement {
    sid = "ManageServiceTaggedKeys"
    actions = [
      "kms:DescribeKey",
      "kms:GetKeyPolicy",
      "kms:PutKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:EnableKeyRotation",
      "kms:ListResourceTags",
      "kms:UntagResource",
      "kms:ScheduleKeyDeletion",
      "kms:CreateGrant",
      "kms:Decrypt",
      "kms:Encrypt",
      "kms:GenerateDataKey",
    ]
    resources = [local.arn_prefix.kms_key]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/Service"
      values   = [var.service_name]
    }
  }

  statement {
    sid       = "ServiceKeyAliases"
    actions   = ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"]
    resources = [local.arn_prefix.kms_alias, local.arn_prefix.kms_key]
  }

  statement {
    sid = "ReadsAwsCannotScope"
    actions = [
      "sts:GetCallerIdentity",
      "cloudwatch:GetMetricData",
      "cloudwatch:GetMetricStatistics",
      "ssm:DescribeParameters",
      "kms:ListAliases",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "deployer" {
  name   = "${var.service_name}-codebuild-deployer"
  role   = aws_iam_role.deployer.id
  policy = data.aws_iam_policy_document.deployer.json
}

resource "aws_iam_role_policy" "deployer_rollback_source" {
  name = "${var.service_name}-codebuild-rollback-source"
  role = aws_iam_role.deployer.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "CheckOutTheRepository"
      Effect   = "Allow"
      Action   = ["codestar-connections:UseConnection", "codeconnections:UseConnection", "codestar-connections:GetConnectionToken", "codeconnections:GetConnectionToken"]
      Resource = [aws_codestarconnections_connection.source.arn]
    }]
  })
}

# --- EventBridge starts the rollback project ------------------------------------------------------
data "aws_iam_policy_document" "events_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "events" {
  name               = "${var.service_name}-pipeline-events"
  assume_role_policy = data.aws_iam_policy_document.events_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "events" {
  statement {
    sid       = "StartTheRollback"
    actions   = ["codebuild:StartBuild"]
    resources = [aws_codebuild_project.rollback.arn]
  }
}

resource "aws_iam_role_policy" "events" {
  name   = "${var.service_name}-pipeline-events"
  role   = aws_iam_role.events.id
  policy = data.aws_iam_policy_document.events.json
}
