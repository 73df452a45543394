# Pull requests, for teams that stay on AWS: a CodeBuild webhook runs buildspecs/build.yml (lint, the
# service's unit tests with the coverage floor, stageflow's own tests, the security gate) on every pull
# request opened, updated or reopened, and reports the result back on the pull request. GitHub Actions
# users get the same from .github/workflows/ci.yml. The project has only the base build permissions and
# its own cache prefix: nothing it runs can touch a deployed environment, and it writes nothing the
# deployer reads or runs (not the pipeline's artifacts, not cache/deploy/ or cache/rollback/).
resource "aws_iam_role" "pull_request" {
  count              = var.pull_request_builds ? 1 : 0
  name               = "${var.service_name}-codebuild-pull-request"
  assume_role_policy = data.aws_iam_policy_document.codebuild_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "pull_request" {
  count  = var.pull_request_builds ? 1 : 0
  name   = "${var.service_name}-codebuild-pull-request"
  role   = aws_iam_role.pull_request[0].id
  policy = data.aws_iam_policy_document.codebuild_base.json
}

data "aws_iam_policy_document" "pull_request_cache" {
  statement {
    sid       = "OwnCacheOnly"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    resources = ["${local.artifacts_arn}/cache/pull-request/*"]
  }

  statement {
    sid       = "BucketOfTheCache"
    actions   = ["s3:GetBucketAcl", "s3:GetBucketLocation"]
    resources = [local.artifacts_arn]
  }
}

resource "aws_iam_role_policy" "pull_request_cache" {
  count  = var.pull_request_builds ? 1 : 0
  name   = "${var.service_name}-codebuild-pull-request-cache"
  role   = aws_iam_role.pull_request[0].id
  policy = data.aws_iam_policy_document.pull_request_cache.json
}

resource "aws_iam_role_policy" "pull_request_source" {
  count  = var.pull_request_builds ? 1 : 0
  name   = "${var.service_name}-codebuild-pull-request-source"
  role   = aws_iam_role.pull_request[0].id
  policy = data.aws_iam_policy_document.source_checkout.json
}

resource "aws_codebuild_project" "pull_request" {
  count          = var.pull_request_builds ? 1 : 0
  name           = "${var.service_name}-pull-request"
  description    = "${var.service_name}: buildspecs/build.yml on every pull request"
  service_role   = aws_iam_role.pull_request[0].arn
  build_timeout  = 30
  queued_timeout = 30
  encryption_key = aws_kms_key.pipeline.arn

  artifacts {
    type = "NO_ARTIFACTS"
  }

  source {
    type                = "GITHUB"
    location            = var.repository_url
    git_clone_depth     = 1
    buildspec           = "buildspecs/build.yml"
    report_build_status = true

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
  }

  cache {
    type     = "S3"
    location = "${aws_s3_bucket.artifacts.bucket}/cache/pull-request"
  }

  logs_config {
    cloudwatch_logs {
      status      = "ENABLED"
      group_name  = aws_cloudwatch_log_group.codebuild.name
      stream_name = "pull-request"
    }

    s3_logs {
      status = "DISABLED"
    }
  }

  tags = local.tags
}

resource "aws_codebuild_webhook" "pull_request" {
  count        = var.pull_request_builds ? 1 : 0
  project_name = aws_codebuild_project.pull_request[0].name
  build_type   = "BUILD"

  filter_group {
    filter {
      type    = "EVENT"
      pattern = "PULL_REQUEST_CREATED,PULL_REQUEST_UPDATED,PULL_REQUEST_REOPENED"
    }
  }
}
