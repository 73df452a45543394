# Images (build once, deploy many): one ECR repository per service, written only by the pipeline's
# image project, the one CodeBuild project that runs privileged (a Docker daemon needs it). The Build
# stage runs it first (BuildImage: buildspecs/image.yml builds the Dockerfile's lambda target with the
# Python version and handler from stageflow.toml, scans it in the security gate, pushes it and writes
# image.json); BuildAndUnitTest then records the pushed digest in the build artifact's manifest.

# --- the repository: immutable tags, scanned on push, encrypted with the pipeline key ---------------
resource "aws_ecr_repository" "service" {
  name                 = var.service_name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = false

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.pipeline.arn
  }

  tags = local.tags
}

# Release images (tagged by commit) are kept for the last var.image_retention_count builds, enough to
# roll back across many releases; untagged layers (a failed push, a superseded manifest) go after 7 days.
resource "aws_ecr_lifecycle_policy" "service" {
  repository = aws_ecr_repository.service.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Expire untagged images after 7 days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the last ${var.image_retention_count} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.image_retention_count
        }
        action = { type = "expire" }
      },
    ]
  })
}

# Who may read the repository besides the account's own IAM principals: Lambda pulling the image of a
# function of this service in this account (container-image packaging). Nobody outside the account.
data "aws_iam_policy_document" "ecr" {
  statement {
    sid     = "LambdaPullsThisServicesImages"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.service_name}-*"]
    }
  }
}

resource "aws_ecr_repository_policy" "service" {
  repository = aws_ecr_repository.service.name
  policy     = data.aws_iam_policy_document.ecr.json
}

# --- the image project's role: the base build policy, plus pushing to this repository only ---------
resource "aws_iam_role" "image" {
  name               = "${var.service_name}-codebuild-image"
  assume_role_policy = data.aws_iam_policy_document.codebuild_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "image_base" {
  name   = "${var.service_name}-codebuild-image-base"
  role   = aws_iam_role.image.id
  policy = data.aws_iam_policy_document.codebuild_base.json
}

data "aws_iam_policy_document" "image_push" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # ECR's login token is not a resource: AWS allows no narrower scope
  }

  statement {
    sid = "PushAndScanThisServicesImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:DescribeImageScanFindings",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [aws_ecr_repository.service.arn]
  }

  statement {
    sid       = "EncryptTheLayers"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.pipeline.arn]
  }
}

resource "aws_iam_role_policy" "image_push" {
  name   = "${var.service_name}-codebuild-image-push"
  role   = aws_iam_role.image.id
  policy = data.aws_iam_policy_document.image_push.json
}

# --- the image project: the only privileged one --------------------------------------------------
resource "aws_codebuild_project" "image" {
  #checkov:skip=CKV_AWS_316:Building the service's container image needs a Docker daemon, which CodeBuild runs only in privileged mode; this project runs only buildspecs/image.yml from the pipeline's source, under a role that can push to this service's repository and nothing that deploys
  name           = "${var.service_name}-image"
  description    = "${var.service_name}: buildspecs/image.yml (build, scan and push the image)"
  service_role   = aws_iam_role.image.arn
  build_timeout  = 45
  queued_timeout = 60
  encryption_key = aws_kms_key.pipeline.arn

  artifacts {
    type = "CODEPIPELINE"
  }

  source {
    type      = "CODEPIPELINE"
    buildspec = "buildspecs/image.yml"
  }

  environment {
    type                        = "LINUX_CONTAINER"
    compute_type                = var.compute_type
    image                       = var.build_image
    image_pull_credentials_type = "CODEBUILD"
    privileged_mode             = true

    environment_variable {
      name  = "STAGEFLOW_SERVICE"
      value = var.service_name
    }

    environment_variable {
      name  = "ECR_REPOSITORY_URI"
      value = aws_ecr_repository.service.repository_url
    }
  }

  cache {
    type     = "S3"
    location = "${aws_s3_bucket.artifacts.bucket}/cache/image"
  }

  logs_config {
    cloudwatch_logs {
      status      = "ENABLED"
      group_name  = aws_cloudwatch_log_group.codebuild.name
      stream_name = "image"
    }

    s3_logs {
      status = "DISABLED"
    }
  }

  tags = local.tags
}
