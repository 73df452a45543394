# Approval deadlines that act with nobody running anything (issue 26): every few minutes this schedule
# invokes the rollback function with {"stageflow": "tick"}; the function (stageflow.rollback.tick) ends
# the pause of the deployment in flight whose recorded deadline has passed — before the canary it is
# rejected, at a canary step all traffic goes back on the previous version — recorded and notified,
# exactly as `stageflow tick ENV` does. The deadline itself is recorded by stageflow when the pause
# begins ([environments.NAME.approvals] timeouts); this schedule only decides how soon after it the
# pause ends. In local mode nothing fires schedules: the waiting process or `stageflow tick` acts.
resource "aws_cloudwatch_event_rule" "approval_deadlines" {
  name                = "${local.prefix}-approval-deadlines-${local.suffix}"
  description         = "Ends ${local.function_name}'s approval pause once its deadline has passed"
  schedule_expression = "rate(${var.deadline_check_minutes} minutes)"
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "approval_deadlines" {
  rule  = aws_cloudwatch_event_rule.approval_deadlines.name
  arn   = aws_lambda_function.rollback.arn
  input = jsonencode({ stageflow = "tick" })
}

resource "aws_lambda_permission" "rollback_from_schedule" {
  statement_id   = "AllowApprovalDeadlineSchedule"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.rollback.function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.approval_deadlines.arn
  source_account = local.account_id
}
