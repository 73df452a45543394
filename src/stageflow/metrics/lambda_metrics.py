"""The CloudWatch names of a Lambda alias's traffic: what Lambda publishes per executed version (the
production metric source reads them; the local traffic simulator writes the same), and the simulator's
own percentile metric (the emulator computes no percentiles; the local metric source reads it back)."""

from __future__ import annotations

LAMBDA_NAMESPACE = "AWS/Lambda"
INVOCATIONS = "Invocations"
ERRORS = "Errors"
DURATION = "Duration"

SIMULATOR_NAMESPACE = "Stageflow/Simulator"
# One datum per version-minute carrying that minute's latency percentiles as a statistic set, so one
# GetMetricStatistics call reads all three back exactly: Minimum = p50, Maximum = p99,
# Sum - Minimum - Maximum = p95 (SampleCount = 3).
PERCENTILES_METRIC = "DurationPercentiles"


def lambda_dimensions(function: str, alias: str, version: str) -> list[dict[str, str]]:
    """The dimensions Lambda publishes for alias traffic per executed version."""
    return [
        {"Name": "FunctionName", "Value": function},
        {"Name": "Resource", "Value": f"{function}:{alias}"},
        {"Name": "ExecutedVersion", "Value": version},
    ]
