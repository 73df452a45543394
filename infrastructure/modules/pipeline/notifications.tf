# The Slack webhook for the projects that notify (deploy, rollback): CodeBuild reads the secret when a
# build starts (environment variable of type SECRETS_MANAGER, codebuild.tf); the secret itself is made
# and set outside Terraform so that its value is never in state or plan files.
data "aws_iam_policy_document" "slack_webhook" {
  count = var.slack_webhook_secret_arn == "" ? 0 : 1

  statement {
    sid       = "ReadTheSlackWebhook"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.slack_webhook_secret_arn]
  }
}

resource "aws_iam_role_policy" "deployer_slack_webhook" {
  count  = var.slack_webhook_secret_arn == "" ? 0 : 1
  name   = "${var.service_name}-codebuild-slack-webhook"
  role   = aws_iam_role.deployer.id
  policy = data.aws_iam_policy_document.slack_webhook[0].json
}
