"""Metric and alarm sources backed by CloudWatch.

- :class:`CloudWatchSource` (production): one GetMetricData request per look for every version of
  the alias asked: Sum of Invocations and Errors and p50/p95/p99 of Duration, per minute (period 60).
- :class:`LocalSimulatorSource` (local mode): the emulator computes no percentiles, so the same
  one GetMetricData request per look reads Invocations and Errors (Sum) from ``AWS/Lambda`` with the
  dimensions production uses, and the percentiles as Minimum/Maximum/Sum of the simulator's own
  metric (the statistics moto computes exactly).
- :class:`CloudWatchAlarms`: DescribeAlarms by name. A configured alarm that does not exist is
  reported as firing, ``"<name> (missing)"``: a gate that cannot be read is not a passing gate.

Every source has a ``name`` so verdicts say which one judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from stageflow.errors import EnvironmentFailure
from stageflow.metrics.interface import AlarmSource, MetricSource, MinuteStats, VersionSeries
from stageflow.metrics.lambda_metrics import (
    DURATION,
    ERRORS,
    INVOCATIONS,
    LAMBDA_NAMESPACE,
    PERCENTILES_METRIC,
    SIMULATOR_NAMESPACE,
    lambda_dimensions,
)

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
    """A failed read as the one-line :class:`~stageflow.errors.AwsError` every AWS call gets (the
    operation, the code, the attempts, and a hint that fits the code: throttling and 5xx are not a
    credentials problem)."""
    from stageflow.aws import aws_error

    err = aws_error(exc, f"reading {what}")
    if isinstance(err, EnvironmentFailure):
        return err
    return EnvironmentFailure(
        f"reading {what} failed: {exc}", "check AWS credentials, region and permissions"
    )


class CloudWatchSource(MetricSource):
    """Production: per-version alias metrics with CloudWatch-computed percentiles (GetMetricData)."""

    name = "cloudwatch"

    def __init__(self, cloudwatch):
        self.cloudwatch = cloudwatch

    @staticmethod
    def queries(function: str, alias: str, version: str, prefix: str = "") -> list[dict]:
        dims = lambda_dimensions(function, alias, version)

        def q(qid: str, metric: str, stat: str) -> dict:
            return {
                "Id": prefix + qid,
                "MetricStat": {
                    "Metric": {"Namespace": LAMBDA_NAMESPACE, "MetricName": metric, "Dimensions": dims},
                    "Period": PERIOD,
                    "Stat": stat,
                },
                "ReturnData": True,
            }

        return [
            q("invocations", INVOCATIONS, "Sum"),
            q("errors", ERRORS, "Sum"),
            q("p50", DURATION, "p50"),
            q("p95", DURATION, "p95"),
            q("p99", DURATION, "p99"),
        ]

    def series(
        self, function: str, alias: str, version: str, start: datetime, end: datetime
    ) -> VersionSeries:
        return self.series_many(function, alias, [version], start, end)[version]

    def series_many(
        self, function: str, alias: str, versions: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, VersionSeries]:
        """One GetMetricData request (paged) for every version: five queries each, ids ``v<i>_<stat>``."""
        versions = list(dict.fromkeys(versions))
        minutes = _minutes(start, end)
        if not minutes:
            return {v: VersionSeries(v, (), self.name) for v in versions}
        values = {v: {k: {} for k in STATS} for v in versions}
        queries = []
        for i, v in enumerate(versions):
            queries += self.queries(function, alias, v, prefix=f"v{i}_")
        kwargs = {
            "MetricDataQueries": queries,
            "StartTime": minutes[0],
            "EndTime": minutes[-1] + timedelta(minutes=1),
            "ScanBy": "TimestampAscending",
        }
        _read_metric_data(self.cloudwatch, kwargs, versions, values)
        return {v: _build(v, minutes, values[v], self.name) for v in versions}


STATS = ("invocations", "errors", "p50", "p95", "p99")


def _read_metric_data(cloudwatch, kwargs: dict, versions: list[str], values: dict) -> None:
    """Run a GetMetricData request to its last page, filing each ``v<i>_<key>`` result's values by
    minute into ``values[versions[i]][key]``."""
    try:
        while True:
            resp = cloudwatch.get_metric_data(**kwargs)
            for r in resp.get("MetricDataResults", []):
                idx, _, key = r["Id"].partition("_")
                bucket = values[versions[int(idx[1:])]].get(key)
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
        raise _aws_error("metrics (CloudWatch GetMetricData)", exc) from exc


class LocalSimulatorSource(MetricSource):
    """Local mode: counts from ``AWS/Lambda`` (exact sums), percentiles from the simulator's namespace.

    The emulator computes no percentiles, so the simulator publishes each minute's p50/p95/p99 as three
    values of one metric in its own namespace: Minimum is p50, Maximum p99, Sum minus both p95. One
    GetMetricData request per look reads every version (the statistics moto computes exactly: Sum,
    Minimum, Maximum; no percentile statistic, no metric math — FINDINGS). The simulator publishes
    every whole minute before the driver reads, so a minute once read with traffic is final: it is
    cached, and each look asks only for the minutes not read yet."""

    name = "local-simulator"

    def __init__(self, cloudwatch):
        self.cloudwatch = cloudwatch
        self.calls = 0
        self._cache: dict[tuple[str, str, str], dict[datetime, tuple]] = {}

    @staticmethod
    def queries(function: str, alias: str, version: str, prefix: str) -> list[dict]:
        dims = lambda_dimensions(function, alias, version)

        def q(qid: str, namespace: str, metric: str, stat: str) -> dict:
            metric_ = {"Namespace": namespace, "MetricName": metric, "Dimensions": dims}
            return {"Id": prefix + qid, "MetricStat": {"Metric": metric_, "Period": PERIOD, "Stat": stat}}

        return [
            q("invocations", LAMBDA_NAMESPACE, INVOCATIONS, "Sum"),
            q("errors", LAMBDA_NAMESPACE, ERRORS, "Sum"),
            q("pmin", SIMULATOR_NAMESPACE, PERCENTILES_METRIC, "Minimum"),
            q("pmax", SIMULATOR_NAMESPACE, PERCENTILES_METRIC, "Maximum"),
            q("psum", SIMULATOR_NAMESPACE, PERCENTILES_METRIC, "Sum"),
        ]

    def series(
        self, function: str, alias: str, version: str, start: datetime, end: datetime
    ) -> VersionSeries:
        return self.series_many(function, alias, [version], start, end)[version]

    def series_many(
        self, function: str, alias: str, versions: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, VersionSeries]:
        versions = list(dict.fromkeys(versions))
        minutes = _minutes(start, end)
        if not minutes:
            return {v: VersionSeries(v, (), self.name) for v in versions}
        caches = [self._cache.setdefault((function, alias, v), {}) for v in versions]
        todo = sorted({t for cache in caches for t in minutes if t not in cache})
        if todo:
            raw = {v: {k: {} for k in ("invocations", "errors", "pmin", "pmax", "psum")} for v in versions}
            queries = []
            for i, v in enumerate(versions):
                queries += self.queries(function, alias, v, prefix=f"v{i}_")
            kwargs = {
                "MetricDataQueries": queries,
                "StartTime": todo[0],
                "EndTime": minutes[-1] + timedelta(minutes=1),
                "ScanBy": "TimestampAscending",
            }
            _read_metric_data(self.cloudwatch, kwargs, versions, raw)
            self.calls += 1
            for v, cache in zip(versions, caches, strict=True):
                r = raw[v]
                for t in todo:
                    if t in cache or t not in r["invocations"]:
                        continue  # no traffic (yet): not cached, asked again next time
                    p50 = p95 = p99 = None
                    if t in r["pmin"]:
                        p50, p99 = r["pmin"][t], r["pmax"][t]
                        p95 = round(r["psum"][t] - p50 - p99, 3)
                    cache[t] = (r["invocations"][t], r["errors"].get(t, 0.0), p50, p95, p99)
        out = {}
        for v, cache in zip(versions, caches, strict=True):
            values: dict[str, dict[datetime, float]] = {k: {} for k in STATS}
            for t in minutes:
                for k, val in zip(values, cache.get(t, ()), strict=False):
                    if val is not None:
                        values[k][t] = val
            out[v] = _build(v, minutes, values, self.name)
        return out


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
                raise _aws_error("alarm states (CloudWatch DescribeAlarms)", exc) from exc
        return {n: found.get(n, "MISSING") for n in wanted}

    def firing(self, names: Sequence[str]) -> list[str]:
        out = []
        for name, state in self.states(names).items():
            if state == "ALARM":
                out.append(name)
            elif state == "MISSING":
                out.append(name + MISSING_SUFFIX)
        return out
