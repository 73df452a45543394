# What the deploy project needs to apply the chaos stage's Terraform (modules/chaos, called by the roots
# of var.chaos_environments: staging): FIS's role under its own permissions boundary (exact names, passed
# to FIS only), the FIS configuration bucket (its name as the module computes it), the composite stop
# alarm (ServiceAlarms covers its name), the experiment templates' CloudFormation stack and the templates
# (FIS names them by a random id: created only with the Service tag, changed only when they carry it), the AWS FIS extension's layer on the
# functions (AWS's public parameter naming it, the layer version itself).
locals {
  fis_role_arns = [
    for env in var.chaos_environments : "arn:${local.partition}:iam::${local.account_id}:role/${var.service_name}-fis-${env}"
  ]
  # modules/chaos: bucket_prefix = substr("{service}-{env}-fis-config-", 0, 37)
  fis_bucket_arns = [
    for env in var.chaos_environments : "arn:${local.partition}:s3:::${substr("${var.service_name}-${env}-fis-config-", 0, 37)}*"
  ]
  fis_stack_arns = [
    for env in var.chaos_environments : "arn:${local.partition}:cloudformation:${local.region}:${local.account_id}:stack/${var.service_name}-${env}-fis-templates/*"
  ]
  fis_boundary_name = "${var.service_name}-fis-boundary"
  fis_boundary_arn  = "arn:${local.partition}:iam::${local.account_id}:policy/${local.fis_boundary_name}"
  fis_templates     = "arn:${local.partition}:fis:${local.region}:${local.account_id}:experiment-template/*"
}

data "aws_iam_policy_document" "deployer_chaos" {
  statement {
    sid       = "FisRolesOnlyUnderTheirBoundary"
    actions   = ["iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary"]
    resources = local.fis_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [local.fis_boundary_arn]
    }
  }

  statement {
    sid       = "FisRoles"
    actions   = ["iam:DeleteRole", "iam:GetRole", "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole"]
    resources = local.fis_role_arns
  }

  statement {
    sid       = "PassFisRolesToFisOnly"
    actions   = ["iam:PassRole"]
    resources = local.fis_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["fis.amazonaws.com"]
    }
  }

  statement {
    sid = "FisConfigurationBuckets"
    actions = [
      "s3:CreateBucket",
      "s3:DeleteBucket",
      "s3:ListBucket",
      "s3:ListBucketVersions",
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
      "s3:GetBucketAcl",
      "s3:GetBucketCORS",
      "s3:GetBucketLogging",
      "s3:GetBucketObjectLockConfiguration",
      "s3:GetBucketOwnershipControls",
      "s3:GetBucketPolicy",
      "s3:GetBucketPublicAccessBlock",
      "s3:GetBucketRequestPayment",
      "s3:GetBucketTagging",
      "s3:GetBucketVersioning",
      "s3:GetBucketWebsite",
      "s3:GetAccelerateConfiguration",
      "s3:GetEncryptionConfiguration",
      "s3:GetLifecycleConfiguration",
      "s3:GetReplicationConfiguration",
      "s3:PutBucketOwnershipControls",
      "s3:PutBucketPublicAccessBlock",
      "s3:PutBucketTagging",
      "s3:PutBucketVersioning",
      "s3:PutEncryptionConfiguration",
      "s3:PutLifecycleConfiguration",
    ]
    resources = concat(local.fis_bucket_arns, [for b in local.fis_bucket_arns : "${b}/*"])
  }

  # the templates are one CloudFormation stack per chaos environment (modules/chaos); CloudFormation
  # creates them with the deployer's credentials (the statements below)
  statement {
    sid       = "ChaosTemplateStacks"
    actions   = ["cloudformation:CreateStack", "cloudformation:UpdateStack", "cloudformation:DeleteStack", "cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents", "cloudformation:GetTemplate", "cloudformation:ListStackResources", "cloudformation:TagResource", "cloudformation:UntagResource"]
    resources = local.fis_stack_arns
  }

  statement {
    sid       = "CreateServiceTaggedExperimentTemplates"
    actions   = ["fis:CreateExperimentTemplate", "fis:TagResource"]
    resources = [local.fis_templates, "arn:${local.partition}:fis:${local.region}:${local.account_id}:action/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/Service"
      values   = [var.service_name]
    }
  }

  statement {
    sid       = "ChangeServiceTaggedExperimentTemplates"
    actions   = ["fis:GetExperimentTemplate", "fis:UpdateExperimentTemplate", "fis:DeleteExperimentTemplate", "fis:TagResource", "fis:UntagResource", "fis:ListTagsForResource"]
    resources = [local.fis_templates, "arn:${local.partition}:fis:${local.region}:${local.account_id}:action/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/Service"
      values   = [var.service_name]
    }
  }

  statement {
    sid       = "TheFisExtensionLayer"
    actions   = ["lambda:GetLayerVersion"]
    resources = ["arn:${local.partition}:lambda:${local.region}:*:layer:aws-fis-extension-*:*"]
  }

  statement {
    sid       = "AwsPublicParameterNamingTheLayer"
    actions   = ["ssm:GetParameter"]
    resources = ["arn:${local.partition}:ssm:${local.region}::parameter/aws/service/fis/lambda-extension/*"]
  }
}

resource "aws_iam_role_policy" "deployer_chaos" {
  count = length(var.chaos_environments) > 0 ? 1 : 0

  name   = "${var.service_name}-codebuild-deployer-chaos"
  role   = aws_iam_role.deployer.id
  policy = data.aws_iam_policy_document.deployer_chaos.json
}

# The most FIS's role may ever do (its permissions boundary): write and remove the fault configuration
# in the environments' configuration buckets, read the service's functions. Nothing in IAM.
data "aws_iam_policy_document" "fis_boundary" {
  statement {
    sid       = "WriteTheFaultConfiguration"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = [for b in local.fis_bucket_arns : "${b}/FisConfigs/*"]
  }

  statement {
    sid       = "ReadTheServiceFunctions"
    actions   = ["lambda:GetFunction"]
    resources = [local.arn_prefix.lambda, "${local.arn_prefix.lambda}:*"]
  }
}

resource "aws_iam_policy" "fis_boundary" {
  count = length(var.chaos_environments) > 0 ? 1 : 0

  name        = local.fis_boundary_name
  description = "${var.service_name}: the most FIS's experiment role may do (permissions boundary)"
  policy      = data.aws_iam_policy_document.fis_boundary.json
  tags        = local.tags
}
