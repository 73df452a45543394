# AWS FIS experiment templates for the chaos stage (stageflow chaos ENV, docs/testing.md).
#
# FIS's Lambda actions inject faults through the AWS FIS extension: a Lambda layer on the function
# (ARN per region and architecture, published by AWS), AWS_LAMBDA_EXEC_WRAPPER=/opt/aws-fis/bootstrap
# and AWS_FIS_CONFIGURATION_LOCATION set to an S3 location (output `extension_environment`). FIS
# writes each running experiment's fault configuration there; the extension polls it and applies the
# fault to the invocations of the versions that carry the layer. Stop condition: one composite alarm
# over the environment's alarms — any of them in ALARM stops the experiment (the rollback function
# restores the alias on the same alarm). One composite rather than an alarm per stop condition: FIS
# caps the stop conditions of a template, and an environment has more alarms than that.
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  name       = "${var.service_name}-${var.environment}-fis"
  prefix     = "FisConfigs"
  tags       = merge(var.tags, { Service = var.service_name, Environment = var.environment, ManagedBy = "terraform" })
  config_arn = "${aws_s3_bucket.config.arn}/${local.prefix}/"
  action_ids = {
    latency             = "aws:lambda:invocation-add-delay"
    timeout             = "aws:lambda:invocation-add-delay"
    error               = "aws:lambda:invocation-error"
    dependency_throttle = "aws:lambda:invocation-http-integration-response"
  }
  parameters = {
    for name, e in var.experiments : name => merge(
      { duration = "PT${e.duration_minutes}M", invocationPercentage = tostring(e.percent) },
      e.fault == "latency" ? { startupDelayMilliseconds = tostring(e.latency_ms) } : {},
      e.fault == "timeout" ? { startupDelayMilliseconds = tostring((var.timeout_seconds + 1) * 1000) } : {},
      e.fault == "error" ? { preventExecution = "true" } : {},
      e.fault == "dependency_throttle" ? { statusCode = tostring(e.status_code), contentTypeHeader = "application/json", preventExecution = "true" } : {},
    )
  }
}

# The configuration location FIS writes and the extension reads: nothing else, no data of the service.
resource "aws_s3_bucket" "config" {
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events from this bucket; FIS writes it and the extension polls it
  #checkov:skip=CKV_AWS_144:Single-region deployment; FIS needs the configuration bucket in the experiment's region
  #checkov:skip=CKV_AWS_145:SSE-S3: the bucket holds only FIS's fault configuration; the function's role reads it without a KMS grant
  #checkov:skip=CKV_AWS_18:Holds only FIS's fault configuration; FIS's own experiment log and CloudTrail record who changed it
  bucket_prefix = substr("${local.name}-config-", 0, 37)
  force_destroy = true
  tags          = local.tags
}

resource "aws_s3_bucket_versioning" "config" {
  bucket = aws_s3_bucket.config.id

  versioning_configuration {
    status = "Enabled"
  }
}

#trivy:ignore:AVD-AWS-0132
resource "aws_s3_bucket_server_side_encryption_configuration" "config" {
  bucket = aws_s3_bucket.config.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "config" {
  bucket                  = aws_s3_bucket.config.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "config" {
  bucket = aws_s3_bucket.config.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "config" {
  bucket = aws_s3_bucket.config.id

  rule {
    id     = "expire-old-configurations"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# FIS's role: write the configuration, read the function.
data "aws_iam_policy_document" "fis_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["fis.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# An exact name ({service}-fis-{env}) under a permissions boundary (the pipeline's fis boundary): the
# deployer may create and change exactly this role, and only with that boundary (docs/security.md).
resource "aws_iam_role" "fis" {
  name                 = "${var.service_name}-fis-${var.environment}"
  assume_role_policy   = data.aws_iam_policy_document.fis_assume.json
  permissions_boundary = var.permissions_boundary_name == "" ? null : "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:policy/${var.permissions_boundary_name}"
  tags                 = local.tags
}

data "aws_iam_policy_document" "fis" {
  statement {
    sid       = "ReadTheTargetFunctions"
    actions   = ["lambda:GetFunction"]
    resources = concat(var.function_arns, [for arn in var.function_arns : "${arn}:*"])
  }

  statement {
    sid       = "WriteTheFaultConfiguration"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.config.arn}/${local.prefix}/*"]
  }
}

resource "aws_iam_role_policy" "fis" {
  name   = "fis-lambda-faults"
  role   = aws_iam_role.fis.id
  policy = data.aws_iam_policy_document.fis.json
}

# The extension runs as the function: it reads the configuration location.
data "aws_iam_policy_document" "extension" {
  statement {
    sid       = "ReadTheFaultConfiguration"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.config.arn}/${local.prefix}/*"]
  }

  statement {
    sid       = "ListTheFaultConfiguration"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.config.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.prefix}/*"]
    }
  }
}

resource "aws_iam_role_policy" "extension" {
  name   = "fis-extension-config"
  role   = var.function_role_name
  policy = data.aws_iam_policy_document.extension.json
}

# The experiments' stop condition: ALARM when any of the environment's alarms is (no actions of its own:
# the alarms it watches notify and roll back).
resource "aws_cloudwatch_composite_alarm" "stop" {
  count = length(var.stop_alarm_names) > 0 ? 1 : 0

  alarm_name        = "${local.name}-stop"
  alarm_description = "Stops ${var.service_name}-${var.environment}'s chaos experiments: one of the environment's alarms is in ALARM"
  alarm_rule        = join(" OR ", [for n in var.stop_alarm_names : "ALARM(${jsonencode(n)})"])
  tags              = local.tags
}

# The templates, one per experiment, as one CloudFormation stack rather than aws_fis_experiment_template:
# the hashicorp/aws provider refuses an action's "Functions" target at plan time until its fix (#41209,
# issue #41208) — the offline mirror's 5.x has not got it — while CloudFormation has taken Lambda targets
# since FIS's Lambda actions launched. Terraform still owns them: plan shows the stack's template body,
# apply creates, replaces and deletes the templates with the stack. Each template targets every
# function of the service; its tags let `stageflow chaos` find it.
locals {
  # CloudFormation logical ids are alphanumeric: canary-errors -> CanaryErrors
  logical_ids = { for name in keys(var.experiments) : name => join("", [for part in split("-", name) : title(part)]) }
  stop_conditions = [merge(
    { Source = length(aws_cloudwatch_composite_alarm.stop) > 0 ? "aws:cloudwatch:alarm" : "none" },
    length(aws_cloudwatch_composite_alarm.stop) > 0 ? { Value = aws_cloudwatch_composite_alarm.stop[0].arn } : {},
  )]
  templates = {
    for name, e in var.experiments : local.logical_ids[name] => {
      Type = "AWS::FIS::ExperimentTemplate"
      Properties = {
        Description = "stageflow chaos ${name}: ${e.fault} on ${e.percent}% of ${var.service_name}-${var.environment}'s invocations for ${e.duration_minutes} min"
        RoleArn     = aws_iam_role.fis.arn
        Actions = {
          (replace(name, "-", "_")) = {
            ActionId   = local.action_ids[e.fault]
            Parameters = local.parameters[name]
            Targets    = { Functions = "function" }
          }
        }
        Targets = {
          function = { ResourceType = "aws:lambda:function", ResourceArns = var.function_arns, SelectionMode = "ALL" }
        }
        StopConditions = local.stop_conditions
        Tags = merge(local.tags, {
          Name                    = "${local.name}-${name}"
          "stageflow:service"     = var.service_name
          "stageflow:environment" = var.environment
          "stageflow:experiment"  = name
        })
      }
    }
  }
}

resource "aws_cloudformation_stack" "templates" {
  #checkov:skip=CKV_AWS_124:Terraform owns the stack and shows every change in its plan; stack events would only repeat the apply's output on the alerts topic
  name = "${local.name}-templates"
  template_body = jsonencode({
    Description = "stageflow chaos: ${var.service_name}-${var.environment}'s FIS experiment templates (infrastructure/modules/chaos)"
    Resources   = local.templates
    Outputs     = { for name, id in local.logical_ids : id => { Value = { Ref = id } } }
  })
  tags = local.tags
}
