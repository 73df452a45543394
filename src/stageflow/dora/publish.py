"""One finished deployment's delivery figures as CloudWatch metrics (namespace ``Stageflow/Delivery``),
for the dashboards."""

from __future__ import annotations

from stageflow.aws import aws_error
from stageflow.deploy.records import Deployment
from stageflow.dora.compute import changes

NAMESPACE = "Stageflow/Delivery"
# The metric names the tool publishes (the Terraform dashboards may only chart these, or alarms' metrics).
PUBLISHED_METRICS = (
    "DeploymentSucceeded",
    "DeploymentRolledBack",
    "DeploymentFailed",
    "LeadTimeSeconds",
    "TimeToRestoreSeconds",
)
OUTCOME_METRIC = {
    "succeeded": "DeploymentSucceeded",
    "rolled_back": "DeploymentRolledBack",
    "failed": "DeploymentFailed",
}


def delivery_datums(deployment: Deployment) -> list[dict]:
    """The ``Stageflow/Delivery`` datapoints of one finished deployment (none for an unfinished one,
    a no-change run or a rehearsal)."""
    found = changes([deployment], [])
    if not found:
        return []
    c = found[0]
    dims = [
        {"Name": "Service", "Value": str(deployment.service)},
        {"Name": "Environment", "Value": str(deployment.environment)},
    ]
    at = c.ended_at or c.started_at

    def datum(name: str, value: float, unit: str) -> dict:
        return {"MetricName": name, "Dimensions": dims, "Timestamp": at, "Value": value, "Unit": unit}

    data = [datum(OUTCOME_METRIC[c.status], 1.0, "Count")]
    if c.lead_time_seconds is not None:
        data.append(datum("LeadTimeSeconds", float(c.lead_time_seconds), "Seconds"))
    if c.restore_seconds is not None:
        data.append(datum("TimeToRestoreSeconds", float(c.restore_seconds), "Seconds"))
    return data


def publish_delivery_metrics(cloudwatch_client, deployment: Deployment, *, reporter=None) -> list[str]:
    """Put one finished deployment's delivery metrics into CloudWatch (``Stageflow/Delivery``).

    Never fails the deploy it reports on: an error becomes a warning. Returns the metric names put."""
    data = delivery_datums(deployment)
    if not data:
        return []
    try:
        cloudwatch_client.put_metric_data(Namespace=NAMESPACE, MetricData=data)
    except Exception as exc:  # noqa: BLE001 - reporting must never turn a good deploy into a failure
        if reporter is not None:
            mapped = aws_error(exc, "publishing delivery metrics")
            why = mapped.message if mapped is not None else f"{type(exc).__name__}: {exc}"
            reporter.warn(f"delivery metrics not published: {why}")
        return []
    return [d["MetricName"] for d in data]
