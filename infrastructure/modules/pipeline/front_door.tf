# What the deploy project needs to apply the environments' HTTP front door (modules/front_door): the
# service's REST APIs and their access log groups. API Gateway names a REST API by a random id, so its
# ARNs cannot carry the service's name: creating one requires the Service tag (the roots' default tags
# put it on every API) and every change requires it on the API (its resources, methods, integrations,
# deployments and stages inherit the API's tags for authorization). Reads cannot be scoped.
locals {
  rest_apis_arn = "arn:${local.partition}:apigateway:${local.region}::/restapis"
  api_tags_arn  = "arn:${local.partition}:apigateway:${local.region}::/tags/*"
  api_log_group = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/apigateway/${var.service_name}-*"
}

data "aws_iam_policy_document" "deployer_front_door" {
  statement {
    sid       = "ReadRestApis"
    actions   = ["apigateway:GET"]
    resources = [local.rest_apis_arn, "${local.rest_apis_arn}/*", local.api_tags_arn]
  }

  statement {
    sid       = "CreateServiceTaggedRestApis"
    actions   = ["apigateway:POST"]
    resources = [local.rest_apis_arn]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/Service"
      values   = [var.service_name]
    }
  }

  statement {
    sid       = "ChangeServiceTaggedRestApis"
    actions   = ["apigateway:POST", "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE"]
    resources = ["${local.rest_apis_arn}/*", local.api_tags_arn]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/Service"
      values   = [var.service_name]
    }
  }

  statement {
    sid = "ServiceApiLogGroups"
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
    ]
    resources = [local.api_log_group]
  }
}

resource "aws_iam_role_policy" "deployer_front_door" {
  name   = "${var.service_name}-codebuild-deployer-front-door"
  role   = aws_iam_role.deployer.id
  policy = data.aws_iam_policy_document.deployer_front_door.json
}
