# Roles of the pipeline, the CodeBuild projects and the rollback trigger. No managed administrator
# policy, no wildcard action; Resource "*" only for the few read actions AWS cannot scope and for
# kms:CreateKey under a tag condition. No role may change its own policies or those of a role with more
# rights: the deployer's IAM writes name the service module's function and rollback roles exactly
# (docs/security.md; tests/integration/test_iam_policies.py walks every policy of every root).
locals {
  arn_prefix = {
    lambda     = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.service_name}-*"
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

  # The only roles the deployer may create, change or pass: the service module's two roles of each
  # environment (infrastructure/modules/service/iam.tf names them), never a pattern its own name matches.
  service_role_arns = flatten([
    for env in var.environments : [
      for kind in ["function", "rollback"] :
      "arn:${local.partition}:iam::${local.account_id}:role/${var.service_name}-${kind}-${env}"
    ]
  ])
  # Functions the integration project tests (never a protected environment's: their configuration
  # carries the references to its secrets).
  # a service of several functions names them <service>-<function>-<env> (docs/your-service.md): the
  # pattern stays inside the service's names and ends in the tested environment, never prod
  tested_function_arns = flatten([
    for env in var.integration_environments : [
      "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.service_name}-${env}",
      "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.service_name}-${env}:*",
      "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.service_name}-*-${env}",
      "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.service_name}-*-${env}:*",
    ]
  ])
  # Secrets the deploy resolves (Secrets Manager names get AWS's six-character suffix), exactly these.
  secret_arns = [
    for name in var.deploy_secret_names :
    "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${name}-??????"
  ]
  parameter_arns = [
    for name in var.deploy_parameter_names :
    "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(name, "/")}"
  ]
  artifacts_arn = "arn:${local.partition}:s3:::${local.artifact_bucket}"
  # The permissions boundary of every function role (infrastructure/modules/service/iam.tf names it).
  function_boundary_name = "${var.service_name}-function-boundary"
  function_boundary_arn  = "arn:${local.partition}:iam::${local.account_id}:policy/${local.function_boundary_name}"
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

# What every project needs: its logs, its test reports, the pipeline key. Artifact and cache access is
# per role (below): the pull-request project writes only its own cache prefix, and nothing but the
# deployer writes what the deployer restores and runs (cache/deploy/, cache/rollback/).
data "aws_iam_policy_document" "codebuild_base" {
  statement {
    sid       = "BuildLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [local.arn_prefix.build_logs]
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

# The build and integration projects read the pipeline's artifacts and write theirs and their caches;
# never the deployer's caches.
data "aws_iam_policy_document" "builder_artifacts" {
  statement {
    sid       = "ArtifactsAndCache"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:GetBucketAcl", "s3:GetBucketLocation", "s3:ListBucket"]
    resources = [local.artifacts_arn, "${local.artifacts_arn}/*"]
  }

  statement {
    sid       = "NeverTheDeployersCaches"
    effect    = "Deny"
    actions   = ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:RestoreObject"]
    resources = ["${local.artifacts_arn}/cache/deploy/*", "${local.artifacts_arn}/cache/rollback/*"]
  }
}

resource "aws_iam_role_policy" "builder_artifacts" {
  name   = "${var.service_name}-codebuild-builder-artifacts"
  role   = aws_iam_role.builder.id
  policy = data.aws_iam_policy_document.builder_artifacts.json
}

# Integration tests call the deployed service of the environments they test (not prod's) and read its
# metrics, alarms and history. No GetFunctionConfiguration: the configuration carries the references
# to the environment's secrets, and the tests never need it.
data "aws_iam_policy_document" "integration" {
  statement {
    sid       = "InvokeTheTestedService"
    actions   = ["lambda:InvokeFunction", "lambda:GetAlias"]
    resources = local.tested_function_arns
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
    sid       = "ArtifactsAndCache"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:GetBucketAcl", "s3:GetBucketLocation", "s3:ListBucket"]
    resources = [local.artifacts_arn, "${local.artifacts_arn}/*"]
  }

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

  # The roles Terraform gives the service's functions: created and changed only with the functions'
  # permissions boundary (below), so whatever the deployer writes into them, they can never do more
  # than a function needs, and never anything in IAM. Exact ARNs: no pattern its own name matches.
  # PutRolePermissionsBoundary (only to that boundary) lets it put the boundary on a role made before it.
  statement {
    sid       = "ServiceRolesOnlyUnderTheBoundary"
    actions   = ["iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary"]
    resources = local.service_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [local.function_boundary_arn]
    }
  }

  statement {
    sid = "ServiceRoles"
    actions = [
      "iam:DeleteRole",
      "iam:GetRole",
      "iam:UpdateAssumeRolePolicy",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:GetRolePolicy",
      "iam:ListRolePolicies",
      "iam:ListAttachedRolePolicies",
      "iam:ListInstanceProfilesForRole",
    ]
    resources = local.service_role_arns
  }

  statement {
    sid       = "PassServiceRolesToLambdaOnly"
    actions   = ["iam:PassRole"]
    resources = local.service_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["lambda.amazonaws.com"]
    }
  }

  statement {
    sid       = "AttachOnlyTheXRayWritePolicy"
    actions   = ["iam:AttachRolePolicy", "iam:DetachRolePolicy"]
    resources = local.service_role_arns

    condition {
      test     = "ArnEquals"
      variable = "iam:PolicyARN"
      values   = ["arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"]
    }

    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [local.function_boundary_arn]
    }
  }

  statement {
    sid       = "NeverLiftTheBoundary"
    effect    = "Deny"
    actions   = ["iam:DeleteRolePermissionsBoundary", "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion"]
    resources = ["*"]
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
      "cloudwatch:PutCompositeAlarm",
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

# The deploy resolves the secrets its environments reference (docs/secrets.md), exactly those names:
# no statement at all when there are none.
data "aws_iam_policy_document" "deployer_secrets" {
  count = length(local.secret_arns) + length(local.parameter_arns) > 0 ? 1 : 0

  dynamic "statement" {
    for_each = length(local.secret_arns) > 0 ? [1] : []
    content {
      sid       = "ReadTheReferencedSecrets"
      actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      resources = local.secret_arns
    }
  }

  dynamic "statement" {
    for_each = length(local.parameter_arns) > 0 ? [1] : []
    content {
      sid       = "ReadTheReferencedParameters"
      actions   = ["ssm:GetParameter", "ssm:GetParameters"]
      resources = local.parameter_arns
    }
  }
}

resource "aws_iam_role_policy" "deployer_secrets" {
  count  = length(data.aws_iam_policy_document.deployer_secrets)
  name   = "${var.service_name}-codebuild-deployer-secrets"
  role   = aws_iam_role.deployer.id
  policy = data.aws_iam_policy_document.deployer_secrets[0].json
}

data "aws_iam_policy_document" "source_checkout" {
  statement {
    sid       = "CheckOutTheRepository"
    actions   = ["codestar-connections:UseConnection", "codeconnections:UseConnection", "codestar-connections:GetConnectionToken", "codeconnections:GetConnectionToken"]
    resources = [aws_codestarconnections_connection.source.arn]
  }
}

resource "aws_iam_role_policy" "deployer_rollback_source" {
  name   = "${var.service_name}-codebuild-rollback-source"
  role   = aws_iam_role.deployer.id
  policy = data.aws_iam_policy_document.source_checkout.json
}

# --- the functions' permissions boundary -----------------------------------------------------------
# The most a function role may ever do, whatever its own policies say: the service's data plane under
# the service's names, X-Ray writes, the referenced secrets. Nothing in IAM. The service module's roles
# carry it; the deployer may create and change them only with it (above).
data "aws_iam_policy_document" "function_boundary" {
  statement {
    sid = "ServiceDataPlane"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "sqs:SendMessage",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "ssm:GetParameter",
      "ssm:GetParameters",
      "ssm:GetParametersByPath",
      "kms:Decrypt",
      "kms:GenerateDataKey",
      "lambda:GetAlias",
      "lambda:UpdateAlias",
      "lambda:GetFunctionConfiguration",
      "lambda:ListVersionsByFunction",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "sns:Publish",
      "cloudwatch:DescribeAlarms",
    ]
    resources = [
      "${local.arn_prefix.log_group}:*",
      local.arn_prefix.sqs,
      local.arn_prefix.parameter,
      local.arn_prefix.kms_key,
      local.arn_prefix.lambda,
      "${local.arn_prefix.lambda}:*",
      local.arn_prefix.table,
      "${local.arn_prefix.table}/index/*",
      local.arn_prefix.sns,
      local.arn_prefix.alarm,
    ]
  }

  # the AWS FIS extension (a layer on the chaos environments' functions) reads the fault configuration
  # FIS writes (modules/chaos grants it on the function role; this is the most it may be)
  dynamic "statement" {
    for_each = length(local.fis_bucket_arns) > 0 ? [1] : []
    content {
      sid       = "ReadTheFisConfiguration"
      actions   = ["s3:GetObject", "s3:ListBucket"]
      resources = concat(local.fis_bucket_arns, [for b in local.fis_bucket_arns : "${b}/FisConfigs/*"])
    }
  }

  statement {
    sid       = "XRayWrites"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = length(local.secret_arns) > 0 ? [1] : []
    content {
      sid       = "TheReferencedSecrets"
      actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      resources = local.secret_arns
    }
  }

  dynamic "statement" {
    for_each = length(local.parameter_arns) > 0 ? [1] : []
    content {
      sid       = "TheReferencedParameters"
      actions   = ["ssm:GetParameter", "ssm:GetParameters"]
      resources = local.parameter_arns
    }
  }
}

resource "aws_iam_policy" "function_boundary" {
  name        = local.function_boundary_name
  description = "${var.service_name}: the most a function role may do (permissions boundary)"
  policy      = data.aws_iam_policy_document.function_boundary.json
  tags        = local.tags
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
