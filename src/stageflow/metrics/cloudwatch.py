"""Metric and alarm sources backed by CloudWatch.

- :class:`CloudWatchSource` (production): one GetMetricData request per window for a version of the
  alias: Sum of Invocations and Errors and p50/p95/p99 of Duration, per minute (period 60).
- :class:`LocalSimulatorSource` (local mode): the emulator computes no percentiles and its
  GetMetricData is unreliable (FINDINGS), so Invocations and Errors are read with
  GetMetricStatistics (Sum, period 60) from ``AWS/Lambda`` with the same dimensions production uses,
  and the percentiles from the simulator's own namespace.
- :class:`CloudWatchAlarms`: DescribeAlarms by name. A configured alarm that does not exist is
  reported as firing, ``"<name> (missing)"``: a gate that cannot be read is not a passing gate.

Every source has a ``name`` so verdicts say which one judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from stageflow.errors import EnvironmentFailure
from stageflow.local.simulator import (
    LAMBDA_NAMESPACE,
    PERCENTILES_METRIC,
    SIMULATOR_NAMESPACE,
    lambda_dimensions,
)
from stageflow.metrics.interface import AlarmSource, MetricSource, MinuteStats, VersionSeries

PERIOD = 60
MISSING_SUFFIX = " (missing)"


def _minute(t: datetime) -> datetime:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).replace(second=0, microsecond=0)


def _minutes(start: datetime, end: datetime) -> list[datetime]:
    out, t = [], _minute(start)
    if t < start:
        t += timedelta(minutes=1)
    while t + timedelta(minutes=1) <= end:
        out.append(t)
        t += timedelta(minutes=1)
    return out


def _build(
    version: str, minutes: list[datetime], values: dict[str, dict[datetime, float]], source: str
) -> VersionSeries:
    rows = []
    for t in minutes:
        n = int(round(values["invocations"].get(t, 0.0)))
        e = int(round(values["errors"].get(t, 0.0)))
        pct = {k: values[k].get(t) for k in ("p50", "p95", "p99")}
        if n == 0:
            pct = {k: None for k in pct}
        rows.append(MinuteStats(t, n, min(e, n) if n else e, pct["p50"], pct["p95"], pct["p99"]))
    return VersionSeries(version, tuple(rows), source)


def _aws_error(what: str, exc: Exception) -> EnvironmentFailure:
    return EnvironmentFailure(f"{what} failed: {exc}", "check AWS credentials, region and permissions")


class CloudWatchSource(MetricSource):
    """Production: per-version alias metrics with CloudWatch-computed percentiles (GetMetricData)."""

    name = "cloudwatch"

    def __init__(self, cloudwatch):
        self.cloudwatch = cloudwatch

    @staticmethod
    def queries(function: str, alias: str, version: str) -> list[dict]:
        dims = lambda_dimensions(function, alias, version)

        def q(qid: str, metric: str, stat: str) -> dict:
            return {
                "Id": qid,
                "MetricStat": {
                    "Metric": {"Namespace": LAMBDA_NAMESPACE, "MetricName": metric, "Dimensions": dims},
                    "Period": PERIOD,
                    "Stat": stat,
                },
                "ReturnData": True,
            }

        return [
            q("invocations", "Invocations", "Sum"),
            q("errors", "Errors", "Sum"),
            q("p50", "Duration", "p50"),
            q("p95", "Duration", "p95"),
            q("p99", "Duration", "p99"),
        ]

    def series(
        self, function: str, alias: str, version: str, start: datetime, end: datetime
    ) -> VersionSeries:
        minutes = _minutes(start, end)
        values: dict[str, dict[datetime, float]] = {
            k: {} for k in ("invocations", "errors", "p50", "p95", "p99")
        }
        if not minutes:
            return VersionSeries(version, (), self.name)
        kwargs = {
            "MetricDataQueries": self.queries(function, alias, version),
            "StartTime": minutes[0],
            "EndTime": minutes[-1] + timedelta(minutes=1),
            "ScanBy": "TimestampAscending",
        }
        try:
            while True:
                resp = self.cloudwatch.get_metric_data(**kwargs)
                for r in resp.get("MetricDataResults", []):
                    bucket = values.get(r["Id"])
                    if bucket is None:
                        continue
                    for ts, v in zip(r.get("Timestamps", []), r.get("Values", []), strict=False):
                        bucket[_minute(ts)] = float(v)
                token = resp.get("NextToken")
                if not token:
                    break
                kwargs["NextToken"] = token
        except EnvironmentFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore errors become one-line environment failures
            raise _aws_error("CloudWatch GetMetricData", exc) from exc
        return _build(version, minutes, values, self.name)


class LocalSimulatorSource(MetricSource):
    """Local mode: counts from ``AWS/Lambda`` (exact sums), percentiles from the simulator's namespace.

    The simulator publishes every whole minute before the driver reads, so a minute once read with
    traffic is final: it is cached, and each look asks only for the minutes not read yet (three
    calls per version: Invocations, Errors, the percentile statistic set)."""

    name = "local-simulator"

    def __init__(self, cloudwatch):
        self.cloudwatch = cloudwatch
        self.calls = 0
        self._cache: dict[tuple[str, str, str], dict[datetime, tuple]] = {}

    def _stats(
        self, namespace: str, metric: str, stats: list[str], dims: list[dict], start: datetime, end: datetime
    ) -> dict[datetime, dict]:
        try:
            resp = self.cloudwatch.get_metric_statistics(
                Namespace=namespace,
                MetricName=metric,
                Dimensions=dims,
                StartTime=start,
                EndTime=end,
                Period=PERIOD,
                Statistics=stats,
            )
        except Exception as exc:  # noqa: BLE001
            raise _aws_error("CloudWatch GetMetricStatistics", exc) from exc
        self.calls += 1
        return {_minute(d["Timestamp"]): d for d in resp.get("Datapoints", [])}

    def series(
        self, function: str, alias: str, version: str, start: datetime, end: datetime
    ) -> VersionSeries:
        minutes = _minutes(start, end)
        if not minutes:
            return VersionSeries(version, (), self.name)
        cache = self._cache.setdefault((function, alias, version), {})
        todo = [t for t in minutes if t not in cache]
        if todo:
            lo, hi = todo[0], minutes[-1] + timedelta(minutes=1)
            dims = lambda_dimensions(function, alias, version)
            inv = self._stats(LAMBDA_NAMESPACE, "Invocations", ["Sum"], dims, lo, hi)
            err = self._stats(LAMBDA_NAMESPACE, "Errors", ["Sum"], dims, lo, hi)
            pct = self._stats(
                SIMULATOR_NAMESPACE, PERCENTILES_METRIC, ["Minimum", "Maximum", "Sum"], dims, lo, hi
            )
            for t in todo:
                if t not in inv:
                    continue  # no traffic (yet): not cached, asked again next time
                p = pct.get(t)
                p50 = p95 = p99 = None
                if p is not None:
                    p50, p99 = float(p["Minimum"]), float(p["Maximum"])
                    p95 = round(float(p["Sum"]) - p50 - p99, 3)
                cache[t] = (float(inv[t]["Sum"]), float(err.get(t, {}).get("Sum", 0.0)), p50, p95, p99)
        values: dict[str, dict[datetime, float]] = {
            k: {} for k in ("invocations", "errors", "p50", "p95", "p99")
        }
        for t in minutes:
            for k, v in zip(values, cache.get(t, ()), strict=False):
                if v is not None:
                    values[k][t] = v
        return _build(version, minutes, values, self.name)


class CloudWatchAlarms(AlarmSource):
    """Alarm states by name. Missing alarms are reported as ``"<name> (missing)"`` among the firing."""

    name = "cloudwatch-alarms"

    def __init__(self, cloudwatch):
        self.cloudwatch = cloudwatch

    def states(self, names: Sequence[str]) -> dict[str, str]:
        """name -> StateValue (OK, ALARM, INSUFFICIENT_DATA) or "MISSING"."""
        wanted = list(dict.fromkeys(n for n in names if n))
        found: dict[str, str] = {}
        for i in range(0, len(wanted), 100):  # DescribeAlarms takes up to 100 names
            kwargs = {"AlarmNames": wanted[i : i + 100], "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}
            try:
                while True:
                    resp = self.cloudwatch.describe_alarms(**kwargs)
                    for a in resp.get("MetricAlarms", []) + resp.get("CompositeAlarms", []):
                        found[a["AlarmName"]] = a["StateValue"]
                    if not resp.get("NextToken"):
                        break
                    kwargs["NextToken"] = resp["NextToken"]
            except Exception as exc:  # noqa: BLE001
                raise _aws_error("CloudWatch DescribeAlarms", exc) from exc
        return {n: found.get(n, "MISSING") for n in wanted}

    def firing(self, names: Sequence[str]) -> list[str]:
        out = []
        for name, state in self.states(names).items():
            if state == "ALARM":
                out.append(name)
            elif state == "MISSING":
                out.append(name + MISSING_SUFFIX)
        return out
